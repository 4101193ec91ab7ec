"""Single-DARTS (paper 001): single-level optimization — one batch gives ∇w and ∇α — with sigmoid α."""

from __future__ import annotations

from dataclasses import dataclass

from ...ranges import NON_NEGATIVE, POSITIVE
from .darts_family import ACTIVATIONS, MODES, DartsFamily, DartsOptions
from ..options import NB201, OURS, PAPER, option
from ..registry import register


@dataclass(frozen=True)
class SingleDartsOptions(DartsOptions):
    mode: str = option("single-level", PAPER, "optimization mode (the paper: same batch for w and α)", MODES)
    activation: str = option("sigmoid", PAPER, "σ(α_e)_o·o(x) with independent sigmoids (paper's best)", ACTIVATIONS)
    w_lr: float = option(0.005, PAPER, "SGD learning rate, cosine schedule (§5.1, NB201)", bounds=POSITIVE)
    w_weight_decay: float = option(5e-4, NB201, "weight decay of the weights (value lost in the text)",
                                   bounds=NON_NEGATIVE)
    a_lr: float = option(3e-4, NB201, "Adam learning rate of α, fixed (value lost in the text)", bounds=POSITIVE)
    clip_includes_alpha: bool = option(False, OURS, "the clip covers the weights alone, so α's step is never "
                                       "scaled by the weights' norm (the authors' code is not available here)")
    a_weight_decay: float = option(1e-3, f"{NB201} — a reading: the paper's NB201 setting (§5.1.1) does not say; "
                                   "the only α decay it states is 0, for its ImageNet search (§5.1.2, 'to avoid extra "
                                   "gradients on zero operations')", "Adam weight decay (L2) of α", bounds=NON_NEGATIVE)
    alpha_init_std: float = option(1e-3, f"{NB201} — a reading: the paper initialises sigmoid α to a value its text "
                                   "has lost (§5.1.2)", "α initialised as std·N(0, 1)", bounds=NON_NEGATIVE)


register(
    "single-darts",
    summary="Single-DARTS: single-level, the same batch updates w and α; sigmoid on α",
    paper="Hou et al. Single-DARTS: Towards Stable Architecture Search (paper 001)",
    options=SingleDartsOptions,
    departures=(
        "Weight decay of w and the α learning rate are lost in the paper's text: NB201 reference values (5e-4, 3e-4).",
        "Readings, not the paper's NB201 setting: α's weight decay 1e-3 (the NB201 reference; the paper states only "
        "its ImageNet search's 0) and α's initialisation 1e-3·N(0, 1) (the paper's sigmoid initial value is lost "
        "in its text).",
        "Nesterov momentum, gradient clip 5, the per-epoch cosine schedule and BN running statistics follow the "
        "NB201 reference; the paper does not say.",
        "The two-batch ablation modes (Table 4) take the weight step first, as xautodl's DARTS-V1 "
        "(step_order=alpha-w for the DARTS-code order).",
        "Tables 4 and 5 optimise α with SGD (a_optimizer=sgd, momentum 0.9); the default is §5.1's Adam. "
        "`nbs reproduce single-darts-table4|table5` sets it per row.",
    ),
    factory=DartsFamily,
)
