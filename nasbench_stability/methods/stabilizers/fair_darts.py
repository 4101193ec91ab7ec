"""FairDARTS (Chu et al., ECCV 2020): independent sigmoid gates instead of a softmax, and the zero-one loss.

Edge e outputs Σ_o σ(α_e,o)·o(x): the ops no longer compete for one unit of weight ("collaborative"),
so a skip connection's easy early gains do not starve the convolutions. The α step minimises
``L_valid + L_01`` with ``L_01 = −w·mean((σ(α) − 0.5)²)`` (:func:`..gradient.gates.zero_one_loss`; its
code: ``−w·mse(σ, 0.5)``, w = ``--aux_loss_weight`` 10), which pushes every gate to 0 or 1 so that
discretizing them loses little; the weight step's loss has no regularizer (L_01 does not depend on w).

Candidate ops: FairDARTS' op set has no zero op, and with sigmoid gates a ``none`` column would get no
data gradient (only L_01 would move it, to 0 or 1 by the sign of its initial value): α covers NB201's
four other ops (``include_none=true`` adds it).

Derivation (``derivation``): FairDARTS' code keeps, per edge, the best op if its σ ≥ 0.85 and drops the
edge otherwise (``parse_method=threshold_sparse``, ``op_threshold``), then at most two input edges per
node — a rule for DARTS' space. An NB201 cell keeps all its edges and has one op on each, and a dropped
edge is NB201's ``none``: ``threshold`` is their rule on NB201 (below the threshold → ``none``, no two-edge
limit); ``argmax`` (the default) is NB201's argmax over σ(α), every edge its best candidate, as every
other nbs method derives. Records carry both cells and how many edges pass the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...ranges import BELOW_ONE, FRACTION, NON_NEGATIVE, POSITIVE
from ...space.genotype import Genotype
from ...space.ops import NUM_EDGES, OP_INDEX
from ..base import Batch, StepStats
from ..gradient.darts_family import DartsFamily, DartsOptions
from ..gradient.gates import candidate_ops, to_nb201, zero_one_loss
from ..options import PAPER, XAUTODL_NET, option
from ..registry import register

FAIR_CODE = "FairDARTS code: xiaomi-automl/FairDARTS"
FAIR_SEARCH = f"{FAIR_CODE} fairdarts/train_search.py"
FAIR_GENOTYPES = "FairDARTS code: xiaomi-automl/FairDARTS fairdarts/genotypes.py (PRIMITIVES)"
DERIVATIONS = ("argmax", "threshold")
_NONE = OP_INDEX["none"]


@dataclass(frozen=True)
class FairDartsOptions(DartsOptions):
    """DARTS-V1's NB201 reference settings for the weights, FairDARTS' own for α (optimizer, initialisation),
    and its activation, loss and op set."""

    a_lr: float = option(3e-3, f"{FAIR_SEARCH}:46 (--arch_learning_rate 3e-3)", "learning rate of α, fixed",
                         bounds=POSITIVE)
    a_beta1: float = option(0.9, f"{FAIR_SEARCH}:47 (--arch_lr_gamma 0.9) and fairdarts/architect.py:15-16 (Adam "
                                 "betas=(args.arch_lr_gamma, 0.999))", "Adam β1 of α", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, f"{FAIR_CODE} fairdarts/architect.py:15-16 (Adam betas=(args.arch_lr_gamma, "
                                   "0.999))", "Adam β2 of α", bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, f"{FAIR_SEARCH}:48 (--arch_weight_decay 1e-3)",
                                   "Adam weight decay (L2) of α", bounds=NON_NEGATIVE)
    alpha_init_std: float = option(0.0, f"{FAIR_CODE} fairdarts/model_search.py:125-126 (torch.zeros(k, num_ops)): "
                                   "every gate starts at σ(0) = 0.5", "α initialised as std·N(0, 1)",
                                   bounds=NON_NEGATIVE)
    activation: str = option("sigmoid", PAPER, "σ(α) per op, independently (no softmax)", ("sigmoid",))
    zero_one_weight: float = option(10.0, f"{FAIR_SEARCH}:29", "w of the zero-one loss −w·mean((σ(α)−0.5)²) in the α step "
                                    "(--aux_loss_weight 10; 0 = off)", bounds=NON_NEGATIVE)
    include_none: bool = option(False, FAIR_GENOTYPES, "'none' among the candidate ops; FairDARTS' op set has "
                                "none of it (and a sigmoid gate on it gets no data gradient)")
    derivation: str = option("argmax", XAUTODL_NET, "argmax: every edge its best σ (NB201); threshold: FairDARTS' "
                             "threshold_sparse rule on NB201, an edge whose best σ is below op_threshold "
                             "becomes 'none'", DERIVATIONS)
    op_threshold: float = option(0.85, f"{FAIR_SEARCH}:41", "σ a chosen op must reach under derivation=threshold "
                                 "(--op_threshold 0.85)", bounds=FRACTION)


def threshold_genotype(weights: np.ndarray, threshold: float, include_none: bool = False) -> Genotype:
    """FairDARTS' threshold_sparse on NB201: each edge's best op (argmax over ``weights``, 'none'
    only if ``include_none``) if its weight is ≥ ``threshold``, else 'none' (the edge dropped)."""
    best = Genotype.from_weights(weights, include_none=include_none)
    kept = np.asarray(weights, dtype=np.float64)[np.arange(NUM_EDGES), [OP_INDEX[o] for o in best.ops]] >= threshold
    return Genotype(tuple(op if keep else "none" for op, keep in zip(best.ops, kept)))


class FairDarts(DartsFamily):
    @property
    def candidates(self) -> tuple[int, ...]:
        return candidate_ops(self.options.include_none)

    def alpha_shape(self) -> tuple[int, ...]:
        return (NUM_EDGES, len(self.candidates))

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        """σ(α) in NB201's five columns; a non-candidate 'none' weighs exactly 0 (and is not computed)."""
        return to_nb201(torch.sigmoid(alpha), self.candidates)

    def zero_one(self, alpha: torch.Tensor) -> torch.Tensor:
        """L_01 of the candidates' gates (one value per seed when packed)."""
        return zero_one_loss(self._seed_flat(torch.sigmoid(alpha)), self.options.zero_one_weight)

    def arch_objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = super().arch_objective(x, y)
        if self.options.zero_one_weight:
            loss = loss + self.zero_one(self.alpha)
        return loss, logits

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        stats = super().step(batches, epoch, step, measure_gc)
        stats.op_grad = to_nb201(stats.op_grad, self.candidates, float("nan"))   # 'none': no parameter
        return stats

    def genotype_of(self, weights: np.ndarray) -> Genotype:
        include_none = self.options.derive_none and self.options.include_none
        if self.options.derivation == "threshold":
            return threshold_genotype(weights, self.options.op_threshold, include_none)
        return Genotype.from_weights(weights, include_none=include_none)

    def extra_records(self) -> dict[str, Any]:
        weights = self.op_weights()
        include_none = self.options.derive_none and self.options.include_none
        best = weights[:, list(self.candidates)].max(axis=1)
        with torch.no_grad():
            l01 = float(zero_one_loss(torch.sigmoid(self.alpha).flatten(), 1.0))
        return {
            "argmax_genotype": Genotype.from_weights(weights, include_none=include_none).to_str(),
            "threshold_genotype": threshold_genotype(weights, self.options.op_threshold, include_none).to_str(),
            "edges_above_threshold": int((best >= self.options.op_threshold).sum()),
            "zero_one_term": l01,   # −mean((σ−0.5)²), before the weight w: −0.25 when every gate is 0 or 1
        }


