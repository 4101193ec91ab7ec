"""β-DARTS (Ye et al., CVPR 2022): Beta-Decay regularization of the architecture parameters.

The α step minimises ``L_valid + λ·L_β`` with ``L_β = mean over edges of logsumexp(α_e)`` (the
"smoothmax" of each edge's raw α; the authors' ``mlc_loss`` in Sunshine-Ye/Beta-DARTS
``optimizers/darts/architect.py``). Its gradient is ``∂L_β/∂α_{e,o} = softmax(α_e)_o / E`` (E edges):
every α is pushed down in proportion to its activated weight, which keeps the activated weights and
their variance from growing large. λ grows linearly with the epoch (the same file's ``_backward_step``:
``0 + 50*epoch/100``, 100 being the epochs of the authors' NB201 script ``nasbench201/train_search.py``):
λ_e = λ_max·e/E for the 0-based epoch e of E.

L_β does not depend on the weights, so it is added to the architecture objective only (as DNAS adds
its zero-one loss): the weight step, gradient correlation and the α-Hessian (of L_valid alone) are
DARTS-V1's. In ``single-level`` mode one loss serves both steps, so the recorded train loss includes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...ranges import NON_NEGATIVE
from ..gradient.darts_family import DartsOptions
from ..options import option
from ..registry import register
from .scheduled import ScheduledCoefficient, linear_in_epochs

_CODE = "β-DARTS code: Sunshine-Ye/Beta-DARTS"
LAMBDA_SCHEDULES = ("linear", "constant")


@dataclass(frozen=True)
class BetaDartsOptions(DartsOptions):
    """DARTS-V1's NB201 reference defaults, plus Beta-Decay."""

    beta_decay_max: float = option(50.0, f"{_CODE} optimizers/darts/architect.py (_backward_step: "
                                         "weights = 0 + 50*epoch/100)",
                                   "λ_max of the Beta-Decay term λ·mean_e logsumexp(α_e) in the α loss (0 = DARTS-V1)",
                                   bounds=NON_NEGATIVE)
    beta_decay_schedule: str = option("linear", f"{_CODE} optimizers/darts/architect.py (_backward_step)",
                                      "λ once per epoch e (0-based) of E: linear = λ_max·e/E (0 first, "
                                      "λ_max·(E−1)/E last); constant = λ_max throughout", LAMBDA_SCHEDULES)


def beta_decay_loss(alpha: torch.Tensor) -> torch.Tensor:
    """mean over edges of logsumexp over ops of the raw α: a scalar for (E, O), (K,) for packed (K, E, O)."""
    return torch.logsumexp(alpha, dim=-1).mean(dim=-1)


class BetaDarts(ScheduledCoefficient):
    coefficient_column = "beta_decay_lambda"

    def coefficient_at(self, epoch: int) -> float:
        opts = self.options
        if opts.beta_decay_schedule == "constant":
            return opts.beta_decay_max
        return linear_in_epochs(0.0, opts.beta_decay_max, epoch, self.ctx.epochs)

    def arch_objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = super().arch_objective(x, y)
        return loss + self.coefficient.to(loss.dtype) * beta_decay_loss(self.alpha), logits


register(
    "beta-darts",
    summary="β-DARTS: Beta-Decay λ·mean_e logsumexp(α_e) added to the α loss, λ rising linearly 0 → 50",
    paper="Ye, Li, Zhang, Bai, Ouyang, Wang. β-DARTS: Beta-Decay Regularization for Differentiable "
          "Architecture Search. CVPR 2022",
    options=BetaDartsOptions,
    departures=(
        "Built on darts-v1 with its NB201 reference settings (xautodl: weight step first, wd 5e-4, 50 "
        "epochs); the authors' NB201 script (nasbench201/train_search.py) steps α first with wd 3e-4 for 100 "
        "epochs.",
        "λ_e = λ_max·e/E with the run's E epochs; the authors' code divides by a fixed 100 (its script's "
        "epochs), so at their setting the two agree and a 50-epoch run still ends near λ_max.",
        "λ is recorded every epoch (beta_decay_lambda).",
    ),
    factory=BetaDarts,
)
