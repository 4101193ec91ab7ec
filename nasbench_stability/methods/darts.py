"""DARTS-V1 (first order) and DARTS-V2 (second order, finite-difference Hessian-vector product)."""

from __future__ import annotations

from dataclasses import dataclass

from .darts_family import DartsFamily, DartsOptions
from .options import NB201, option
from .registry import register

_PAPER = "Liu, Simonyan, Yang. DARTS: Differentiable Architecture Search. ICLR 2019 (NB201 setting: Dong & Yang, ICLR 2020)"
_DEPARTURES = (
    "Weights: per-step cosine schedule as in xautodl's NB201 runs (the DARTS paper anneals per epoch).",
    "The 'none' op is not computed (it adds w·0); its α still receives its gradient through the softmax.",
)


@dataclass(frozen=True)
class DartsV2Options(DartsOptions):
    order: int = option(2, NB201, "1 = first-order α gradient, 2 = unrolled second order", (1, 2))


register("darts-v1", summary="DARTS first order, bi-level (train half → w, valid half → α)",
         paper=_PAPER, options=DartsOptions, departures=_DEPARTURES)(DartsFamily)
register("darts-v2", summary="DARTS second order: unrolled w' with finite-difference Hessian-vector product",
         paper=_PAPER, options=DartsV2Options, departures=_DEPARTURES,
         factory=lambda options, ctx: DartsFamily(options, ctx))