register(
    "fair-darts",
    summary="FairDARTS: independent sigmoid gates + zero-one loss −10·mean((σ−0.5)²) on α; DARTS-V1 steps",
    paper="Chu, Zhou, Zhang, Li. Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture "
          "Search. ECCV 2020",
    options=FairDartsOptions,
    departures=(
        "The authors have no NB201 setting. α's optimizer (Adam 3e-3, betas (0.9, 0.999)) and initialisation "
        "(0) are FairDARTS' own; the weights' optimizer, schedule and step order are DARTS-V1's NB201 reference "
        "(xautodl), not those of FairDARTS' DARTS-space script (lr 0.005, batch 128, wd 3e-4, α step first), "
        "which belong to that space's network.",
        "Derivation: NB201's argmax over σ(α) by default; derivation=threshold applies FairDARTS' "
        "threshold_sparse (σ ≥ 0.85, else the edge is dropped = 'none') without its two-input-edges-per-node "
        "limit, which NB201 cells do not have. Records keep both cells.",
        "Candidate ops: NB201's four non-'none' ops (FairDARTS' op set has no zero op); include_none=true adds it.",
        "The zero-one loss is added to the α step only (FairDARTS also adds it to the weight step's loss, where "
        "it has no gradient).",
    ),
    factory=FairDarts,
)
