"""MergeNAS (paper 000): DARTS on NB201 with the two convolutions of an edge merged into one kernel.

The only change to DARTS is the searchable cell (:class:`~..space.merged_cell.MergedCell`): each edge
has one 3×3 kernel W shared by nor_conv_1x1 (centre tap) and nor_conv_3x3 (all taps), and the
α-weighted convs (and, by default, the average pool) run as one convolution with the merged kernel.
Optimization is DARTS' bi-level scheme — first order for MergeNAS-V1, the unrolled second order for
MergeNAS-V2 — and the genotype is the argmax over the five α of each edge, so both variants are
:class:`DartsFamily` with another cell and the paper's defaults.

Gradient correlation: the two conv ops of an edge own overlapping parts of one kernel, so
nor_conv_3x3's gc compares the gradients of the whole kernel and nor_conv_1x1's only those of its
centre taps (the weights that op actually uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...ranges import BELOW_ONE, EPOCHS, NON_NEGATIVE
from ...space.merged_cell import BRANCH_SCALES, POOL_MODES, MergedCell
from ...space.ops import OP_INDEX
from ...space.supernet import Supernet
from .darts_family import STEP_ORDERS, DartsFamily, DartsOptions
from ..options import OURS, PAPER, XAUTODL_V2, option
from ..registry import register

_C1 = OP_INDEX["nor_conv_1x1"]
_PAPER = ("Wang, Xue, Yan, Yang, Hu, Sun. MergeNAS: Merge Operations into One for Differentiable "
          "Architecture Search. IJCAI 2020 (paper 000)")


@dataclass(frozen=True)
class MergeNasOptions(DartsOptions):
    epochs: int = option(50, PAPER, "search epochs (§4.2)", bounds=EPOCHS)
    w_momentum: float = option(0.9, PAPER, "SGD momentum (§4.2)", bounds=BELOW_ONE)
    w_weight_decay: float = option(2e-2, PAPER, "weight decay of the network weights (§4.2, Table 2's best; "
                                                "Table 2 also reports 1e-2: --set w_weight_decay=0.01)",
                                                bounds=NON_NEGATIVE)
    a_beta1: float = option(0.5, PAPER, "Adam β1 of α (§4.2)", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, PAPER, "Adam β2 of α (§4.2)", bounds=BELOW_ONE)
    order: int = option(1, PAPER, "1 = MergeNAS-V1 (first order), 2 = MergeNAS-V2 (DARTS second order)", (1, 2))
    pool: str = option("merged", PAPER, "merged = avg pool as the kernel α_pool·I⊗(1/9) inside the merged "
                                        "conv (§3.4, §4.2); separate = NB201's avg_pool_3x3 as its own term",
                       POOL_MODES)
    branch_scale: str = option("none", OURS, "none = BN(conv(ReLU x, W̃)) as in docs/methods.md; alpha-sum = "
                                             "that times α_1x1+α_3x3(+α_pool), DARTS-like per-op scale",
                               BRANCH_SCALES)


@dataclass(frozen=True)
class MergeNasV2Options(MergeNasOptions):
    order: int = option(2, PAPER, "1 = MergeNAS-V1 (first order), 2 = MergeNAS-V2 (DARTS second order)", (1, 2))
    step_order: str = option("alpha-w", XAUTODL_V2, "the unrolled α step, then the weight step (the paper "
                             "follows the NB201 settings: xautodl's DARTS-V2 order)", STEP_ORDERS)


class MergeNas(DartsFamily):
    """DARTS with :class:`MergedCell` as the searchable cell."""

    def build_supernet(self) -> Supernet:
        opts, track = self.options, self.options.track_running_stats
        return Supernet(self.ctx.shape, lambda c: MergedCell(c, pool=opts.pool, branch_scale=opts.branch_scale,
                                                             track_running_stats=track))

    def _gradient_correlation(self, g_w: dict, g_a: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """As DartsFamily's, except that nor_conv_1x1 owns only the centre taps of the shared kernel."""
        inner, cos = super()._gradient_correlation(g_w, g_a)
        for (e, op), params in self._gc_groups.items():
            if op == _C1:   # [..., 1, 1]: the centre taps, with or without a leading seed axis
                self._put_correlation(inner, cos, e, op, [g_w[p][..., 1, 1] for p in params],
                                      [g_a[p][..., 1, 1] for p in params])
        return inner, cos


_DEPARTURES = (
    "NB201 has no weight-sharing conv pair in its reference code: the merged kernel is initialised like "
    "nn.Conv2d (Kaiming-uniform), as MixedCell's convs.",
    "Merged average pool (default): it pools ReLU(x) with zero padding (border pixels /9, where NB201's "
    "avg_pool_3x3 has count_include_pad=False) and shares the branch's BN; the derived genotype's pool is "
    "NB201's real one. pool=separate keeps NB201's pool exactly.",
    "BN follows the merged conv (docs/methods.md), so only the ratios of α_1x1, α_3x3 (and α_pool) act on "
    "the branch; the branch's total α gets no gradient through it (option branch_scale=alpha-sum restores "
    "DARTS' per-op scaling).",
    "Step order (V1: w then α; V2: α then w), per-epoch cosine schedule, Nesterov momentum, gradient clip 5 "
    "with α's gradient in its norm, and BN running statistics follow xautodl's NB201 DARTS-V1/V2 scripts "
    "(the paper says 'follow the settings in NAS-Bench-201').",
    "The α learning rate and weight decay are not given for NB201: NB201 reference (3e-4, 1e-3).",
    "The 'none' op is not computed (it adds w·0); its α still receives its gradient through the softmax.",
)

register("mergenas-v1", summary="MergeNAS-V1: one shared 3×3 kernel per edge for 1×1/3×3 conv (+pool), first order",
         paper=_PAPER, options=MergeNasOptions, departures=_DEPARTURES)(MergeNas)
register("mergenas-v2", summary="MergeNAS-V2: merged-kernel edges, DARTS second-order α gradient",
         paper=_PAPER, options=MergeNasV2Options, departures=_DEPARTURES,
         factory=MergeNas)
