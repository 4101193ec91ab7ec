"""Factorized architecture parameters (A-DARTS, paper 003) on NB201, and its non-factorized ablation.

Variants:

* ``factorized-act`` (paper-faithful): α over NB201's five ops, β over nine activations that replace
  the ReLU in front of the convs (:class:`~..space.factorized_cell.FactorizedActivationCell`).
* ``factorized-kernel``: α over {none, skip, conv, pool}, β over the conv's kernel {1×1, 3×3}. The
  edge equals a NB201 mixed edge with op weights ``[a_none, a_skip, a_conv·b_1x1, a_conv·b_3x3,
  a_pool]``, so it runs on the fused MixedCell, and ``op_weights()`` returns that matrix: each
  column is the weight the op really has in the supernet, rows sum to 1.
* ``nonfactorized-act``: one softmax over the 21 (activation, conv) pairs and parameter-free ops.

The step is the paper's Algorithm 1 (first order): a weight step on ``train``, then an α step on the
architecture batch, then a β step on the same batch with the updated α — each factor with its own
Adam (DartsFamily's ``step_order=w-alpha`` with β as a second architecture factor). The ablation
has α only, and takes the same order (w, then α) so the two differ only in the parameterization.
``mode`` picks the architecture batch as for DARTS (``valid`` half, a second ``train`` batch); in
``single-level`` one backward on one batch gives ∇w, ∇α and ∇β, and all three step.

Records: ``op_grad`` is ∂L/∂α over O1 (shape (6, |O1|)); ``beta_grad`` the same for β. The
benchmark holds ReLU cells only: ``lookup_exact`` says whether the derived cell is one (every conv
edge chose ReLU, or has no conv); otherwise the lookup scores the regular-op genotype and is an
approximation. ``act_choice`` lists argmax-β per edge, ``activation_genotype`` the cell with the
conv edges' activations, e.g. ``|nor_conv_3x3[selu]~0|+...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...ranges import BELOW_ONE, EPOCHS, NON_NEGATIVE, POSITIVE
from ...space.factorized_cell import (
    ACTIVATIONS,
    CONV_OPS,
    KERNEL_O1,
    KERNEL_O2,
    PAIR_CANDIDATES,
    ActivationPairCell,
    EdgeSumCell,
    FactorizedActivationCell,
    kernel_factorized_weights,
    pack_activation_weights,
    pair_parts,
)
from ...space.genotype import Genotype
from ...space.ops import EDGES, NUM_EDGES, NUM_NODES, NUM_OPS, OP_INDEX, OPS
from ...space.supernet import Supernet
from ..base import Batch, SearchContext, StepStats
from .darts_family import MODES, DartsFamily, DartsOptions, arch_optimizer
from ..options import DARTS_CODE, PAPER, XAUTODL_NET, option
from ..registry import register

_PAPER = "Wang, Xie, Zhang, Guo, Tian. Scalable NAS with Factorizable Architectural Parameters (A-DARTS). AAAI 2021"
_CONV_NAMES = frozenset(op for op, _ in CONV_OPS)


@dataclass(frozen=True)
class FactorizedOptions(DartsOptions):
    """A-DARTS' CIFAR-10 search settings; the rest (momentum, wd of w, clip, batch) NB201 reference."""

    epochs: int = option(25, PAPER, "search epochs (the paper's convergence point on CIFAR-10)", bounds=EPOCHS)
    mode: str = option("bilevel", PAPER, "where the α/β batch comes from (Algorithm 1: the validation set)", MODES)
    activation: str = option("softmax", PAPER, "softmax over O1 (eq. 1) and over O2 (eq. 2)", ("softmax",))
    order: int = option(1, PAPER, "first-order gradients (Algorithm 1); no unrolled variant", (1,))
    step_order: str = option("w-alpha", PAPER, "Algorithm 1: w on train, then α, then β on the valid batch",
                             ("w-alpha",))
    clip_includes_alpha: bool = option(False, DARTS_CODE, "the clip covers the weights alone (the DARTS code "
                                       "the paper follows keeps α out of model.parameters())")
    track_running_stats: bool = option(True, DARTS_CODE, "BN running statistics in the searchable cells "
                                       "(DARTS' nn.BatchNorm2d(affine=False) keeps them); the search is the "
                                       "same either way, only eval-mode accuracies differ")
    w_lr: float = option(0.05, PAPER, "SGD learning rate of the weights, cosine-annealed", bounds=POSITIVE)
    w_lr_min: float = option(0.001, PAPER, "cosine annealing floor of the weight learning rate", bounds=NON_NEGATIVE)
    a_lr: float = option(6e-4, PAPER, "fixed Adam learning rate, for α and for β (same configuration)", bounds=POSITIVE)
    a_beta1: float = option(0.5, PAPER, "Adam β1 of both architecture optimizers", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, PAPER, "Adam β2 of both architecture optimizers", bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, PAPER, "Adam weight decay (L2) of both architecture optimizers",
                                   bounds=NON_NEGATIVE)
    alpha_init_std: float = option(1e-3, XAUTODL_NET, "α and β initialised as std·N(0, 1) (xautodl's α init)",
                                   bounds=NON_NEGATIVE)




