"""GDAS (Dong & Yang, CVPR 2019) on NB201, as xautodl's ``exps/NAS-Bench-201-algos/GDAS.py`` runs it.

One α (6 edges × 5 ops) is shared by all cells. Every forward of a step draws one Gumbel sample per
edge, shared by all cells of that forward (``TinyNetworkGDAS.forward``):

    g = −log(Exp(1)),  p = softmax((log_softmax(α) + g) / τ),  k = argmax p,
    h = one_hot(k) − p.detach() + p          (redrawn while g or p holds inf/NaN)

``h`` is one-hot in value and has softmax's gradient (straight-through). Only the drawn op of each
edge is computed (the supernet's ``active`` mask); the other ops add their weight ``h`` as a scalar,
0 in value but carrying gradient to α (``forward_gdas``; :class:`~...space.gdas_cell.GdasCell`).

A step (``search_func``): the weight step on a train batch with its own draw (backward, clip 5 over
``network.parameters()`` — α's gradient included, as for DARTS-V1 —, SGD), then the α step on a
valid batch with another draw (backward, Adam). τ is set before each epoch to
``τ_max − (τ_max − τ_min)·epoch/(epochs − 1)`` (10 → 0.1). The derived cell is argmax α per edge,
'none' included (``genotype()``).

Weights of ops a step did not draw: PyTorch 1.x, which GDAS and NB201 ran on, zeroed gradients in
place, so every weight that had ever been in a forward took the SGD step with a zero gradient
(weight decay and momentum moved it); PyTorch ≥ 2.0's ``zero_grad()`` sets them to None and SGD
skips them. ``unsampled_weights`` picks (``decayed``: the 1.x behaviour, the default; ``skipped``: 2.x, as rsps, setn and enas name them); the
ops drawn so far are tracked in a buffer, so a resumed run steps the same weights.

Randomness: the noise of each draw of step (epoch, step) comes from a generator seeded with
``derive_seed(seed, "gdas", epoch, step, phase)`` (phase: weight or α step; redraws continue it), so a
resumed run draws the same cells, and measuring gradient correlation (which needs the α step's draw
before the weight step) changes no draw. A draw is taken from α as its forward sees it (with
``step_order=alpha-w`` the weight step's after the α step). Outside the steps (the α-Hessian) one
fixed seed is used, so the Hessian of each measurement is that of one function.

Records per epoch: ``tau``; over the epoch's draws (weight and α steps), ``drawn_cells_distinct``,
``drawn_param_free_mean`` (parameter-free ops per drawn cell), ``drawn_op_freq`` (edge × op
frequencies) and ``gumbel_redraws``; ``arch_step_loss``/``arch_step_acc``, the α steps' loss and
accuracy on their own sampled cells (xautodl's ``valid_a_loss``/``valid_a_top1``). ``valid_acc`` is
the derived (argmax α) cell with the shared weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data.pipeline import derive_seed
from ...errors import ConfigError
from ...ranges import BATCH_SIZE, BELOW_ONE, EPOCHS, NON_NEGATIVE, POSITIVE
from ...space.gdas_cell import GdasCell
from ...space.genotype import Genotype
from ...space.live_ops import live_pairs
from ...space.ops import NUM_EDGES, NUM_OPS
from ...space.supernet import Supernet
from ..base import Batch, SearchContext, StepStats
from ..gradient.darts_family import ARCH_OPTIMIZERS, MODES, STEP_ORDERS, DartsFamily, DartsOptions
from ..options import reference, option
from ..registry import register
from .single_path import UNSAMPLED

GDAS_PY = reference("AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py")
GDAS_CONFIG = reference("AutoDL-Projects configs/nas-benchmark/algos/GDAS.config")
GDAS_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/GDAS.sh")
GDAS_NET = reference("AutoDL-Projects xautodl/models/cell_searchs/search_model_gdas.py")
GDAS_BN = reference("AutoDL-Projects docs/NAS-Bench-201.md (`GDAS.sh cifar10 1 -1`: BN=1)")
GDAS_ZERO_GRAD = reference("AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py (w_optimizer.zero_grad() "
                           "under PyTorch 1.x)")

UNDRAWN_WEIGHTS = UNSAMPLED   # ("skipped", "decayed"), as the other single-path methods
PHASES = ("w", "alpha")   # the two draws of a step
#: draws of one sample before giving up: a finite α redraws with probability ~1e-7 per draw (an Exp(1)
#: sample of exactly 0); a non-finite α never draws a finite sample (xautodl would loop for ever)
MAX_DRAWS = 100


@dataclass(frozen=True)
class GdasOptions(DartsOptions):
    """xautodl's NB201 GDAS: GDAS.config (weights), GDAS.sh (α, τ, BN), GDAS.py (step, clip, Adam betas)."""

    epochs: int = option(250, GDAS_CONFIG, "search epochs (epochs 250, warmup 0)", bounds=EPOCHS)
    batch_size: int = option(64, GDAS_CONFIG, "batch size of every stream", bounds=BATCH_SIZE)
    mode: str = option("bilevel", GDAS_PY, "optimization mode (search_func: train batch for w, valid batch "
                                           "for α)", MODES)
    activation: str = option("softmax", GDAS_NET, "recorded op_weights = softmax(α) (show_alphas); the steps "
                                                  "use Gumbel samples", ("softmax",))
    order: int = option(1, GDAS_PY, "first-order α gradient at the current weights (no unrolling)", (1,))
    step_order: str = option("w-alpha", GDAS_PY, "search_func: weight step on the train batch, then the α step "
                                                 "at the updated weights; alpha-w = α step first", STEP_ORDERS)
    w_lr: float = option(0.025, GDAS_CONFIG, "SGD learning rate of the weights (LR)", bounds=POSITIVE)
    w_lr_min: float = option(0.001, GDAS_CONFIG, "cosine annealing floor (eta_min), the rate changed once "
                                                 "per epoch", bounds=NON_NEGATIVE)
    w_momentum: float = option(0.9, GDAS_CONFIG, "SGD momentum", bounds=BELOW_ONE)
    w_nesterov: bool = option(True, GDAS_CONFIG, "Nesterov momentum")
    w_weight_decay: float = option(5e-4, GDAS_CONFIG, "weight decay of the weights (decay)", bounds=NON_NEGATIVE)
    grad_clip: float = option(5.0, GDAS_PY, "gradient-norm clip (clip_grad_norm_(network.parameters(), 5); "
                                            "0 = off)", bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(True, GDAS_PY, "the clip's norm counts α's .grad as the reference leaves "
                                                      "it (the last α step's gradient + ∇α L_train of this "
                                                      "weight step, through its draw)")
    track_running_stats: bool = option(True, GDAS_BN, "BN running statistics in the searchable cells (the "
                                                      "script's BN argument; its header comment shows 0, the "
                                                      "docs' command 1); only eval-mode outputs depend on it")
    a_lr: float = option(3e-4, GDAS_SH, "Adam learning rate of α (--arch_learning_rate 0.0003)", bounds=POSITIVE)
    a_beta1: float = option(0.5, GDAS_PY, "Adam β1 of α (betas=(0.5, 0.999))", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, GDAS_PY, "Adam β2 of α", bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, GDAS_SH, "Adam weight decay of α (--arch_weight_decay 0.001)",
                                   bounds=NON_NEGATIVE)
    a_optimizer: str = option("adam", GDAS_PY, "optimizer of α: adam (torch.optim.Adam in GDAS.py) or sgd "
                                                "(momentum a_momentum, fixed lr)", ARCH_OPTIMIZERS)
    alpha_init_std: float = option(1e-3, GDAS_NET, "α initialised as std·N(0, 1)", bounds=NON_NEGATIVE)
    derive_none: bool = option(True, GDAS_NET, "genotype(): argmax α over all five ops, 'none' included")
    tau_max: float = option(10.0, GDAS_SH, "Gumbel-softmax temperature of the first epoch (--tau_max 10)",
                            bounds=POSITIVE)
    tau_min: float = option(0.1, GDAS_SH, "temperature of the last epoch (--tau_min 0.1); τ falls linearly "
                                          "in between", bounds=POSITIVE)
    unsampled_weights: str = option("decayed", GDAS_ZERO_GRAD, "conv weights of ops this weight step did not "
                                  "draw: decayed = SGD steps them with a zero gradient once they were ever drawn (weight "
                                  "decay and momentum move them), as zero_grad() left them in PyTorch 1.x, the "
                                  "PyTorch of GDAS' and NB201's runs; skipped = SGD leaves them alone, as the same "
                                  "code does in PyTorch >= 2.0", UNDRAWN_WEIGHTS)

    def __post_init__(self) -> None:
        if self.tau_min > self.tau_max:
            raise ConfigError(f"gdas: τ decays from tau_max to tau_min, but tau_min={self.tau_min} > "
                              f"tau_max={self.tau_max}")


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel noise shaped like ``like``, as xautodl draws it: −log of an Exp(1) sample."""
    return -torch.empty_like(like).exponential_(generator=generator).log()


def hard_gumbel_softmax(alpha: torch.Tensor, tau: float, gumbels: torch.Tensor):
    """(h, p, k) over the last axis: p = softmax((log_softmax(α) + g)/τ), k = argmax p (the Gumbel-max
    draw, distributed as softmax(α)), h = one_hot(k) − p.detach() + p."""
    probs = torch.softmax((alpha.log_softmax(dim=-1) + gumbels) / tau, dim=-1)
    index = probs.max(-1, keepdim=True)[1]
    one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    return one_hot - probs.detach() + probs, probs, index.squeeze(-1)


@dataclass(frozen=True)
class Draw:
    """One forward's sample: the weights ``h`` (on the device) and the drawn op of each edge (host)."""

    hardwts: torch.Tensor
    ops: tuple[int, ...]
    redraws: int = 0

    @property
    def active(self) -> tuple[tuple[bool, ...], ...]:
        return tuple(tuple(o == k for o in range(NUM_OPS)) for k in self.ops)

    @property
    def genotype(self) -> Genotype:
        return Genotype.from_op_indices(self.ops)


class Gdas(DartsFamily):
    packable = False
    solo_reason = ("each seed draws its own ops in every forward and computes only those (a host-side mask), "
                   "which one vmapped network cannot express")

    def graph_blocker(self) -> str | None:
        return "the drawn ops are read back to the host (.tolist) in every step to pick the ops to compute"

    def __init__(self, options: GdasOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self._conv_groups = self._gc_groups   # every (edge, conv op) → its weights in all cells
        # (edge, op) drawn in any step so far: the weights xautodl's SGD keeps stepping (unsampled_weights=decayed)
        self.register_buffer("ever_drawn", torch.zeros(NUM_EDGES, NUM_OPS, dtype=torch.bool, device=ctx.device))
        self._ever_drawn_host = np.zeros((NUM_EDGES, NUM_OPS), dtype=bool)
        self._noise = torch.Generator(device=ctx.device)
        self._step_at: tuple[int, int] | None = None  # (epoch, step) while a step runs
        self._draws: dict[str, Draw] = {}             # the current step's draws, by phase
        self._phase = "alpha"                         # which draw loss_and_logits uses
        self._arch_out: tuple[torch.Tensor, torch.Tensor, int] | None = None
        self.begin_epoch(0)

    def build_supernet(self) -> Supernet:
        track = self.options.track_running_stats
        return Supernet(self.ctx.shape, lambda c: GdasCell(c, track_running_stats=track))

    # ---- temperature and epoch statistics ---------------------------------------------------
    def tau_at(self, epoch: int) -> float:
        """GDAS.py: τ_max − (τ_max − τ_min)·epoch/(epochs − 1); τ_max for a one-epoch run."""
        opts, last = self.options, self.ctx.epochs - 1
        if last <= 0:
            return opts.tau_max
        return opts.tau_max - (opts.tau_max - opts.tau_min) * epoch / last

    def begin_epoch(self, epoch: int) -> None:
        self.tau = self.tau_at(epoch)
        self._op_counts = np.zeros((NUM_EDGES, NUM_OPS), dtype=np.int64)
        self._cells: set[tuple[int, ...]] = set()
        self._param_free = 0
        self._redraws = 0
        # the α steps' loss and correct count on their own samples: device sums, read once per epoch
        self._arch_loss: torch.Tensor | float = 0.0
        self._arch_correct: torch.Tensor | float = 0.0
        self._arch_seen = 0

    def _count(self, draw: Draw) -> None:
        self._op_counts[np.arange(NUM_EDGES), draw.ops] += 1
        self._cells.add(draw.ops)
        self._param_free += draw.genotype.param_free_count
        self._redraws += draw.redraws

    def extra_records(self) -> dict[str, Any]:
        n = int(self._op_counts[0].sum())
        seen = self._arch_seen or float("nan")
        return {"tau": float(self.tau), "drawn_cells_distinct": len(self._cells),
                "drawn_param_free_mean": self._param_free / n if n else float("nan"),
                "drawn_op_freq": self._op_counts / max(n, 1), "gumbel_redraws": self._redraws,
                "arch_step_loss": float(self._arch_loss) / seen,
                "arch_step_acc": 100.0 * float(self._arch_correct) / seen}

    # ---- sampling ---------------------------------------------------------------------------
    def noise_seed(self, epoch: int, step: int, phase: str) -> int:
        """Seed of the noise of the ``phase`` ("w" or "alpha") draw of step (epoch, step)."""
        return derive_seed(self.ctx.seed, "gdas", epoch, step, PHASES.index(phase))

    def draw(self, generator: torch.Generator) -> Draw:
        """One Gumbel sample of the current α at the current τ, redrawn while non-finite (at most
        ``MAX_DRAWS`` tries; then the non-finite sample is used and the loss shows it)."""
        for redraws in range(MAX_DRAWS):
            gumbels = gumbel_noise(self.alpha, generator)
            hardwts, probs, index = hard_gumbel_softmax(self.alpha, self.tau, gumbels)
            bad = torch.isinf(gumbels).any() | torch.isinf(probs).any() | torch.isnan(probs).any()
            host = torch.cat([index, bad.view(1).to(index.dtype)]).tolist()   # one read-back per draw
            if not host[-1]:
                break
        return Draw(hardwts, tuple(host[:-1]), redraws)

    def _current_draw(self) -> Draw:
        if self._step_at is None:   # outside a step (the α-Hessian, analyses): the same noise every call
            fixed = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "gdas-fixed"))
            return self.draw(fixed)
        return self._draw_for(self._phase)

    def _draw_for(self, phase: str) -> Draw:
        """The step's draw of ``phase``, taken when first needed: the α step's at the α it steps, the weight
        step's at the α of its forward (after the α step when ``step_order=alpha-w``)."""
        if self.options.mode == "single-level":   # one forward serves both
            phase = "w"
        if phase not in self._draws:
            self._noise.manual_seed(self.noise_seed(*self._step_at, phase))
            self._draws[phase] = drawn = self.draw(self._noise)
            self._count(drawn)
        return self._draws[phase]

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor, arch_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        draw = self._current_draw()
        weights = draw.hardwts if arch_grad else draw.hardwts.detach()
        logits = self._forward(x, weights, draw.active)
        loss = self.task_loss(logits, y)
        if self._step_at is not None and self._phase == "alpha":   # the last such call is the α step's
            self._arch_out = (loss.detach() * y.shape[0], (logits.detach().argmax(-1) == y).sum(), y.shape[0])
        return loss, logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The derived cell (argmax α) with the shared weights: what the record's genotype is."""
        return self.discrete_logits(x, self.derive())

    def derive(self) -> Genotype:
        """argmax of α itself per edge, as ``genotype()`` (softmax could tie what α orders)."""
        with torch.no_grad():
            return self.genotype_of(self.alpha.detach().double().cpu().numpy())

    # ---- one step ---------------------------------------------------------------------------
    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        self._step_at, self._draws, self._arch_out = (epoch, step), {}, None
        if measure_gc:   # gradient correlation: conv ops the α step's draw computes and that reach the loss
            # (α only changes in the α step, so its draw can be taken now); _weight_step narrows to both draws'
            used = live_pairs(self._draw_for("alpha").active)
            self._gc_groups = {k: v for k, v in self._conv_groups.items() if k in used}
        try:
            stats = super().step(batches, epoch, step, measure_gc)
        finally:
            self._step_at, self._draws, self._phase = None, {}, "alpha"
        if self._arch_out is not None and self.options.mode != "single-level":
            loss_sum, correct, n = self._arch_out
            self._arch_loss, self._arch_correct = self._arch_loss + loss_sum, self._arch_correct + correct
            self._arch_seen += n
        self._arch_out = None
        return stats

    def _weight_step(self, batch: Batch, keep_raw_grads: bool = False):
        self._phase = "w"
        drawn = self._draw_for("w")
        self._mark_drawn(drawn)
        if keep_raw_grads:   # gradient correlation only where both steps' networks have a gradient
            used = live_pairs(drawn.active)
            self._gc_groups = {k: v for k, v in self._gc_groups.items() if k in used}
        try:
            return super()._weight_step(batch, keep_raw_grads)
        finally:
            self._phase = "alpha"

    def _arch_phase(self, train: Batch, arch: Batch, with_weight_grads: bool):
        self._mark_drawn(self._draw_for("alpha"))
        return super()._arch_phase(train, arch, with_weight_grads)

    def _single_level_step(self, batch: Batch, measure_gc: bool) -> StepStats:
        self._mark_drawn(self._draw_for("w"))   # one draw serves both optimizers
        return super()._single_level_step(batch, measure_gc)

    def _mark_drawn(self, draw: Draw) -> None:
        rows = np.arange(NUM_EDGES)
        if not self._ever_drawn_host[rows, draw.ops].all():   # rare after the first steps: no device write
            self._ever_drawn_host[rows, draw.ops] = True
            self.ever_drawn.copy_(torch.from_numpy(self._ever_drawn_host))

    def _clip(self, with_alpha: bool) -> None:
        """The weight step's gradients are complete here: first give a zero gradient to the conv weights
        xautodl's SGD steps although this loss does not reach them (``unsampled_weights``; also a drawn conv
        into a node whose out-edges all drew 'none', which xautodl computes through ``x·0``)."""
        drawn = self._draw_for("w").ops
        for (e, op), params in self._conv_groups.items():
            if (self._ever_drawn_host[e, op] if self.options.unsampled_weights == "decayed" else drawn[e] == op):
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
        super()._clip(with_alpha)

    def load_checkpoint_state(self, state) -> None:
        super().load_checkpoint_state(state)
        self._ever_drawn_host = self.ever_drawn.cpu().numpy().copy()


