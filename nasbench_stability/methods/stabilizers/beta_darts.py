"""β-DARTS (Ye et al., CVPR 2022): Beta-Decay regularization of the architecture parameters.

The α step minimises ``L_valid + λ·L_β`` with ``L_β = mean over edges of logsumexp(α_e)`` (the
"smoothmax" of each edge's raw α; the authors' ``mlc_loss`` in Sunshine-Ye/Beta-DARTS
``optimizers/darts/architect.py``). Its gradient is ``∂L_β/∂α_{e,o} = softmax(α_e)_o / E`` (E edges):
every α is pushed down in proportion to its activated weight, which keeps the activated weights and
their variance from growing large. λ grows linearly with the epoch (the same file's ``_backward_step``:
``0 + 50*epoch/100``, 100 being the epochs of the authors' NB201 script ``nasbench201/train_search.py``):
λ_e = λ_max·e/E for the 0-based epoch e of E.

L_β does not depend on the weights, so it is added to the architecture objective only (as DNAS adds
its zero-one loss). In ``single-level`` mode one loss serves both steps, so the recorded train loss
includes it.

The rest is the authors' NB201 script (``nasbench201/train_search.py``), which is SDARTS' (the same
settings as :class:`.common.ChenNb201Options`, each default below naming its line there): 100 epochs,
the α step first, SGD without Nesterov, weight decay 3e-4, and the clip over ``model.parameters()``
after the α step's gradient was zeroed (:class:`.common.DartsCodeClip`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...ranges import NON_NEGATIVE, POSITIVE
from ..gradient.darts_family import STEP_ORDERS, DartsOptions
from ..options import option, restate
from ..registry import register
from .common import ChenNb201Options, DartsCodeClip
from .scheduled import ScheduledCoefficient, linear_in_epochs

_CODE = "β-DARTS code: Sunshine-Ye/Beta-DARTS"
_SCRIPT = f"{_CODE} nasbench201/train_search.py"
LAMBDA_SCHEDULES = ("linear", "constant")


@dataclass(frozen=True)
class BetaDartsOptions(ChenNb201Options):
    """The authors' NB201 script's settings, plus Beta-Decay."""

    epochs: int = restate(DartsOptions, "epochs", 100, f"{_SCRIPT}:40 (--epochs 100)")
    batch_size: int = restate(DartsOptions, "batch_size", 64, f"{_SCRIPT}:33 (--batch_size 64)")
    w_lr: float = restate(DartsOptions, "w_lr", 0.025, f"{_SCRIPT}:34 (--learning_rate 0.025)")
    w_lr_min: float = restate(DartsOptions, "w_lr_min", 0.001, f"{_SCRIPT}:35 (--learning_rate_min 0.001)")
    w_momentum: float = restate(DartsOptions, "w_momentum", 0.9, f"{_SCRIPT}:36 (--momentum 0.9)")
    grad_clip: float = option(5.0, f"{_SCRIPT}:49 (--grad_clip 5)", "gradient-norm clip (0 = off)",
                              bounds=NON_NEGATIVE)
    a_lr: float = option(3e-4, f"{_SCRIPT}:52 (--arch_learning_rate 3e-4)", "learning rate of α, fixed",
                         bounds=POSITIVE)
    a_weight_decay: float = option(1e-3, f"{_SCRIPT}:53 (--arch_weight_decay 1e-3)", "Adam weight decay (L2) of α",
                                   bounds=NON_NEGATIVE)
    a_beta1: float = restate(DartsOptions, "a_beta1", 0.5,
                             f"{_CODE} optimizers/darts/architect.py:18-19 (Adam betas=(0.5, 0.999))")
    a_beta2: float = restate(DartsOptions, "a_beta2", 0.999,
                             f"{_CODE} optimizers/darts/architect.py:18-19 (Adam betas=(0.5, 0.999))")
    track_running_stats: bool = option(True, f"{_CODE} nasbench201/model.py:128 (Network(..., "
                                       "track_running_stats=True))", "BN running statistics in the searchable cells")
    step_order: str = option("alpha-w", f"{_SCRIPT}:229 (architect.step, then the weight step)",
                             "alpha-w: the α step on the valid batch, then the weight step; w-alpha = weight "
                             "step first", STEP_ORDERS)
    w_nesterov: bool = restate(DartsOptions, "w_nesterov", False,
                               f"{_SCRIPT}:119-123 (torch.optim.SGD with momentum, no nesterov)")
    w_weight_decay: float = restate(DartsOptions, "w_weight_decay", 3e-4, f"{_SCRIPT}:37 (--weight_decay 3e-4)")
    clip_includes_alpha: bool = option(True, f"{_SCRIPT}:248 (clip_grad_norm_(model.parameters()), α an "
                                       "nn.Parameter of nasbench201/model.py:158; the α step's gradient zeroed "
                                       "at :230-231)", "the clip's total norm also counts α's gradient of the "
                                       "weight step, ∇α L_train; false = the weights alone")

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


class BetaDarts(ScheduledCoefficient, DartsCodeClip):
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
        "λ_e = λ_max·e/E with the run's E epochs; the authors' code divides by a fixed 100, its script's "
        "epochs: at the default 100 the two agree, and a run with other --epochs still ends near λ_max.",
        "λ is recorded every epoch (beta_decay_lambda).",
    ),
    factory=BetaDarts,
)
