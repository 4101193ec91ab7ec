"""DARTS- (Chu et al., ICLR 2021): an auxiliary skip connection on every edge, outside the softmax.

Every mixed edge computes ``Σ_o softmax(α_e)_o · o(x) + β·x``: the skip's advantage (an unobstructed
gradient path) is given to every edge independently of α, so α no longer has to buy it by favouring
skip_connect. β decays over the search so that the final supernet is the plain DARTS one. The authors'
code (Meituan-AutoML/DARTS- ``src/search/model_search.py`` ``MixedOp.forward``) adds
``auxiliary_op(x) · decay_rate`` to the mixed output, with ``decay_rate`` from ``src/utils.py``
``DecayScheduler``, stepped once per **epoch** in ``train_search.py``: linear,
β_e = β0·(E − e)/E for the 0-based epoch e of E (β0 in the first epoch, β0/E in the last).

On NB201 every searchable edge has stride 1 and skip_connect is the identity, so ``β·x`` outside the
softmax is exactly ``β`` added to the skip column of the edge weights the supernet computes with:
``w = softmax(α) + β·onehot(skip)``. That is what this module does — no change to the cell, and the
step stays DARTS-V1's (packed seeds, CUDA graphs). The recorded ``op_weights`` and the derived cell are
softmax(α) alone (the auxiliary skip is not a candidate op); the supernet's valid accuracy and the
α-Hessian are measured with β, as the authors' ``infer`` is; a discrete cell (ranking analyses) has
no auxiliary skip.

The authors publish no NB201 search script. Their search code (``src/search``, DARTS' own on the DARTS
spaces) sets everything else, each default below naming its line there: 50 epochs, the α step first, SGD
without Nesterov, weight decay 3e-4, and the clip over the weights alone (α are plain tensors, not module
parameters, so ``clip_grad_norm(model.parameters())`` does not see them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...ranges import NON_NEGATIVE, POSITIVE
from ...space.ops import NUM_OPS, OP_INDEX
from ..base import SearchContext
from ..gradient.darts_family import STEP_ORDERS, DartsOptions
from ..options import option, restate
from ..registry import register
from .scheduled import ScheduledCoefficient, linear_in_epochs

_CODE = "DARTS- code: Meituan-AutoML/DARTS-"
_ARGS = f"{_CODE} src/search/args.py"
_TRAIN = f"{_CODE} src/search/train_search.py"
BETA_DECAYS = ("linear", "constant")


@dataclass(frozen=True)
class DartsMinusOptions(DartsOptions):
    """The authors' search code's settings (no NB201 script is published), plus the auxiliary skip."""

    epochs: int = restate(DartsOptions, "epochs", 50, f"{_ARGS}:28 (--epochs 50)")
    batch_size: int = restate(DartsOptions, "batch_size", 64, f"{_ARGS}:29 (--batch_size 64)")
    step_order: str = option("alpha-w", f"{_TRAIN}:366 (architect.step before the weight step)",
                             "alpha-w: the α step on the valid batch, then the weight step; w-alpha = weight "
                             "step first", STEP_ORDERS)
    w_lr: float = restate(DartsOptions, "w_lr", 0.025, f"{_ARGS}:30 (--learning_rate 0.025)")
    w_lr_min: float = restate(DartsOptions, "w_lr_min", 0.001, f"{_ARGS}:31 (--learning_rate_min 0.001)")
    w_momentum: float = restate(DartsOptions, "w_momentum", 0.9, f"{_ARGS}:32 (--momentum 0.9)")
    w_nesterov: bool = restate(DartsOptions, "w_nesterov", False,
                               f"{_TRAIN}:64-67 (torch.optim.SGD with momentum, no nesterov)")
    w_weight_decay: float = restate(DartsOptions, "w_weight_decay", 3e-4,
                                    f"{_ARGS}:33 (--weight_decay 3e-4; scripts/run_darts_minus.sh WEIGHT_DECAY=0.0003)")
    grad_clip: float = option(5.0, f"{_ARGS}:34 (--grad_clip 5)", "gradient-norm clip (0 = off)",
                              bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(False, f"{_TRAIN}:374 (clip_grad_norm(model.parameters())) with α plain "
                                       "tensors of src/search/model_search.py:170-173, not parameters",
                                       "the clip's total norm also counts α's gradient; false = the weights alone")
    a_lr: float = option(3e-4, f"{_ARGS}:36 (--arch_learning_rate 3e-4)", "learning rate of α, fixed",
                         bounds=POSITIVE)
    a_weight_decay: float = option(1e-3, f"{_ARGS}:37 (--arch_weight_decay 1e-3)", "Adam weight decay (L2) of α",
                                   bounds=NON_NEGATIVE)
    a_beta1: float = restate(DartsOptions, "a_beta1", 0.5,
                             f"{_CODE} src/search/architect.py:17-18 (Adam betas=(0.5, 0.999))")
    a_beta2: float = restate(DartsOptions, "a_beta2", 0.999,
                             f"{_CODE} src/search/architect.py:17-18 (Adam betas=(0.5, 0.999))")

    aux_beta0: float = option(1.0, f"{_CODE} scripts/run_darts_minus.sh (--skip_beta 1); paper: β0 = 1",
                              "β in the first epoch: the coefficient of the auxiliary skip x·β on every edge "
                              "(0 = DARTS-V1)", bounds=NON_NEGATIVE)
    aux_decay: str = option("linear", f"{_CODE} scripts/run_darts_minus.sh (--decay linear), src/utils.py "
                                      "DecayScheduler", "β once per epoch e (0-based) of E: linear = β0·(E − e)/E "
                                      "(β0 first, β0/E in the last epoch); constant = β0 throughout", BETA_DECAYS)


class DartsMinus(ScheduledCoefficient):
    coefficient_column = "aux_skip_beta"

    def __init__(self, options: DartsMinusOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        skip = torch.zeros(NUM_OPS, device=ctx.device)
        skip[OP_INDEX["skip_connect"]] = 1.0
        self.register_buffer("_skip_column", skip, persistent=False)   # structure, not state

    def coefficient_at(self, epoch: int) -> float:
        opts = self.options
        return opts.aux_beta0 if opts.aux_decay == "constant" else linear_in_epochs(opts.aux_beta0, 0.0, epoch,
                                                                                    self.ctx.epochs)

    def _forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        if active is None:   # the supernet's mixed edges (a discrete cell, ``active`` given, has no aux skip)
            beta = self._per_seed(self.coefficient, weights)
            weights = weights + beta * self._skip_column.to(weights.dtype)
        return super()._forward(x, weights, active)


register(
    "darts-minus",
    summary="DARTS-: auxiliary skip β·x outside the softmax on every edge, β decaying linearly 1 → 0 per epoch",
    paper="Chu, Wang, Zhang, Lu, Wei, Yan. DARTS-: Robustly Stepping out of Performance Collapse Without "
          "Indicators. ICLR 2021",
    options=DartsMinusOptions,
    departures=(
        "The authors publish no NB201 search script: the settings are those of their search code "
        "(src/search, DARTS' own, on the DARTS spaces: α step first, no Nesterov, weight decay 3e-4, the clip "
        "over the weights alone) on NB201's supernet, with NB201's BN mode (running statistics on).",
        "The auxiliary skip is β added to the skip column of the edge weights: identical to adding β·x on "
        "NB201, whose searchable edges all have stride 1 (the authors' reduction-cell variant, a "
        "FactorizedReduce, has no NB201 counterpart).",
        "β is recorded every epoch (aux_skip_beta); op_weights and the derived cell are softmax(α) without β.",
    ),
    factory=DartsMinus,
)
