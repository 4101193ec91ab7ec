"""DrNAS (Chen et al., ICLR 2021): the op weights of each edge are a draw from a Dirichlet distribution.

Every training forward (the α step's and the weight step's, each its own draw) weights edge e's ops by
``w_e ~ Dir(c_e)``, ``c_e = ELU(α_e) + 1`` (positive for any α), drawn with ``Dirichlet.rsample``:
torch's implicit reparameterization gives ∂w/∂c, so the α step descends ∇α E_w[L_valid(w)] by a one-draw
estimate (the authors' ``process_step_vector``, species ``dirichlet``).

Regularizer (the authors' NB201 code, ``--reg_type l2 --reg_scale 1e-3``): the default is L2 on α, which
their ``Architect`` applies as Adam's weight decay (``a_weight_decay`` = 1e-3). L2 pulls α to 0, i.e. the
concentration to ELU(0) + 1 = 1: the uniform Dirichlet. Their ``reg_type=kl`` adds
``reg_scale·Σ_e KL(Dir(c_e) ‖ Dir(prior))`` to the α loss instead (prior: all-ones concentration, Adam
weight decay 0): here ``kl_weight`` = reg_scale with ``a_weight_decay=0``; both can be combined.

Deterministic uses take the Dirichlet mean c_e / Σ c_e: the recorded ``op_weights``, the supernet's
evaluation, the Hessian indicator (∇²_α L_valid at the mean weights) and the derived cell (argmax of the
mean = argmax α, the authors' ``genotype``). Records: ``concentration`` (ELU(α) + 1 at the epoch's end),
``sampled_weights`` (the mean of the epoch's draws) and ``kl_to_prior`` (Σ_e KL(Dir(c_e) ‖ Dir(prior))).

Progressive learning: the authors' main NB201 script (``201-space/train_search.py``) searches with all
channels (``--k 1``) and all ops, 100 epochs; a second script (``train_search_progressive.py``) runs 50
epochs at K = 4, prunes each edge to its 3 best ops and widens to K = 2 for 50 more, with 10 epochs of
weight steps only at the start of each stage. That schedule is not implemented (widening changes the
convolutions' shapes within a run); ``partial_channels`` runs a whole search at a fixed K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...ranges import COUNT, NON_NEGATIVE, POSITIVE
from ...space.supernet import Supernet
from ..base import SearchContext
from ..gradient.partial_channels import partial_channel_supernet
from ..options import PAPER, option, reference
from ..registry import register
from .common import ChenNb201Options, DartsCodeClip, EpochMeans

DRNAS_NB201 = reference("DrNAS 201-space/train_search.py")
DRNAS_NET = reference("DrNAS 201-space/search_model.py")
DRNAS_ARCHITECT = "DrNAS code: xiangning-chen/DrNAS architect.py"


@dataclass(frozen=True)
class DrnasOptions(ChenNb201Options):
    """The authors' NB201 script where it differs from DARTS-V1's reference; DrNAS' distribution."""

    activation: str = option("dirichlet", PAPER, "op weights drawn from Dir(ELU(α) + 1) in every training forward",
                             ("dirichlet",))
    track_running_stats: bool = option(True, DRNAS_NET, "BN running statistics in the searchable cells "
                                       "(TinyNetwork(track_running_stats=True))")
    a_weight_decay: float = option(1e-3, DRNAS_ARCHITECT, "the L2 regularizer on α: Adam weight decay = --reg_scale "
                                   "1e-3 under --reg_type l2 (their default; reg_type=kl: 0 and kl_weight)",
                                   bounds=NON_NEGATIVE)
    kl_weight: float = option(0.0, DRNAS_NB201, "weight of Σ_e KL(Dir(ELU(α_e)+1) ‖ Dir(prior)) in the α loss "
                              "(their --reg_type kl uses --reg_scale here; 0 = off, their default l2)",
                              bounds=NON_NEGATIVE)
    prior_concentration: float = option(1.0, DRNAS_NET, "concentration of the KL's Dirichlet prior, every op "
                                        "(anchor = Dirichlet(ones))", bounds=POSITIVE)
    partial_channels: int = option(1, DRNAS_NB201, "PC-DARTS partial channels K (--k 1: all channels; their "
                                   "progressive script uses 4 then 2)", bounds=COUNT)


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    """ELU(α) + 1 > 0."""
    return F.elu(alpha) + 1


