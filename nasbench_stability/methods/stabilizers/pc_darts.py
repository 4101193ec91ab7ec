"""PC-DARTS (Xu et al., ICLR 2020) on NB201, as DrNAS' ``201-space`` code runs it: partial channels K on DARTS.

PC-DARTS' authors publish no NB201 code. The only NB201 PC-DARTS is DrNAS' (xiangning-chen/DrNAS
``201-space/train_search.py --method darts --k K``), the source of the PC-DARTS row its README prints
(CIFAR-10 test 93.41 ± 0.30, the number later papers quote). Its defaults are that script's, each
naming its file and line there, and they are SDARTS'/DrNAS' NB201 settings (:class:`.common.ChenNb201Options`):
100 epochs, the α step first, SGD 0.025 → 0.001 without Nesterov, weight decay 3e-4, batch 64, clip 5 over
``model.parameters()`` (α included, its α-step gradient zeroed: :class:`.common.DartsCodeClip`), α Adam 3e-4
(0.5, 0.999) with weight decay 1e-3, no warm-up, BN with running statistics and no affine. This departs from
PC-DARTS' own DARTS-space code (α steps only after a 15-epoch warm-up, batch 256, lr 0.1, α lr 6e-4, edge
normalization), which has no NB201 counterpart.

* Partial channels (``partial_channels`` = K): each edge sends the first C/K channels of its input through
  the mixed op; the other channels bypass it; the two are concatenated and channel-shuffled with K groups
  (DrNAS ``201-space/search_cells.py`` ``MixedOp``, PC-DARTS' own; :mod:`...space.partial_channel_cell`,
  shared with DNAS). DrNAS' script takes K from ``--k`` (default 1, plain DARTS); which K its PC-DARTS row
  used is not written down: 4 (PC-DARTS' K) is our reading, see the option.
* Edge normalization (``edge_normalization``, off: DrNAS' cell sums the edges' outputs unweighted and its α
  is edges × ops only). On, it is PC-DARTS' own: one more parameter β per edge; the edges entering a node
  are weighted by a softmax of their β over that node's edges, which multiplies the whole edge output
  (op part and bypass, as PC-DARTS' ``Cell.forward``: ``weights2[j] · MixedOp_j(h_j)``). β is trained with
  α by the same Adam step on the same loss: here it is α's sixth column, so Adam — elementwise — treats
  it exactly as a separate parameter of the same optimizer, and packing, checkpoints and the Hessian
  (over α and β) need nothing new. The supernet gets ``softmax(α_e) · β̂_e`` as edge e's op weights:
  the partial-channel cell weights the bypass by the sum of an edge's weights, i.e. by β̂_e, so this is
  β̂_e times the edge's output.

On NB201 every edge stays in the cell, so β̂ does not change the derived cell (PC-DARTS uses it to pick
two input edges per node in DARTS' space): the cell is argmax softmax(α) per edge, 'none' included (DrNAS'
``genotype``). Records: ``op_weights`` = softmax(α) over the ops (rows sum to 1, as DARTS'), ``op_grad`` =
∂L/∂α; with edge normalization also ``edge_weights`` = β̂ and ``edge_grad`` = ∂L/∂β.

With ``partial_channels=1`` (and no edge normalization) this is DARTS as DrNAS' script runs it
(``--method darts --k 1``): step for step β-DARTS at λ = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...ranges import COUNT, NON_NEGATIVE, POSITIVE
from ...space.ops import EDGES, NUM_EDGES, NUM_NODES, NUM_OPS
from ...space.supernet import Supernet
from ..base import Batch, StepStats
from ..gradient.darts_family import STEP_ORDERS, DartsOptions
from ..gradient.partial_channels import partial_channel_supernet
from ..options import OURS, option, restate
from ..registry import register
from .common import ChenNb201Options, DartsCodeClip

PC_CODE = "PC-DARTS code: yuhuixu1993/PC-DARTS model_search.py"
# DrNAS' NB201 code (xiangning-chen/DrNAS, HEAD f2caa4d): the only NB201 PC-DARTS, `--method darts --k K`
DRNAS_CODE = "DrNAS code: xiangning-chen/DrNAS"
_SCRIPT = f"{DRNAS_CODE} 201-space/train_search.py"
_MODEL = f"{DRNAS_CODE} 201-space/search_model.py"
_CELLS = f"{DRNAS_CODE} 201-space/search_cells.py"
_ARCH = f"{DRNAS_CODE} architect.py"
# the edges entering each node (1, 2, 3), in arch-string order: consecutive runs of edges
NODE_EDGES: tuple[tuple[int, ...], ...] = tuple(tuple(e for e, (_, t) in enumerate(EDGES) if t == node)
                                                for node in range(1, NUM_NODES))
assert [e for edges in NODE_EDGES for e in edges] == list(range(NUM_EDGES))


@dataclass(frozen=True)
class PcDartsOptions(ChenNb201Options):
    """DrNAS' NB201 PC-DARTS (201-space/train_search.py --method darts --k K), each default naming its line;
    PC-DARTS' two switches."""

    epochs: int = restate(DartsOptions, "epochs", 100, f"{_SCRIPT}:41 (--epochs 100)")
    batch_size: int = restate(DartsOptions, "batch_size", 64, f"{_SCRIPT}:34 (--batch_size 64)")
    mode: str = restate(DartsOptions, "mode", "bilevel",
                        f"{_SCRIPT}:182-190, 260 (weights on the first half of CIFAR-10 train, α on a batch of "
                        "the second)")
    activation: str = restate(DartsOptions, "activation", "softmax",
                              f"{_SCRIPT}:147-149 (--method darts: species='softmax')")
    order: int = restate(DartsOptions, "order", 1, f"{_SCRIPT}:50 (--unrolled off)")
    step_order: str = option("alpha-w", f"{_SCRIPT}:265 (architect.step, then the weight step at :269-274)",
                             "alpha-w: the α step on the valid batch, then the weight step; w-alpha = weight "
                             "step first", STEP_ORDERS)
    w_lr: float = restate(DartsOptions, "w_lr", 0.025, f"{_SCRIPT}:35 (--learning_rate 0.025)")
    w_lr_min: float = restate(DartsOptions, "w_lr_min", 0.001, f"{_SCRIPT}:36 (--learning_rate_min 0.001)")
    lr_schedule: str = restate(DartsOptions, "lr_schedule", "per-epoch",
                               f"{_SCRIPT}:192-193, 198, 237 (CosineAnnealingLR over the epochs, stepped once per "
                               "epoch)")
    w_momentum: float = restate(DartsOptions, "w_momentum", 0.9, f"{_SCRIPT}:37 (--momentum 0.9)")
    w_nesterov: bool = restate(DartsOptions, "w_nesterov", False,
                               f"{_SCRIPT}:153-157 (torch.optim.SGD with momentum, no nesterov)")
    w_weight_decay: float = restate(DartsOptions, "w_weight_decay", 3e-4, f"{_SCRIPT}:38 (--weight_decay 3e-4)")
    grad_clip: float = option(5.0, f"{_SCRIPT}:48 (--grad_clip 5)", "gradient-norm clip (0 = off)",
                              bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(True, f"{_SCRIPT}:273 (clip_grad_norm_(model.parameters()), α an "
                                       "nn.Parameter of 201-space/search_model.py:50; the α step's gradient "
                                       "zeroed at :267)", "the clip's total norm also counts α's gradient of the "
                                       "weight step, ∇α L_train; false = the weights alone")
    track_running_stats: bool = option(True, f"{_MODEL}:18 (TinyNetwork(..., affine=False, "
                                       "track_running_stats=True)), passed to the cells at :39",
                                       "BN running statistics in the searchable cells")
    a_optimizer: str = restate(DartsOptions, "a_optimizer", "adam", f"{_ARCH}:21 (torch.optim.Adam)")
    a_lr: float = option(3e-4, f"{_SCRIPT}:51 (--arch_learning_rate 3e-4)", "learning rate of α, fixed",
                         bounds=POSITIVE)
    a_beta1: float = restate(DartsOptions, "a_beta1", 0.5, f"{_ARCH}:21-22 (Adam betas=(0.5, 0.999))")
    a_beta2: float = restate(DartsOptions, "a_beta2", 0.999, f"{_ARCH}:21-22 (Adam betas=(0.5, 0.999))")
    a_weight_decay: float = option(1e-3, f"{_ARCH}:17-22 (--reg_type l2: Adam weight_decay = --reg_scale 1e-3 of "
                                   "201-space/train_search.py:57-60; its --arch_weight_decay 1e-3 at :52 is not "
                                   "read)", "Adam weight decay (L2) of α", bounds=NON_NEGATIVE)
    alpha_init_std: float = restate(DartsOptions, "alpha_init_std", 1e-3,
                                    f"{_MODEL}:50 (1e-3*torch.randn(num_edge, len(search_space)))")
    unrolled_eps: float = restate(DartsOptions, "unrolled_eps", 0.01,
                                  f"{_ARCH}:89-90 (_hessian_vector_product r=1e-2, R = r/‖v‖)")
    derive_none: bool = option(True, f"{_MODEL}:104-116 (genotype: argmax over all ops)",
                               "'none' takes part in the argmax derivation; false leaves it out (as PC-DARTS' "
                               "DARTS-space genotype does)")

    partial_channels: int = option(4, f"{OURS} — a reading: {_SCRIPT}:55 takes K from --k (default 1, plain "
                                   "DARTS); the K of its PC-DARTS row is not written in the repository",
                                   "K: the ops of an edge see the first C/K channels of its input, the rest bypass "
                                   "them, then channel shuffle with K groups (201-space/search_cells.py:157-166 "
                                   f"MixedOp); 1 = all channels. 4 is PC-DARTS' own K ({PC_CODE} "
                                   "MixedOp, self.k = 4), the default of DrNAS' partial-channel cell "
                                   "(search_cells.py:136, k=4) and the starting K of its progressive script "
                                   "(train_search_progressive.py:53, --k 4); K = 1 would be DARTS, a row of its own",
                                   bounds=COUNT)
    edge_normalization: bool = option(False, f"{_CELLS}:168-177 (a node sums its edges' MixedOp outputs "
                                      "unweighted; α of 201-space/search_model.py:50 is edges × ops, no β)",
                                      "PC-DARTS' own edge normalization (its DARTS-space code and paper): β per "
                                      "edge, softmax over the edges entering each node, multiplies the edge output; "
                                      "trained with α (false: no β, DrNAS' NB201 PC-DARTS)")
    warmup_epochs: int = option(0, f"{_SCRIPT}:264 (`# if epoch >= 15:` commented out: α steps from the first "
                                "epoch)", "first epochs with weight steps only (α and β frozen). PC-DARTS' "
                                "DARTS-space script waits 15 of its 50 (train_search.py `if epoch>=15`)",
                                bounds=NON_NEGATIVE)


def edge_normalization(beta: torch.Tensor) -> torch.Tensor:
    """(..., E) edge logits → (..., E) weights: a softmax over the edges entering each node."""
    # slices, not index lists: no host-to-device copy inside a captured CUDA graph
    parts = [torch.softmax(beta[..., edges[0]:edges[-1] + 1], dim=-1) for edges in NODE_EDGES]
    return torch.cat(parts, dim=-1)


class PcDarts(DartsCodeClip):
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
    summary="PC-DARTS: ops on 1/K of the channels (K=4) + channel shuffle; DrNAS' NB201 PC-DARTS (α step first, "
            "100 epochs, no edge normalization: edge_normalization=true adds β)",
    paper="Xu, Xie, Zhang, Chen, Qi, Tian, Xiong. PC-DARTS: Partial Channel Connections for Memory-Efficient "
          "Architecture Search. ICLR 2020",
    options=PcDartsOptions,
    departures=(
        "PC-DARTS' authors publish no NB201 code: the settings are DrNAS' NB201 PC-DARTS (xiangning-chen/DrNAS "
        "201-space/train_search.py --method darts --k K, the source of the quoted CIFAR-10 test 93.41 ± 0.30): "
        "α step first, SGD 0.025 without Nesterov, wd 3e-4, batch 64, α Adam 3e-4, 100 epochs, no warm-up, no "
        "edge normalization. Not PC-DARTS' DARTS-space script (batch 256, lr 0.1, α lr 6e-4, 15 warm-up "
        "epochs: warmup_epochs=15 sets the last, edge_normalization=true its β).",
        "K = 4 is a reading: DrNAS' script takes K from --k (default 1 = DARTS) and nothing in its repository "
        "records the K of its PC-DARTS row; 4 is PC-DARTS' own.",
        "The valid batch of each α step comes from nbs' shuffled valid stream (DrNAS: a random batch per step, "
        "`next(iter(valid_queue))`).",
        "The bypassed channels are multiplied by the edge's total op weight Σ_o softmax(α_e)_o, 1 up to "
        "rounding (DrNAS and PC-DARTS concatenate them unweighted); with edge normalization by β̂_e, i.e. "
        "PC-DARTS' weighting of the whole edge output.",
        "With edge normalization β does not take part in the derivation (PC-DARTS weights α by β to pick 2 "
        "input edges per node; NB201 keeps every edge): the cell is argmax softmax(α) per edge, 'none' "
        "included (DrNAS' genotype; PC-DARTS' DARTS-space genotype leaves 'none' out: derive_none=false).",
        "With edge normalization β lives in α's sixth column (one Adam over both, as PC-DARTS' single arch "
        "optimizer); the Hessian indicator is then over α and β (36 entries).",
        "No max-pool on the bypass: NB201's searchable cells never reduce (PC-DARTS pools it in reduction cells).",
    ),
    factory=PcDarts,
)
