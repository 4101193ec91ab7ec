"""SDARTS (Chen & Hsieh, ICML 2020): the weight step trains the supernet at perturbed architecture weights.

Each step (the authors' NB201 script, ``nasbench201/train_search.py``): the α step on a valid batch at
the unperturbed weights, then the weight step on a train batch with the op weights w = softmax(α)
replaced by ``w̃ = clip(w + δ)``, ‖δ‖∞ ≤ ε, where ``clip`` puts each edge's row back on the simplex
(clamp to [0, 1], divide by the row sum; a row clamped to all zeros gets 1 on its largest entry — their
``Network.clip``). The perturbation is on the activated weights, not on α.

* ``sdarts-rs`` (``perturbation=random``): δ ~ U(−ε, ε) elementwise (``Random_alpha``).
* ``sdarts-adv`` (``perturbation=pgd``): δ from a PGD attack maximising the weight step's train-batch loss
  (``Linf_PGD_alpha``): random start δ ~ U(−ε, ε), then ``attack_steps`` (7) signed-gradient ascent steps of
  size 2ε/steps on w̃, each followed by the projection δ = clamp(w̃ − w, −ε, ε), w̃ = clip(w + δ); if the
  attacked loss ends below the unperturbed one the attack is dropped (w̃ = w). The attack runs in eval
  mode, as theirs (BN with running statistics, which nbs keeps by default as their network does).

ε grows linearly over the epochs, ``ε(e) = ε_min + (ε_max − ε_min)·e/E`` for the 0-based epoch e of E:
0.03 → 0.3 in their script (``0.03 + (args.epsilon_alpha − 0.03) * epoch / args.epochs``, epsilon_alpha
0.3), for both variants. The α step never sees a perturbation; nor do evaluation, the records'
op weights and the Hessian.

Records: ``sdarts_epsilon`` (the epoch's ε), ``perturbation_linf`` (mean over steps of max |w̃ − w|, after
the clip), and for PGD ``attack_loss_gain`` (mean of loss(w̃) − loss(w) of the attack, before dropping a
failed one) and ``attack_kept`` (the fraction of steps whose attack was kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ...errors import ConfigError
from ...ranges import COUNT, FRACTION
from ..base import Batch, SearchContext, StepStats
from ..options import reference, option
from ..registry import register
from .common import ChenNb201Options, DartsCodeClip, EpochMeans

SDARTS_NB201 = reference("SmoothDARTS nasbench201/train_search.py")
SDARTS_NET = reference("SmoothDARTS nasbench201/model.py")
SDARTS_ATTACK = "SDARTS code: xiangning-chen/SmoothDARTS attacker/perturb.py"
PERTURBATIONS = ("random", "pgd")


@dataclass(frozen=True)
class SdartsOptions(ChenNb201Options):
    """The authors' NB201 script where it differs from DARTS-V1's reference; SDARTS' perturbation."""

    track_running_stats: bool = option(True, SDARTS_NET, "BN running statistics in the searchable cells "
                                       "(Network(track_running_stats=True)); the PGD attack runs in eval mode "
                                       "and so uses them")
    perturbation: str = option("random", SDARTS_NB201, "random: δ ~ U(−ε, ε) (SDARTS-RS, --perturb_alpha random); "
                               "pgd: a PGD attack within ε (SDARTS-ADV, pgd_linf)", PERTURBATIONS)
    epsilon_min: float = option(0.03, SDARTS_NB201, "ε of the first epoch (0.03 + (ε_max − 0.03)·epoch/epochs)",
                                bounds=FRACTION)
    epsilon_max: float = option(0.3, SDARTS_NB201, "ε approached at the last epoch (--epsilon_alpha 0.3); "
                                "= epsilon_min for a constant ε", bounds=FRACTION)
    attack_steps: int = option(7, SDARTS_ATTACK, "PGD steps of size 2ε/steps (Linf_PGD_alpha steps=7)",
                               bounds=COUNT)
    random_start: bool = option(True, SDARTS_ATTACK, "PGD starts from δ ~ U(−ε, ε) (random_start=True)")

    def __post_init__(self) -> None:
        if self.epsilon_min > self.epsilon_max:
            raise ConfigError(f"sdarts: epsilon_min={self.epsilon_min} exceeds epsilon_max={self.epsilon_max}")
        if self.mode == "single-level":
            raise ConfigError("sdarts: mode=single-level takes ∇w and ∇α from one forward, but only the weight "
                              "step may see the perturbation; use bilevel or single-level-two-batches")


@dataclass(frozen=True)
class SdartsAdvOptions(SdartsOptions):
    perturbation: str = option("pgd", SDARTS_NB201, "pgd: a PGD attack within ε (SDARTS-ADV, --perturb_alpha "
                               "pgd_linf); random: δ ~ U(−ε, ε) (SDARTS-RS)", PERTURBATIONS)


def simplex_clip(w: torch.Tensor) -> torch.Tensor:
    """Each row clamped to [0, 1] and divided by its sum; a row clamped to all zeros gets 1 at its
    largest entry before the clamp (SDARTS' ``Network.clip``)."""
    clamped = w.clamp(0, 1)
    total = clamped.sum(-1, keepdim=True)
    empty = total == 0
    top = torch.zeros_like(w).scatter_(-1, w.argmax(-1, keepdim=True), 1.0)
    return torch.where(empty, top, clamped) / torch.where(empty, torch.ones_like(total), total)


