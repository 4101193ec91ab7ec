"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalization on DARTS-V1.

* Partial channels (``partial_channels`` = K, 4 in PC-DARTS' ``MixedOp``): each edge sends the first C/K
  channels of its input through the mixed op; the other channels bypass it; the two are concatenated
  and channel-shuffled with K groups (:mod:`...space.partial_channel_cell`, shared with DNAS).
* Edge normalization (``edge_normalization``): one more parameter β per edge; the edges entering a node
  are weighted by a softmax of their β over that node's edges, which multiplies the whole edge output
  (op part and bypass, as PC-DARTS' ``Cell.forward``: ``weights2[j] · MixedOp_j(h_j)``). β is trained with
  α by the same Adam step on the same loss: here it is α's sixth column, so Adam — elementwise — treats
  it exactly as a separate parameter of the same optimizer, and packing, checkpoints and the Hessian
  (over α and β) need nothing new. The supernet gets ``softmax(α_e) · β̂_e`` as edge e's op weights:
  the partial-channel cell weights the bypass by the sum of an edge's weights, i.e. by β̂_e, so this is
  β̂_e times the edge's output.

On NB201 every edge stays in the cell, so β̂ does not change the derived cell (PC-DARTS uses it to pick
two input edges per node in DARTS' space): the cell is argmax softmax(α) per edge. Records: ``op_weights``
= softmax(α) over the ops (rows sum to 1, as DARTS'), ``edge_weights`` = β̂, ``op_grad`` = ∂L/∂α and
``edge_grad`` = ∂L/∂β.

With ``partial_channels=1`` and ``edge_normalization=false`` this is DARTS-V1, step for step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...ranges import COUNT, NON_NEGATIVE
from ...space.ops import EDGES, NUM_EDGES, NUM_NODES, NUM_OPS
from ...space.supernet import Supernet
from ..base import Batch, StepStats
from ..gradient.darts_family import DartsFamily, DartsOptions
from ..gradient.partial_channels import partial_channel_supernet
from ..options import PAPER, XAUTODL_V1, option
from ..registry import register

PC_CODE = "PC-DARTS code: yuhuixu1993/PC-DARTS model_search.py"
PC_SEARCH = "PC-DARTS code: yuhuixu1993/PC-DARTS train_search.py"
# the edges entering each node (1, 2, 3), in arch-string order: consecutive runs of edges
NODE_EDGES: tuple[tuple[int, ...], ...] = tuple(tuple(e for e, (_, t) in enumerate(EDGES) if t == node)
                                                for node in range(1, NUM_NODES))
assert [e for edges in NODE_EDGES for e in edges] == list(range(NUM_EDGES))


@dataclass(frozen=True)
class PcDartsOptions(DartsOptions):
    """DARTS-V1's NB201 reference settings plus PC-DARTS' two switches."""

    partial_channels: int = option(4, PC_CODE, "K: the ops of an edge see the first C/K channels of its input, the "
                                   "rest bypass them, then channel shuffle with K groups (MixedOp, self.k = 4); "
                                   "1 = all channels", bounds=COUNT)
    edge_normalization: bool = option(True, PAPER, "β per edge, softmax over the edges entering each node, "
                                      "multiplies the edge output; trained with α (false: no β, plain DARTS "
                                      "weighting)")
    warmup_epochs: int = option(0, XAUTODL_V1, "first epochs with weight steps only (α and β frozen). 0: DARTS-V1 "
                                "steps α from the first epoch; PC-DARTS' DARTS-space script waits 15 of its 50 "
                                "(train_search.py `if epoch>=15`)", bounds=NON_NEGATIVE)


def edge_normalization(beta: torch.Tensor) -> torch.Tensor:
    """(..., E) edge logits → (..., E) weights: a softmax over the edges entering each node."""
    # slices, not index lists: no host-to-device copy inside a captured CUDA graph
    parts = [torch.softmax(beta[..., edges[0]:edges[-1] + 1], dim=-1) for edges in NODE_EDGES]
    return torch.cat(parts, dim=-1)


class PcDarts(DartsFamily):
    def build_supernet(self) -> Supernet:
        return partial_channel_supernet("pc-darts", self.ctx.shape, self.options.partial_channels,
                                        self.options.track_running_stats)

    def alpha_shape(self) -> tuple[int, ...]:
        return (NUM_EDGES, NUM_OPS + 1) if self.options.edge_normalization else (NUM_EDGES, NUM_OPS)

    def mixture(self, alpha: torch.Tensor) -> torch.Tensor:
        """The op weights within each edge (DARTS' activation of α's op columns)."""
        return super().activate(alpha[..., :NUM_OPS])

    def edge_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        return edge_normalization(alpha[..., NUM_OPS])

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        """What the supernet gets: the mixture of edge e scaled by β̂_e."""
        w = self.mixture(alpha)
        return w * self.edge_weights(alpha)[..., None] if self.options.edge_normalization else w

    def op_weights(self) -> np.ndarray:
        with torch.no_grad():
            return self.mixture(self.alpha).float().cpu().numpy()

    def graph_blocker(self) -> str | None:
        if self.options.warmup_epochs:   # a graph captured after the warm-up would create Adam's state inside it
            return "warmup_epochs > 0: the first α step comes after steps already replayed as graphs"
        return super().graph_blocker()

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        if epoch < self.options.warmup_epochs:
            self._set_lr(epoch, step)
            stats, _ = self._weight_step(batches["train"])
            stats.op_grad = torch.full_like(self.alpha.detach(), math.nan)   # no α step, no α gradient
        else:
            stats = super().step(batches, epoch, step, measure_gc)
        if self.options.edge_normalization:
            grad = stats.op_grad
            stats.op_grad, stats.extra["edge_grad"] = grad[..., :NUM_OPS], grad[..., NUM_OPS]
        return stats

    def extra_records(self) -> dict[str, Any]:
        if not self.options.edge_normalization:
            return {}
        with torch.no_grad():
            return {"edge_weights": self.edge_weights(self.alpha).float().cpu().numpy()}


register(
    "pc-darts",
    summary="PC-DARTS: ops on 1/K of the channels (K=4) + channel shuffle, edge normalization β; DARTS-V1 steps",
    paper="Xu, Xie, Zhang, Chen, Qi, Tian, Xiong. PC-DARTS: Partial Channel Connections for Memory-Efficient "
          "Architecture Search. ICLR 2020",
    options=PcDartsOptions,
    departures=(
        "The authors have no NB201 setting: everything but the two switches is DARTS-V1's NB201 reference "
        "(xautodl: weight step first, SGD 0.025 with Nesterov, wd 5e-4, batch 64, α Adam 3e-4, 50 epochs), not "
        "PC-DARTS' DARTS-space script (α step first, batch 256, lr 0.1, α lr 6e-4, 15 warm-up epochs: "
        "warmup_epochs=15 sets the last).",
        "On NB201 every edge is kept, so β does not take part in the derivation (PC-DARTS weights α by β to "
        "pick 2 input edges per node); the cell is argmax softmax(α) per edge, 'none' included (NB201 "
        "reference; PC-DARTS' DARTS-space genotype leaves 'none' out: derive_none=false).",
        "β lives in α's sixth column (one Adam over both, as PC-DARTS' single arch optimizer); the Hessian "
        "indicator is over α and β (36 entries).",
        "No max-pool on the bypass: NB201's searchable cells never reduce (PC-DARTS pools it in reduction cells).",
    ),
    factory=PcDarts,
)
