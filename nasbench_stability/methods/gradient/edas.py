"""EDAS (paper 004): relax one sampled edge per step, run every other edge as its argmax-α op.

Each step draws one edge index e uniformly (the same edge in every cell: α is shared). The network
of that step has op weights

* row e: softmax(s·α_e) over all five ops (the relaxed edge; s = −1 during EDAS-inv's warm-up),
* every other row: one-hot on argmax(s·α) — weight exactly 1, and only that op is computed (the
  supernet's ``active`` mask), so those edges are constants for autograd.

The α step (a ``valid`` batch, first order, DARTS' order: α then w) therefore only produces ∂L/∂α_e.
Adam would still move the other rows (its momentum from earlier steps, and the warm-up's L2 term),
so after each step the other rows of α *and of Adam's moments* are put back bit-for-bit
(``freeze_unsampled``): a row changes only in the steps that sample it, a coordinate-descent
scheme, which is the paper's motivation (§3.2) and the reason it sets the α weight decay to 0.

Variants (paper §5.3):

* ``edas``: the weight step trains the sampled-edge network too (the paper's Figure 2);
* ``edas-inv``: ``edas`` with a warm-up — for the first 40% of the epochs (10 of 25) the sign of
  α is reversed on every other step ("we alternately inverse architecture parameters", "reversing
  the sign of architecture parameters at every iteration"; ``inversion=alternate``, the default):
  counting steps over the run, even steps use softmax(α), odd steps softmax(−α) — in the relaxed
  softmax and in the argmax of the other edges alike — so both ends of the ranking get trained
  ("to give a fair learning chance to all candidate operations"); the α weight decay is 1e-3.
  ``inversion=constant`` uses −α on every warm-up step: the α gradient then goes through −α, so the
  ops that help during the warm-up get *low* α, and the switch to +α hands the single-path edges
  to the ops that helped least (seen on CIFAR-10: the cell turns parameter-free at the switch);
* ``alpha-max``: the weight step trains the pure argmax network (every edge single-path); the α
  step still relaxes one sampled edge, since a single-path network gives α no gradient.

Recorded per epoch: ``op_weights`` is the activation in use between steps (softmax(−α) during a
constant warm-up, softmax(α) otherwise, the alternating warm-up included), and the genotype its argmax, i.e. the single-path cell
the supernet runs and ``valid_acc`` evaluates; after the warm-up that is the paper's derivation
(top-1 α). ``edge_samples`` counts how often each edge was relaxed in the epoch, ``warmup_active``
says whether the epoch was a warm-up epoch.
``op_grad`` is ∂L/∂α averaged over all steps, zeros included for the rows not sampled in a step.

The edge of step (epoch, step) comes from a generator seeded with
``derive_seed(seed, "edas", epoch, step)``: a pure function of the step, so a resumed run draws the
same edges without any saved RNG state; and the variants of one seed draw the same edge sequence,
so their comparison is not blurred by different samples.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ...data.pipeline import derive_seed
from ...ranges import BATCH_SIZE, BELOW_ONE, EPOCHS, FRACTION, NON_NEGATIVE, POSITIVE
from ...space.live_ops import live_pairs
from ...space.ops import NUM_EDGES, NUM_OPS
from ..base import Batch, SearchContext, StepStats
from .darts_family import MODES, STEP_ORDERS, DartsFamily, DartsOptions
from ..options import DARTS_CODE, OURS, PAPER, option
from ..registry import register

WEIGHT_PATHS = ("sampled-edge", "argmax")
INVERSIONS = ("constant", "alternate")
Active = tuple[tuple[bool, ...], ...]


@dataclass(frozen=True)
class EdasOptions(DartsOptions):
    """EDAS-inv's settings (§4.1); ``edas`` and ``alpha-max`` change the warm-up and the weight path."""

    epochs: int = option(25, PAPER, "search epochs (§4.1)", bounds=EPOCHS)
    batch_size: int = option(64, PAPER, "batch size of every stream (§4.1)", bounds=BATCH_SIZE)
    mode: str = option("bilevel", PAPER, "optimization mode (bi-level from DARTS, §4.1)", MODES)
    step_order: str = option("alpha-w", DARTS_CODE, "the α step, then the weight step on the same sampled edge "
                             "('bilevel optimization adopted from DARTS', §4.1: architect.step first)", STEP_ORDERS)
    clip_includes_alpha: bool = option(False, DARTS_CODE, "the clip covers the weights alone (DARTS keeps α out "
                                       "of model.parameters())", (False,))
    track_running_stats: bool = option(True, DARTS_CODE, "BN running statistics in the searchable cells "
                                       "(DARTS' nn.BatchNorm2d(affine=False) keeps them); the search is the "
                                       "same either way, only eval-mode accuracies differ")
    activation: str = option("softmax", PAPER, "activation on α (eq. 1 and 3)", ("softmax",))
    order: int = option(1, OURS, "first-order α gradient: the paper does not say; its 0.125 GPU-day cost and "
                                 "its comparison with DARTS first order suggest it (second order not offered)", (1,))
    w_lr: float = option(0.025, PAPER, "SGD learning rate of the weights, cosine-annealed (§4.1)", bounds=POSITIVE)
    w_lr_min: float = option(0.001, PAPER, "cosine annealing floor of the weight learning rate (§4.1)",
                             bounds=NON_NEGATIVE)
    w_momentum: float = option(0.9, PAPER, "SGD momentum (§4.1)", bounds=BELOW_ONE)
    w_weight_decay: float = option(3e-4, PAPER, "weight decay of the weights (§4.1)", bounds=NON_NEGATIVE)
    a_lr: float = option(0.025, PAPER, "Adam learning rate of α (§4.1)", bounds=POSITIVE)
    a_beta1: float = option(0.5, PAPER, "Adam β1 of α (§4.1)", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, PAPER, "Adam β2 of α (§4.1)", bounds=BELOW_ONE)
    a_weight_decay: float = option(0.0, PAPER, "α weight decay after the warm-up (0: unsampled rows stay put)",
                                   bounds=NON_NEGATIVE)
    weight_path: str = option("sampled-edge", PAPER, "network of the weight step: sampled-edge (EDAS) or "
                                                     "argmax, every edge single-path (α-max, §5.3)", WEIGHT_PATHS)
    warmup_fraction: float = option(0.4, PAPER, "fraction of the epochs with softmax(−α) and the warm-up α "
                                                "weight decay (10 of 25 epochs, §4.1; 0 = no warm-up)", bounds=FRACTION)
    warmup_a_weight_decay: float = option(1e-3, PAPER, "α weight decay during the warm-up (§4.1, 'as in DARTS')",
                                          bounds=NON_NEGATIVE)
    inversion: str = option("alternate", PAPER, "warm-up steps that use −α: alternate = every other step, even "
                                                "steps +α and odd steps −α (§3.3: 'we alternately inverse "
                                                "architecture parameters', 'at every iteration'); constant = −α "
                                                "on every warm-up step", INVERSIONS)
    freeze_unsampled: bool = option(True, OURS, "restore the unsampled rows of α and of Adam's moments after "
                                                "every α step, so that only α_e moves")