def uniform_offset(like: torch.Tensor, epsilon: float) -> torch.Tensor:
    """δ ~ U(−ε, ε) elementwise, from the global random stream (checkpointed by the engine)."""
    return (torch.rand_like(like) * 2 - 1) * epsilon


def pgd_offset(loss_of: Callable[[torch.Tensor], torch.Tensor], base: torch.Tensor, epsilon: float, steps: int,
               random_start: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SDARTS' L∞ PGD on the op weights ``base`` (rows on the simplex): returns (δ with ‖δ‖∞ ≤ ε whose
    weights are ``simplex_clip(base + δ)``, whether the attack is kept — its loss ≥ the unperturbed one —
    and that loss difference). Host-sync free: the keep decision stays a device tensor."""
    base = base.detach()
    with torch.no_grad():
        before = loss_of(base)
    delta = uniform_offset(base, epsilon) if random_start else torch.zeros_like(base)
    w = simplex_clip(base + delta)
    step_size = 2 * epsilon / steps
    for _ in range(steps):
        w = w.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of(w), [w])
        # Linf_SGD on −loss: w ← w + lr·sign(∇loss), then back into the ε box around base and onto the simplex
        delta = (w.detach() + step_size * grad.sign() - base).clamp(-epsilon, epsilon)
        w = simplex_clip(base + delta)
    with torch.no_grad():
        gain = loss_of(w) - before
    return delta, gain >= 0, gain


class Sdarts(DartsCodeClip):
    packable = False
    solo_reason = "every step draws each seed's own random perturbation (and PGD start) from the random stream"

    def __init__(self, options: SdartsOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self._delta: torch.Tensor | None = None
        self._keep: torch.Tensor | None = None
        self._epsilon = self.epsilon(0)
        self._means = EpochMeans()

    def graph_blocker(self) -> str | None:
        return "each step draws a random perturbation (not checked under CUDA-graph capture)"

    def epsilon(self, epoch: int) -> float:
        o = self.options
        return o.epsilon_min + (o.epsilon_max - o.epsilon_min) * epoch / max(self.ctx.epochs, 1)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._means = EpochMeans()

    # ---- weights ------------------------------------------------------------------------------
    def mixture(self, alpha: torch.Tensor) -> torch.Tensor:
        """The unperturbed op weights (DARTS' activation)."""
        return super().activate(alpha)

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        """The mixture, perturbed while the weight step runs (differentiable in α through the clip)."""
        w = self.mixture(alpha)
        if self._delta is None:
            return w
        perturbed = simplex_clip(w + self._delta)
        return perturbed if self._keep is None else torch.where(self._keep, perturbed, w)

    # ---- the step -----------------------------------------------------------------------------
    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        self._epsilon = self.epsilon(epoch)
        return super().step(batches, epoch, step, measure_gc)

    def _weight_step(self, batch: Batch, keep_raw_grads: bool = False):
        base = self.mixture(self.alpha).detach()
        if self.options.perturbation == "pgd":
            self._delta, self._keep, gain = self._attack(batch, base)
            self._means.add(attack_loss_gain=gain, attack_kept=self._keep.double())
        else:
            self._delta, self._keep = uniform_offset(base, self._epsilon), None
        try:
            with torch.no_grad():
                self._means.add(perturbation_linf=(self.activate(self.alpha) - base).abs().max())
            return super()._weight_step(batch, keep_raw_grads)
        finally:
            self._delta = self._keep = None

    def _attack(self, batch: Batch, base: torch.Tensor):
        x, y = batch
        was_training = self.training
        self.eval()   # as theirs: BN in eval mode, running statistics left alone by the attack's forwards
        try:
            return pgd_offset(lambda w: self.task_loss(self._forward(x, w), y), base, self._epsilon,
                              self.options.attack_steps, self.options.random_start)
        finally:
            self.train(was_training)

    def extra_records(self) -> dict[str, Any]:
        return {"sdarts_epsilon": self._epsilon, **self._means.means()}


_PAPER = ("Chen, Hsieh. Stabilizing Differentiable Architecture Search via Perturbation-based Regularization "
          "(SDARTS). ICML 2020")
_DEPARTURES = (
    "Settings from the authors' NB201 script (SmoothDARTS nasbench201/train_search.py), not DARTS-V1's: "
    "100 epochs, weight decay 3e-4, no Nesterov, α step first; the rest equals DARTS-V1's NB201 reference.",
    "The valid batch of each α step comes from nbs' shuffled valid stream (theirs: a random batch per step, "
    "`next(iter(valid_queue))`).",
    "Their weight step writes w̃ into α's storage, so its clip counts ∂L/∂w̃; here α stays α and the clip "
    "counts ∂L/∂α through w̃ = clip(softmax(α) + δ) (clip_includes_alpha; the α step's gradient is not "
    "counted, as their Architect zeroes it).",
    "ε per epoch follows their formula with epoch/epochs (the last epoch's ε stays below epsilon_max).",
)
register("sdarts-rs", summary="SDARTS-RS: weight step at softmax(α) + U(−ε, ε) noise (ε 0.03 → 0.3), α step clean",
         paper=_PAPER, options=SdartsOptions, departures=_DEPARTURES, factory=Sdarts)
register("sdarts-adv", summary="SDARTS-ADV: weight step at a 7-step PGD attack on softmax(α) within ε (0.03 → 0.3)",
         paper=_PAPER, options=SdartsAdvOptions, departures=_DEPARTURES, factory=Sdarts)
