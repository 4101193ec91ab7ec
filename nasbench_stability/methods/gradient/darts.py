"""DARTS-V1 (first order) and DARTS-V2 (second order, finite-difference Hessian-vector product).

Both follow xautodl's NB201 scripts step for step (tests/test_parity_xautodl.py runs them side by
side): V1 takes the weight step first and the α step at the updated weights (``DARTS-V1.py``
``search_func``); V2 takes the unrolled α step first, then the weight step (``DARTS-V2.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .darts_family import STEP_ORDERS, DartsFamily, DartsOptions
from ..options import XAUTODL_V2, option
from ..registry import register

_PAPER = "Liu, Simonyan, Yang. DARTS: Differentiable Architecture Search. ICLR 2019 (NB201 setting: Dong & Yang, ICLR 2020)"
_DEPARTURES = (
    "Step order, schedule and clip follow xautodl's NB201 scripts, not the DARTS code (which steps α first, "
    "and keeps α out of the clipped parameters).",
    "The 'none' op is not computed (it adds w·0); its α still receives its gradient through the softmax.",
    "The searchable convs have no bias (xautodl's ReLUConvBN has bias=not affine, i.e. a bias before an "
    "affine-free BN, which cancels it): the same function, without parameters that only weight decay moves.",
    "Resume: the α gradient counted by the clip is checkpointed, so a resumed run equals an uninterrupted one "
    "(xautodl's resume starts with an empty α.grad).",
)


@dataclass(frozen=True)
class DartsV2Options(DartsOptions):
    order: int = option(2, XAUTODL_V2, "1 = first-order α gradient, 2 = unrolled second order", (1, 2))
    step_order: str = option("alpha-w", XAUTODL_V2, "two-batch modes: alpha-w = the unrolled α step, then the "
                             "weight step (search_func of DARTS-V2.py); w-alpha = weight step first", STEP_ORDERS)
    clip_includes_alpha: bool = option(True, XAUTODL_V2, "the clip's total norm also counts α.grad (this step's "
                                       "unrolled gradient + ∇α L_train), as clip_grad_norm_(network.parameters(), 5)")


register("darts-v1", summary="DARTS first order, bi-level (train half → w, then valid half → α)",
         paper=_PAPER, options=DartsOptions, departures=_DEPARTURES)(DartsFamily)
register("darts-v2", summary="DARTS second order: unrolled w' with finite-difference Hessian-vector product",
         paper=_PAPER, options=DartsV2Options, departures=_DEPARTURES,
         factory=DartsFamily)