def _step_seed(seed: int, epoch: int, step: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_003 + step) % (2 ** 63)


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class NoisyActivations(DartsFamily):
    """``noise`` (None unless the space has RReLU) is reseeded from (seed, epoch, step) before every
    step, so stochastic activations are reproducible and resume-safe."""

    noise: torch.Generator | None = None
    packable = False
    solo_reason = ("β's combination with α and the per-step noise generator are not yet written for a leading "
                   "seed axis")

    def graph_blocker(self) -> str | None:
        return "the activation-noise generator is reseeded on the host before every step"

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        if self.noise is not None:
            self.noise.manual_seed(_step_seed(self.ctx.seed, epoch, step))
        return super().step(batches, epoch, step, measure_gc)


class Factorized(NoisyActivations):
    """α over O1 plus β (shape (E, |O2|)) with its own Adam: |O1| + |O2| parameters per edge.

    ``arch_parameters()`` stays [α]: it is what the α optimizer steps and what the Hessian analysis
    differentiates (∇²_α L_valid); β is :attr:`beta`, stepped by :attr:`b_opt`.
    """

    O1: tuple[str, ...]
    O2: tuple[str, ...]

    def __init__(self, options: FactorizedOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self.beta = nn.Parameter(options.alpha_init_std * torch.randn(NUM_EDGES, len(self.O2), device=ctx.device))
        self.b_opt = arch_optimizer([self.beta], options, ctx.device)   # β's optimizer is α's (same configuration)

    def alpha_shape(self) -> tuple[int, ...]:
        return (NUM_EDGES, len(self.O1))

    def arch_factors(self):
        return super().arch_factors() + [("beta", self.beta, self.b_opt)]   # Algorithm 1: α, then β

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "beta": self.b_opt}

    def learning_rates(self) -> dict[str, float]:
        return {**super().learning_rates(), "lr_beta": float(self.b_opt.param_groups[0]["lr"])}

    def factor_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """softmax(α) over O1 and softmax(β) over O2, per edge."""
        return torch.softmax(self.alpha, dim=-1), torch.softmax(self.beta, dim=-1)

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        """The cell's weight tensor from α (given) and β (the module's)."""
        return self.combine(torch.softmax(alpha, dim=-1), torch.softmax(self.beta, dim=-1))

    def combine(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ActivationSpace:
    """Mixin for the spaces with searchable activations: their cells, RReLU noise, records."""

    CELL: type[EdgeSumCell]
    # the cells weigh activations (or activation-conv pairs), not NB201 ops: a one-hot NB201 matrix
    # does not describe one of their discrete cells
    evaluates_discrete_cells = False

    def build_supernet(self) -> Supernet:
        self.noise = torch.Generator(device=self.ctx.device)
        track, noise = self.options.track_running_stats, self.noise
        return Supernet(self.ctx.shape, lambda c: self.CELL(c, track_running_stats=track, generator=noise))

    def activation_records(self, genotype: Genotype, acts: list[str]) -> dict[str, Any]:
        conv_acts = [a for op, a in zip(genotype.ops, acts) if op in _CONV_NAMES]
        return {"act_choice": acts, "activation_genotype": _annotated_arch(genotype, acts),
                "lookup_exact": all(a == "relu" for a in conv_acts)}


def _annotated_arch(genotype: Genotype, acts: list[str]) -> str:
    """The arch string with each conv's activation: ``|nor_conv_3x3[selu]~0|+...``."""
    by_target: dict[int, list[str]] = {t: [] for t in range(1, NUM_NODES)}
    for (s, t), op, act in zip(EDGES, genotype.ops, acts):   # EDGES is in arch-string order
        by_target[t].append(f"{op}[{act}]~{s}" if op in _CONV_NAMES else f"{op}~{s}")
    return "+".join("|" + "|".join(tokens) + "|" for tokens in by_target.values())


class FactorizedAct(ActivationSpace, Factorized):
    """``factorized-act``: O1 = NB201's ops (α in ``OPS`` order), O2 = :data:`ACTIVATIONS`."""

    O1, O2, CELL = OPS, ACTIVATIONS, FactorizedActivationCell

    def combine(self, o1, o2):
        return pack_activation_weights(o1, o2)

    def op_weights(self) -> np.ndarray:
        return _as_numpy(torch.softmax(self.alpha, dim=-1))

    def extra_records(self) -> dict[str, Any]:
        act_w = _as_numpy(torch.softmax(self.beta, dim=-1))
        acts = [ACTIVATIONS[i] for i in act_w.argmax(axis=1)]
        return {"act_weights": act_w, **self.activation_records(self.derive(), acts)}


class FactorizedKernel(Factorized):
    """``factorized-kernel``: O1 = {none, skip, conv, pool}, O2 = {1×1, 3×3}; the fused MixedCell."""

    O1, O2 = KERNEL_O1, KERNEL_O2

    def combine(self, o1, o2):
        return kernel_factorized_weights(o1, o2)

    def derive(self) -> Genotype:
        """argmax over O1; a conv becomes the argmax-β kernel. This is not the argmax of
        ``op_weights()``: a_conv = 0.5 split 0.25/0.25 beats a_skip = 0.3 in O1 (the factorized
        decision), while the NB201 matrix would pick skip."""
        o1, o2 = (_as_numpy(w) for w in self.factor_weights())
        ops = [KERNEL_O2[k] if KERNEL_O1[i] == "conv" else KERNEL_O1[i]
               for i, k in zip(o1.argmax(axis=1), o2.argmax(axis=1))]
        return Genotype(tuple(ops))

    def extra_records(self) -> dict[str, Any]:
        o1, o2 = (_as_numpy(w) for w in self.factor_weights())
        return {"o1_weights": o1, "kernel_weights": o2, "lookup_exact": True}


class NonFactorizedAct(ActivationSpace, NoisyActivations):
    """``nonfactorized-act``: one softmax over :data:`PAIR_CANDIDATES` (21 per edge), α only.

    ``op_weights()`` is the NB201 marginal: a conv column sums its nine pairs.
    """

    CELL = ActivationPairCell
    _TO_NB201 = torch.tensor([OP_INDEX[pair_parts(c)[0]] for c in PAIR_CANDIDATES])

    def alpha_shape(self) -> tuple[int, ...]:
        return (NUM_EDGES, len(PAIR_CANDIDATES))

    def op_weights(self) -> np.ndarray:
        w = torch.softmax(self.alpha.detach().float().cpu(), dim=-1)
        return torch.zeros(NUM_EDGES, NUM_OPS).index_add_(1, self._TO_NB201, w).numpy()

    def derive(self) -> Genotype:
        best = self.alpha.detach().argmax(dim=1).tolist()
        return Genotype(tuple(pair_parts(PAIR_CANDIDATES[i])[0] for i in best))

    def extra_records(self) -> dict[str, Any]:
        w = _as_numpy(torch.softmax(self.alpha, dim=-1))
        first = ActivationPairCell.FIRST_PAIR
        acts = [pair_parts(PAIR_CANDIDATES[first + int(i)])[1] for i in w[:, first:].argmax(axis=1)]
        return {"candidate_weights": w, **self.activation_records(self.derive(), acts)}


_FIRST_ORDER = "First-order only (Algorithm 1 as written); no unrolled gradient."
_NB201_NET = ("Search network, momentum, wd of w (5e-4), clip and batch: NB201 reference, not the paper's "
              "8-cell DARTS proxy; O1 is NB201's op set.")
_ACT_DEPARTURES = (
    "The activation mixture replaces the ReLU of NB201's ReLU-Conv-BN (the paper: of the DARTS ops).",
    "The benchmark scores ReLU cells only: a cell whose convs chose another activation is looked up "
    "by its regular ops (lookup_exact = False).",
    "PReLU slopes and Swish b are network weights, updated by SGD with its weight decay.",
    "RReLU noise comes from a generator reseeded every step from (seed, epoch, step), not the global RNG.",
)

register("factorized-act", summary="A-DARTS: α over NB201 ops × β over 9 activations, tri-level (w, α, β)",
         paper=_PAPER, options=FactorizedOptions, departures=(_FIRST_ORDER, _NB201_NET) + _ACT_DEPARTURES,
         factory=FactorizedAct)
register("factorized-kernel",
         summary="A-DARTS on NB201's own ops: α over {none, skip, conv, pool} × β over kernel {1x1, 3x3}",
         paper=_PAPER, options=FactorizedOptions,
         departures=(_FIRST_ORDER, _NB201_NET,
                     "Our variant (the paper's future work: factorize convs by kernel size); "
                     "separate 1x1 and 3x3 weights, so the derived cell is exactly a NB201 cell."),
         factory=FactorizedKernel)
register("nonfactorized-act", summary="A-DARTS ablation: 2x9 (activation, conv) pairs + 3 free ops in one softmax",
         paper=_PAPER, options=FactorizedOptions,
         departures=(_FIRST_ORDER, _NB201_NET) + _ACT_DEPARTURES + (
             "Each (activation, conv) pair has its own conv weights; the step order is w, then α, as in "
             "the factorized variants, so the ablation changes only the parameterization.",),
         factory=NonFactorizedAct)