def dirichlet_weights(conc: torch.Tensor) -> torch.Tensor:
    """One reparameterised draw per row of ``conc`` (each edge its own Dirichlet over its ops)."""
    # validate_args=False: the argument checks would sync with the device every step
    return torch.distributions.Dirichlet(conc, validate_args=False).rsample()


def dirichlet_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Dir(a) ‖ Dir(b)) over the last dimension, in closed form:
    lnΓ(a₀) − Σ lnΓ(aᵢ) − lnΓ(b₀) + Σ lnΓ(bᵢ) + Σ (aᵢ − bᵢ)(ψ(aᵢ) − ψ(a₀)), with a₀ = Σ aᵢ."""
    a0, b0 = a.sum(-1), b.sum(-1)
    return (torch.lgamma(a0) - torch.lgamma(a).sum(-1) - torch.lgamma(b0) + torch.lgamma(b).sum(-1)
            + ((a - b) * (torch.digamma(a) - torch.digamma(a0)[..., None])).sum(-1))


class Drnas(DartsCodeClip):
    packable = False
    solo_reason = "every training forward draws each seed's own Dirichlet sample from the random stream"

    def __init__(self, options: DrnasOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self._means = EpochMeans()

    def graph_blocker(self) -> str | None:
        return "every training forward draws a Dirichlet sample (not checked under CUDA-graph capture)"

    def build_supernet(self) -> Supernet:
        return partial_channel_supernet("drnas", self.ctx.shape, self.options.partial_channels,
                                        self.options.track_running_stats)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._means = EpochMeans()

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        """A fresh draw w ~ Dir(ELU(α) + 1): the op weights of every training forward."""
        w = dirichlet_weights(concentration(alpha))
        self._means.add(sampled_weights=w)
        return w

    def mean_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        c = concentration(alpha)
        return c / c.sum(-1, keepdim=True)

    def op_weights(self) -> np.ndarray:
        with torch.no_grad():
            return self.mean_weights(self.alpha).float().cpu().numpy()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.mean_weights(self.alpha).detach())

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_valid at the mean weights: a deterministic function of α for the Hessian indicator."""
        return self.task_loss(self._forward(x, self.mean_weights(self.alpha)), y)

    def kl_to_prior(self, alpha: torch.Tensor) -> torch.Tensor:
        c = concentration(alpha)
        return dirichlet_kl(c, torch.full_like(c, self.options.prior_concentration)).sum(-1)

    def arch_objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = super().arch_objective(x, y)
        if self.options.kl_weight:
            loss = loss + self.options.kl_weight * self.kl_to_prior(self.alpha)
        return loss, logits

    def extra_records(self) -> dict[str, Any]:
        with torch.no_grad():
            conc = concentration(self.alpha).float().cpu().numpy()
            kl = float(self.kl_to_prior(self.alpha))
        return {"concentration": conc, "kl_to_prior": kl, **self._means.means()}


register(
    "drnas",
    summary="DrNAS: op weights ~ Dirichlet(ELU(α)+1), reparameterised; L2 (or KL) on α; α step first, 100 epochs",
    paper="Chen, Wang, Cheng, Tang, Hsieh. DrNAS: Dirichlet Neural Architecture Search. ICLR 2021",
    options=DrnasOptions,
    departures=(
        "Settings from the authors' NB201 script (DrNAS 201-space/train_search.py), not DARTS-V1's: 100 epochs, "
        "weight decay 3e-4, no Nesterov, α step first; the rest equals DARTS-V1's NB201 reference.",
        "The supernet's evaluation (valid_loss/valid_acc) uses the Dirichlet mean; theirs draws a sample per "
        "evaluation batch.",
        "Progressive learning (train_search_progressive.py: K 4 → 2, 5 → 3 ops per edge) is not implemented; "
        "their main NB201 script does not use it.",
        "The valid batch of each α step comes from nbs' shuffled valid stream (theirs: a random batch per step, "
        "`next(iter(valid_queue))`).",
        "One draw per edge for all cells of a forward, as theirs; the records' sampled_weights average every "
        "draw of the epoch's steps (weight and α steps, and the gradient-correlation measurement).",
    ),
    factory=Drnas,
)