register(
    "gdas",
    summary="GDAS: one Gumbel-max sampled op per edge per forward, straight-through gradient to α, τ 10 → 0.1",
    paper="Dong, Yang. Searching for a Robust Neural Architecture in Four GPU Hours. CVPR 2019; NB201 setting "
          "from Dong & Yang, NAS-Bench-201, ICLR 2020 (xautodl GDAS.py, GDAS.sh, GDAS.config)",
    options=GdasOptions,
    departures=(
        "The paper searches the DARTS/NASNet space (normal and reduction cells); here NB201's cell and network "
        "with xautodl's NB201 script settings, which NB201's published GDAS numbers come from.",
        "Gumbel noise from generators seeded from (seed, epoch, step, weight or α step) instead of xautodl's "
        "global RNG, so that a resumed run draws the same cells.",
        f"A non-finite sample is redrawn at most {MAX_DRAWS} times (xautodl loops until it gets a finite one, for "
        "ever when α itself is not finite); then the step goes on and the run stops as diverged.",
        "τ for a one-epoch run is tau_max (xautodl divides by epochs − 1 = 0).",
        "valid_loss/valid_acc evaluate the derived cell (argmax α) with the shared weights in eval mode; the α "
        "steps' accuracy on their sampled cells (xautodl's valid_a_top1) is recorded as arch_step_acc.",
        "unsampled_weights=decayed reproduces PyTorch 1.x's zero_grad (weights of undrawn ops keep taking weight decay "
        "and momentum steps); under PyTorch >= 2.0 the reference code itself behaves as unsampled_weights=skipped.",
    ),
    factory=Gdas,
)