@dataclass(frozen=True)
class EdasPlainOptions(EdasOptions):
    warmup_fraction: float = option(0.0, PAPER, "no warm-up: EDAS without inversion (Table 2 'EDAS CIFAR10')",
                                    bounds=FRACTION)


@dataclass(frozen=True)
class AlphaMaxOptions(EdasPlainOptions):
    weight_path: str = option("argmax", PAPER, "network of the weight step: argmax, every edge single-path "
                                               "(α-max, §5.3)", WEIGHT_PATHS)


class Edas(DartsFamily):
    """DartsFamily on a single-path network with one relaxed, uniformly sampled edge per step."""

    packable = False
    solo_reason = ("each seed relaxes its own randomly drawn edge every step, so the seeds compute different "
                   "ops (a host-side mask), which one vmapped network cannot express")

    def graph_blocker(self) -> str | None:
        return "the relaxed edge is drawn on the host and the argmax path read back (.tolist) every step"

    def __init__(self, options: EdasOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self._learnable_groups = self._gc_groups   # all (edge, conv op); _gc_groups: those computed this step
        self._edge: int | None = None              # the relaxed edge of the current step
        self._iteration: int | None = None         # the current step counted over the run (None between steps)
        self._edge_counts = np.zeros(NUM_EDGES, dtype=np.int64)
        self._set_phase(0)

    # ---- phase and sampling -----------------------------------------------------------------
    @property
    def warmup_epochs(self) -> int:
        return math.floor(self.options.warmup_fraction * self.ctx.epochs + 0.5)

    def _set_phase(self, epoch: int) -> None:
        """Warm-up or not: the sign of α in the activation and the α weight decay of this epoch."""
        self._warmup = epoch < self.warmup_epochs
        decay = self.options.warmup_a_weight_decay if self._warmup else self.options.a_weight_decay
        for group in self.a_opt.param_groups:
            group["weight_decay"] = decay

    def begin_epoch(self, epoch: int) -> None:
        self._set_phase(epoch)
        self._edge_counts[:] = 0

    def sample_edge(self, epoch: int, step: int) -> int:
        """The relaxed edge of (epoch, step): uniform, and a pure function of (seed, epoch, step)."""
        g = torch.Generator().manual_seed(derive_seed(self.ctx.seed, "edas", epoch, step))
        return int(torch.randint(NUM_EDGES, (1,), generator=g))

    # ---- the network of a step --------------------------------------------------------------
    def inverted(self) -> bool:
        """Whether the activation uses −α now. Between steps (records, evaluation) ``alternate``
        shows α itself, as its steps see +α and −α in turn."""
        if not self._warmup:
            return False
        if self.options.inversion == "constant":
            return True
        return self._iteration is not None and self._iteration % 2 == 1

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(-alpha if self.inverted() else alpha, dim=-1)

    def single_path(self, edge: int | None) -> tuple[torch.Tensor, Active]:
        """Op weights and ``active`` mask: row ``edge`` relaxed (None: none), the others one-hot argmax."""
        probs = self.activate(self.alpha)
        chosen = probs.detach().argmax(dim=1)
        weights = F.one_hot(chosen, NUM_OPS).to(probs.dtype)
        if edge is not None:
            relaxed = torch.arange(NUM_EDGES, device=probs.device) == edge
            weights = torch.where(relaxed[:, None], probs, weights)
        picks = chosen.tolist()
        active = tuple(tuple(e == edge or o == picks[e] for o in range(NUM_OPS)) for e in range(NUM_EDGES))
        return weights, active

    def _weight_step_edge(self) -> int | None:
        return self._edge if self.options.weight_path == "sampled-edge" else None

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor, arch_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The α step's network when ``arch_grad`` (edge e relaxed), else the weight step's."""
        weights, active = self.single_path(self._edge if arch_grad else self._weight_step_edge())
        logits = self._forward(x, weights if arch_grad else weights.detach(), active)
        return F.cross_entropy(logits, y), logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The derived (all-argmax) network: what the genotype of this epoch is."""
        weights, active = self.single_path(None)
        return self._forward(x, weights, active)

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Σ_e L_e(α), L_e the loss with edge e relaxed and the others at their argmax op.

        Its α-Hessian is block diagonal with the Hessians of EDAS' per-step objectives as blocks,
        so its dominant eigenvalue is that of the sharpest edge.
        """
        return sum(F.cross_entropy(self._forward(x, *self.single_path(e)), y) for e in range(NUM_EDGES))

    # ---- one step ---------------------------------------------------------------------------
    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        self._edge = self.sample_edge(epoch, step)
        self._edge_counts[self._edge] += 1
        self._iteration = epoch * self.ctx.steps_per_epoch + step
        try:
            self._gc_groups = self._groups_used_by(self._edge) if measure_gc else {}
            return super().step(batches, epoch, step, measure_gc)
        finally:
            self._iteration = None

    def _arch_phase(self, train: Batch, arch: Batch, with_weight_grads: bool):
        with self._only_row_moves(self._edge):
            return super()._arch_phase(train, arch, with_weight_grads)

    def _single_level_step(self, batch: Batch, measure_gc: bool) -> StepStats:
        with self._only_row_moves(self._edge):
            return super()._single_level_step(batch, measure_gc)

    def _weight_step(self, batch: Batch, keep_raw_grads: bool = False):
        if keep_raw_grads:  # gc only for the ops that both steps' networks computed
            used = self._groups_used_by(self._weight_step_edge())
            self._gc_groups = {k: v for k, v in self._gc_groups.items() if k in used}
        return super()._weight_step(batch, keep_raw_grads)

    def _groups_used_by(self, edge: int | None) -> dict:
        """Learnable (edge, op) groups that reach the loss in the network relaxing ``edge``: those get
        a gradient; gradient correlation covers the ones used by both steps (the others stay NaN)."""
        used = live_pairs(self.single_path(edge)[1])
        return {key: ps for key, ps in self._learnable_groups.items() if key in used}

    def _row_tensors(self) -> dict[str, torch.Tensor]:
        """α and Adam's per-element state of α (same shape), by name."""
        state = self.a_opt.state.get(self.alpha, {})
        rows = {k: v for k, v in state.items() if torch.is_tensor(v) and v.shape == self.alpha.shape}
        return {"alpha": self.alpha.data, **rows}

    @contextmanager
    def _only_row_moves(self, edge: int) -> Iterator[None]:
        """Put back every row but ``edge`` of α and of Adam's moments after the block (freeze_unsampled)."""
        if not self.options.freeze_unsampled:
            yield
            return
        keep = torch.arange(NUM_EDGES, device=self.alpha.device) != edge
        saved = {k: v[keep].clone() for k, v in self._row_tensors().items()}
        yield
        with torch.no_grad():
            for k, v in self._row_tensors().items():
                v[keep] = saved[k] if k in saved else 0.0   # moments created by this step start at 0

    # ---- records ----------------------------------------------------------------------------
    def extra_records(self) -> dict[str, Any]:
        return {"edge_samples": self._edge_counts.tolist(), "warmup_active": bool(self._warmup)}


_PAPER = "Hong, Ahn, Kim. EDAS: Efficient and Differentiable Architecture Search (paper 004)"
_DEPARTURES = (
    "The paper searches DARTS' space (7 ops, normal and reduction cells, 20-cell network); here NB201's "
    "cell and reference network (one shared α, C=16, N=5).",
    "freeze_unsampled: unsampled rows of α and Adam's moments are restored after every α step, also during "
    "the warm-up, whose α weight decay therefore acts on the sampled row only (in the paper's code the L2 "
    "term of Adam would also shrink the unsampled rows then).",
    "Warm-up: −α on the odd steps of the first 40% of the epochs, counted over the run (inversion=alternate, "
    "the paper's 'alternately inverse ... at every iteration'), in the relaxed softmax and in the argmax of the "
    "other edges alike; equal to flipping α's sign in place each step, Adam's moments aside. inversion=constant "
    "(−α on every warm-up step) is the other reading of the text.",
    "Nesterov momentum and gradient clip 5 follow the NB201 reference; α initialised as 1e-3·N(0, 1) (DARTS).",
    "Per-epoch cosine schedule of the weight learning rate, as the DARTS code (which, stepping its scheduler "
    "before each epoch, uses the rate of epoch e+1 in epoch e; nbs uses epoch e's).",
    "The α step runs before the weight step of the same iteration, on the same sampled edge (DARTS' order).",
)

register("edas-inv", summary="EDAS with the inversion warm-up (default EDAS): one relaxed edge per step, "
                             "α's sign reversed every other step in the first 40% of epochs",
         paper=_PAPER, options=EdasOptions, departures=_DEPARTURES)(Edas)
register("edas", summary="EDAS without warm-up: one uniformly sampled edge relaxed, the others their argmax op",
         paper=_PAPER, options=EdasPlainOptions, departures=_DEPARTURES,
         factory=Edas)
register("alpha-max", summary="α-max (EDAS ablation): weights train the all-argmax network, one sampled edge's α",
         paper=_PAPER, options=AlphaMaxOptions,
         departures=_DEPARTURES + ("In single-level modes the one shared batch trains w through the α step's "
                                   "network (edge e relaxed), not the all-argmax one.",),
         factory=Edas)
