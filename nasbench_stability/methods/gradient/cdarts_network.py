"""The two networks of CDARTS on the NB201 cell, as its authors' controller builds them
(microsoft/Cream CDARTS/benchmark201/models/cdarts_controller.py, ``CDARTSController``).

* the **search network**: the NB201 macro (N searchable cells, a residual reduction, N cells, a reduction,
  N cells) whose cells mix every op under softmax(α) (affine-free BN, running statistics kept: their
  ``SearchCell(..., affine=bn_affine=False, track_running_stats=True)``); its classifier ``fc_search``
  reads the global average pool of the last cell directly (no BN-ReLU before it, unlike xautodl's NB201
  search network);
* the **evaluation network**: the same macro with one op per edge, the cell α derives (their ``InferCell``,
  affine BN), and its own classifier ``fc_eval``. The authors rebuild it every iteration and copy each edge's
  chosen op from a pool holding every op of every edge (``super_layers_pool``), and back after the
  iteration; here the pool *is* the evaluation network (:class:`~...space.reference_cell.ReferenceCell`,
  affine, five ops per edge) and only the derived cell's ops run, which trains the same weights;
* shared by both: the stem and two distillation heads (``DistillHeadCIFAR``) read after each reduction
  (16×16 and 8×8 at CIFAR size), whose logits join the final ones in the distillation loss.

The authors' file widens the stem to 3C (``stem_multiplier`` 3) but their ``SearchCell`` builds every edge
for the cell's input width, so only a stem of C channels runs on NB201; nbs uses NB201's C-channel stem.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...space.blocks import ResidualReduction, Stem
from ...space.mixed_cell import MixedCell
from ...space.ops import EDGES, NUM_NODES
from ...space.reference_cell import ReferenceCell
from ...space.supernet import NetworkShape


class DistillHead(nn.Module):
    """The authors' ``DistillHeadCIFAR(C, 6, classes, bn_affine=False)``: ReLU, 6×6 average pool with stride 2,
    1×1 conv to 128, BN, ReLU, 2×2 conv to 768, BN, ReLU, global pool, linear."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(6, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128, affine=False), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768, affine=False), nn.ReLU())
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def _macro(shape: NetworkShape, make_cell: Callable[[int], nn.Module]) -> nn.ModuleList:
    """NB201's three stages of searchable (or derived) cells with a residual reduction between them."""
    c, layers = shape.channels, []
    for stage, width in enumerate((c, 2 * c, 4 * c)):
        if stage > 0:
            layers.append(ResidualReduction(width // 2, width))
        layers.extend(make_cell(width) for _ in range(shape.cells_per_stage))
    return nn.ModuleList(layers)


def derived_cell_forward(cell: ReferenceCell, x: torch.Tensor, ops: tuple[int, ...]) -> torch.Tensor:
    """One op per edge (``ops[e]``) of the pool ``cell``, as the authors' ``InferCell`` sums them (a ``none``
    edge adds ``x·0``)."""
    nodes = [x]
    for target in range(1, NUM_NODES):
        nodes.append(sum(cell.edges[e][ops[e]](nodes[s]) for e, (s, t) in enumerate(EDGES) if t == target))
    return nodes[-1]


class CyclicNetworks(nn.Module):
    """Stem, the search network, the evaluation network's op pool, the two distillation heads, two classifiers."""

    def __init__(self, shape: NetworkShape, track_running_stats: bool) -> None:
        super().__init__()
        c = shape.channels
        self.stem = Stem(c)
        self.search_layers = _macro(shape, lambda w: MixedCell(w, track_running_stats=track_running_stats))
        self.eval_layers = _macro(shape, lambda w: ReferenceCell(w, affine=True, track_running_stats=True))
        self.heads = nn.ModuleList([DistillHead(2 * c, shape.num_classes), DistillHead(4 * c, shape.num_classes)])
        self.fc_search = nn.Linear(4 * c, shape.num_classes)
        self.fc_eval = nn.Linear(4 * c, shape.num_classes)

    # ---- parameter groups, as the authors' optimizers take them ------------------------------------
    def search_parameters(self) -> list[nn.Parameter]:
        """w_optim's: stem, the search layers, fc_super, both heads."""
        return [*self.stem.parameters(), *self.search_layers.parameters(), *self.fc_search.parameters(),
                *self.heads.parameters()]

    def eval_layer_parameters(self, ops: tuple[int, ...]) -> list[nn.Parameter]:
        """The evaluation network's layers for the cell ``ops``: the reductions and each edge's chosen op."""
        out: list[nn.Parameter] = []
        for layer in self.eval_layers:
            if isinstance(layer, ReferenceCell):
                out.extend(p for e, op in enumerate(ops) for p in layer.edges[e][op].parameters())
            else:
                out.extend(layer.parameters())
        return out

    def eval_parameters(self, ops: tuple[int, ...]) -> list[nn.Parameter]:
        """The evaluation optimizer's: stem, the evaluation layers, both heads, fc_nas."""
        return [*self.stem.parameters(), *self.eval_layer_parameters(ops), *self.heads.parameters(),
                *self.fc_eval.parameters()]

    # ---- forward ---------------------------------------------------------------------------------------
    def _run(self, x: torch.Tensor, layers: nn.ModuleList, cell: Callable, with_heads: bool
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        aux: list[torch.Tensor] = []
        for layer in layers:
            if isinstance(layer, ResidualReduction):
                x = layer(x)
                if with_heads:   # a head after each reduction (their get_aux_logits for layers 0 and 1)
                    aux.append(self.heads[len(aux)](x))
            else:
                x = cell(layer, x)
        return x.mean(dim=(2, 3)), aux

    def search(self, x: torch.Tensor, weights: torch.Tensor, with_heads: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of the search network under ``weights`` (E, O) and, ``with_heads``, the two heads' logits."""
        features, aux = self._run(x, self.search_layers, lambda cell, h: cell(h, weights), with_heads)
        return self.fc_search(features), aux

    def evaluate(self, x: torch.Tensor, ops: tuple[int, ...], with_heads: bool = False
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of the evaluation network of the cell ``ops`` and, ``with_heads``, the two heads' logits."""
        features, aux = self._run(x, self.eval_layers, lambda cell, h: derived_cell_forward(cell, h, ops), with_heads)
        return self.fc_eval(features), aux


def ensemble(aux: list[torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """The authors' ``em_output`` with ``ensemble_sum`` and ``ensemble_param`` off: the heads' and the final
    logits, each times softmax(0.333·1)ᵢ = 1/3, stacked along the batch axis (3B, classes)."""
    return torch.cat([*aux, logits], 0) / 3.0


INTERACTIONS = ("kl", "cosine", "mse", "smooth-l1")


def interactive_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, kind: str) -> torch.Tensor:
    """The authors' ``Loss_interactive`` (models/loss.py), times T². ``kl`` is ``nn.KLDivLoss()`` at its default
    reduction, the mean over every element (batch × classes, not per example), of KL(softmax(teacher/T) ‖
    softmax(student/T)); gradients reach both networks (neither side is detached)."""
    if kind == "kl":
        log_p = F.log_softmax(student / temperature, dim=1)
        loss = F.kl_div(log_p, F.softmax(teacher / temperature, dim=1), reduction="sum") / log_p.numel()
    elif kind == "cosine":
        loss = -F.cosine_similarity(student, teacher, dim=1, eps=1e-6).mean()
    elif kind == "mse":
        loss = F.mse_loss(student, teacher)
    else:
        loss = F.smooth_l1_loss(student, teacher)
    return loss * temperature * temperature
