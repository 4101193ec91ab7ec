"""DARTS-PT (Wang et al., "Rethinking Architecture Selection in Differentiable NAS", ICLR 2021): train a DARTS
supernet, then pick each edge's op by perturbation (:mod:`.perturbation`) instead of argmax α, tuning the
supernet between decisions. Defaults: the authors' NB201 code (ruocwang/darts-pt, ``nasbench201/``).

One run, one record per epoch (``epochs`` = supernet epochs S + 5·``tune_epochs``, T):

* epochs 1..S: DARTS first order, α step on a valid batch then the weight step (``train_search.py``),
  weight lr cosine-annealed over the S supernet epochs;
* at the end of epoch S the first edge is decided, then one more after every T epochs of tuning: the
  sixth at the end of the last epoch (epoch S + 5T). The engine's end-of-epoch ``select`` hook does it, on
  shuffled valid batches (the same batches for every op of one decision);
* tuning epochs (after S): the same steps on the partly projected supernet, the weights' SGD restarted
  at lr·``tune_lr_scale`` (``projection.py``: ``reset_optimizer(learning_rate / 10)``, fixed) — α keeps
  training, so the undecided edges' argmax may still move;
* decided edges are one-hot (their α gets no gradient through them) and compute only their op: the
  ``active`` mask leaves removed ops out of every forward, so their weights get no gradient either.

The derived cell of every record: argmax α before the first decision, then the decided ops plus argmax α
on the undecided edges, finally the fully projected cell. ``op_weights`` are the weights the supernet
computes with (decided rows one-hot); ``alpha_genotype`` is argmax α alone, the cell DARTS would pick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from ...data.pipeline import derive_seed
from ...errors import ConfigError
from ...ranges import BATCH_SIZE, BELOW_ONE, EPOCHS, NON_NEGATIVE, POSITIVE, Range
from ...space.ops import NUM_EDGES, NUM_OPS, OP_INDEX
from ..base import Batch, SearchContext
from ..gradient.darts_family import (ACTIVATIONS, ARCH_OPTIMIZERS, LR_SCHEDULES, MODES, STEP_ORDERS, DartsFamily,
                                     DartsOptions, cosine_lr, schedule_progress)
from ..options import option
from ..registry import register
from ...space.live_ops import reaching_output
from .perturbation import CRITERIA, UNDECIDED, EdgeScores, decided_arrays, score_edge

_CODE = "authors' code: ruocwang/darts-pt nasbench201/"
_SEARCH = _CODE + "train_search.py"
_PROJ = _CODE + "projection.py"
_SH = "authors' code: ruocwang/darts-pt exp_scripts/darts-proj-201.sh"
_INTERVALS = NUM_EDGES - 1          # tuning intervals between the six decisions
AUTO = -1            # tune_epochs: the authors' interval where it fits, else the largest that fits
AUTHORS_TUNE_EPOCHS = 5
TUNE_EPOCHS = Range(AUTO, EPOCHS.hi // _INTERVALS)
PROJ_BATCHES = Range(0, 10_000_000)
EDGE_ORDERS = ("random", "fixed")
BN_MODES = ("train", "eval")


@dataclass(frozen=True)
class DartsPtOptions(DartsOptions):
    """The authors' NB201 setting: 100 supernet epochs + 25 of projection; their optimizers (not xautodl's)."""

    epochs: int = option(125, _SEARCH + " --epochs 100 (supernet) + projection.py's tune_epochs = proj_intv·5 = 25",
                         "run epochs: supernet epochs + 5·tune_epochs (the projection phase)", bounds=EPOCHS)
    tune_epochs: int = option(AUTO, _SH + " --proj_intv 5", "epochs of tuning between two decisions (0: all six "
                              "decisions at the end of the last epoch, no tuning); -1 = auto: the authors' 5 when "
                              "the run has ≥ 26 epochs, else ⌊(epochs − 1)/5⌋, so that a short run (a CPU preset) "
                              "still has a supernet epoch; the value used is recorded", bounds=TUNE_EPOCHS)
    proj_batches: int = option(0, _PROJ + " (infer over the whole valid_queue)", "valid batches each score "
                               "reads; 0 = one pass over the valid half (its full batches)", bounds=PROJ_BATCHES)
    edge_order: str = option("random", _SH + " --edge_decision random", "order of the edge decisions: random = "
                             "a permutation drawn from the seed; fixed = arch-string order (ours)", EDGE_ORDERS)
    proj_crit: str = option("acc", _SH + " --proj_crit acc", "keep the op whose removal gives the lowest valid "
                            "accuracy (acc) or the highest valid loss (loss)", CRITERIA)
    proj_bn: str = option("train", _SEARCH + " infer(eval=False): 'disable running stats for projection'",
                          "BN while scoring: train = batch statistics (the running statistics keep updating, as in the "
                          "authors' code), eval = running statistics", BN_MODES)
    tune_lr_scale: float = option(0.1, _PROJ + " reset_optimizer(args.learning_rate / 10)", "weight lr while "
                                  "tuning = w_lr·scale, fixed; the SGD momentum restarts at the first tuning "
                                  "epoch", bounds=POSITIVE)
    batch_size: int = option(64, _SEARCH + " --batch_size", "batch size of every stream", bounds=BATCH_SIZE)
    mode: str = option("bilevel", _SEARCH + " (train half → w, valid half → α)", "optimization mode", MODES)
    activation: str = option("softmax", _CODE + "search_model_darts_proj.py (theta_map = softmax)", "activation on α",
                             ACTIVATIONS)
    order: int = option(1, _CODE + "architect_ig.py (darts-proj: 'fo')", "1 = first-order α gradient, "
                        "2 = unrolled second order", (1, 2))
    step_order: str = option("alpha-w", _SEARCH + " train(): architect.step, then model.step", "two-batch modes: "
                             "alpha-w = α step first; w-alpha = weight step first", STEP_ORDERS)
    w_lr: float = option(0.025, _SEARCH + " --learning_rate", "SGD learning rate of the network weights",
                         bounds=POSITIVE)
    w_lr_min: float = option(0.001, _SEARCH + " --learning_rate_min", "cosine annealing floor of the weight "
                             "learning rate over the supernet epochs", bounds=NON_NEGATIVE)
    lr_schedule: str = option("per-epoch", _SEARCH + " (CosineAnnealingLR, T_max = supernet epochs, stepped per "
                              "epoch)", "cosine annealing of the weight lr over the supernet epochs: per-epoch or "
                              "per-step", LR_SCHEDULES)
    w_momentum: float = option(0.9, _SEARCH + " --momentum", "SGD momentum", bounds=BELOW_ONE)
    w_nesterov: bool = option(False, _CODE + "search_model.py (torch.optim.SGD without nesterov)",
                              "Nesterov momentum")
    w_weight_decay: float = option(3e-4, _SEARCH + " --weight_decay", "weight decay of the network weights",
                                   bounds=NON_NEGATIVE)
    grad_clip: float = option(5.0, _SEARCH + " --grad_clip", "gradient-norm clip (0 = off)", bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(False, _CODE + "search_model.py step(): clip_grad_norm_(get_weights())",
                                       "the clip's total norm also counts α's gradient; false = the weights alone")
    track_running_stats: bool = option(True, _CODE + "search_model_darts_proj.py (track_running_stats=True, "
                                       "affine=False)", "BN running statistics in the searchable cells (used by "
                                       "proj_bn=eval and by the eval-mode supernet valid accuracy)")
    a_optimizer: str = option("adam", _CODE + "architect_ig.py", "optimizer of α", ARCH_OPTIMIZERS)
    a_lr: float = option(3e-4, _SEARCH + " --arch_learning_rate", "learning rate of α, fixed", bounds=POSITIVE)
    a_beta1: float = option(0.5, _CODE + "architect_ig.py (betas=(0.5, 0.999))", "Adam β1 of α", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, _CODE + "architect_ig.py (betas=(0.5, 0.999))", "Adam β2 of α",
                            bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, _SEARCH + " --arch_weight_decay", "Adam weight decay (L2) of α",
                                   bounds=NON_NEGATIVE)
    alpha_init_std: float = option(1e-3, _CODE + "search_model.py (1e-3·randn)", "α initialised as std·N(0, 1)",
                                   bounds=NON_NEGATIVE)
    derive_none: bool = option(True, _CODE + "cell_operations.py (NAS_BENCH_201 includes none)", "'none' is a "
                               "candidate of the argmax and of the projection; false leaves it out of both")
    train_alpha: bool = option(True, _CODE + "architect_ig.py:20-21, 34-35 (methods darts / darts-proj: the "
                               "first-order α step; exp_scripts/darts-201.sh, darts-proj-201.sh)", "false: α is never "
                               "stepped and keeps its initialisation (the authors' blank / blank-proj methods)")

    def __post_init__(self) -> None:
        if self.supernet_epochs < 1:
            raise ConfigError(
                f"darts-pt: epochs={self.epochs} leave no supernet epoch before the projection phase "
                f"({_INTERVALS} intervals × tune_epochs={self.tune_epochs} = {_INTERVALS * self.tune_epochs} "
                f"epochs); use --epochs {_INTERVALS * self.tune_epochs + 1} or more, or a smaller --set tune_epochs")

    @property
    def tune_epochs_used(self) -> int:
        """``tune_epochs``, with auto (-1) resolved against the run's epochs."""
        if self.tune_epochs != AUTO:
            return self.tune_epochs
        return min(AUTHORS_TUNE_EPOCHS, max(self.epochs - 1, 0) // _INTERVALS)

    @property
    def supernet_epochs(self) -> int:
        return self.epochs - _INTERVALS * self.tune_epochs_used


def edge_order(kind: str, seed: int) -> tuple[int, ...]:
    """The order of the six decisions: a uniform permutation drawn from the seed alone (the authors draw the
    next edge uniformly among the undecided ones, the same distribution), or arch-string order."""
    if kind == "fixed":
        return tuple(range(NUM_EDGES))
    g = torch.Generator().manual_seed(derive_seed(seed, "darts-pt-edges"))
    return tuple(int(e) for e in torch.randperm(NUM_EDGES, generator=g))


@dataclass
class ProjectionState:
    """What the projection has decided so far: plain values, checkpointed with the method."""

    order: tuple[int, ...]
    decided: list[int]                       # op per edge, UNDECIDED until decided
    decided_at: list[int]                    # the epoch (1-based) whose record first shows the decision
    base: np.ndarray                         # (E, 2): valid accuracy and loss with nothing removed
    removed_acc: np.ndarray                  # (E, O): valid accuracy with that op removed (NaN: not scored)
    removed_loss: np.ndarray

    @classmethod
    def start(cls, order: tuple[int, ...]) -> "ProjectionState":
        nan = np.full((NUM_EDGES, NUM_OPS), np.nan)
        return cls(order, [UNDECIDED] * NUM_EDGES, [-1] * NUM_EDGES, np.full((NUM_EDGES, 2), np.nan), nan,
                   nan.copy())

    @property
    def count(self) -> int:
        return sum(op != UNDECIDED for op in self.decided)

    def record(self, scores: EdgeScores, epoch: int) -> None:
        e = scores.edge
        self.decided[e], self.decided_at[e] = scores.op, epoch + 1
        self.base[e] = (scores.base_acc, scores.base_loss)
        self.removed_acc[e], self.removed_loss[e] = scores.removed_acc, scores.removed_loss

    def to_plain(self) -> dict[str, Any]:
        return {"order": list(self.order), "decided": list(self.decided), "decided_at": list(self.decided_at),
                "base": self.base.tolist(), "removed_acc": self.removed_acc.tolist(),
                "removed_loss": self.removed_loss.tolist()}

    @classmethod
    def from_plain(cls, d: dict[str, Any]) -> "ProjectionState":
        return cls(tuple(int(e) for e in d["order"]), [int(o) for o in d["decided"]],
                   [int(k) for k in d["decided_at"]], np.asarray(d["base"], dtype=np.float64),
                   np.asarray(d["removed_acc"], dtype=np.float64), np.asarray(d["removed_loss"], dtype=np.float64))

    def columns(self) -> dict[str, Any]:
        """Record columns ((E, O) arrays are stored flattened, edge-major)."""
        done = [e for e in self.order if self.decided[e] != UNDECIDED]
        return {"proj_decided": self.count, "proj_edge_order": list(self.order),
                "proj_order": done + [-1] * (NUM_EDGES - len(done)), "proj_decided_ops": list(self.decided),
                "proj_decided_at": list(self.decided_at), "proj_base_acc": self.base[:, 0].copy(),
                "proj_base_loss": self.base[:, 1].copy(), "proj_removed_acc": self.removed_acc.copy(),
                "proj_removed_loss": self.removed_loss.copy(),
                "proj_acc_drop": self.base[:, :1] - self.removed_acc}


class DartsPt(DartsFamily):
    packable = False
    solo_reason = ("the projection phase scores and decides edges on the host, seed by seed, and from the first "
                   "decision on each seed's supernet computes different ops")

    def __init__(self, options: DartsPtOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self._all_gc_groups = self._gc_groups
        # a whole pass over the valid half by default: it has as many full batches as the train half
        self.select_batches = options.proj_batches or ctx.steps_per_epoch
        self.projection = ProjectionState.start(edge_order(options.edge_order, ctx.seed))
        self._refresh()

    # ---- fixed α (the authors' blank method) ---------------------------------------------------
    def step(self, batches, epoch: int, step: int, measure_gc: bool):
        # without an α step there is no forward on the valid batch to compare the weights' gradient with
        return super().step(batches, epoch, step, measure_gc and self.options.train_alpha)

    def _arch_phase(self, train: Batch, arch: Batch, with_weight_grads: bool):
        if self.options.train_alpha:
            return super()._arch_phase(train, arch, with_weight_grads)
        # architect_ig.py step(), method 'blank': "do not update alpha" — no forward, no gradient, no step
        # (a forward would also move the BN running statistics, which the authors' run does not)
        return {"alpha": torch.full_like(self.alpha, float("nan"))}, {}

    # ---- the schedule -----------------------------------------------------------------------
    @property
    def supernet_epochs(self) -> int:
        return self.options.supernet_epochs

    def decision_epoch(self, k: int) -> int:
        """0-based epoch at whose end the k-th decision (0-based) is taken."""
        return self.supernet_epochs - 1 + k * self.options.tune_epochs_used

    def _due(self, epoch: int) -> bool:
        k = self.projection.count
        return k < NUM_EDGES and self.decision_epoch(k) <= epoch

    def begin_epoch(self, epoch: int) -> None:
        if epoch == self.supernet_epochs:
            # the authors build a new SGD for tuning; zeroing the momentum in place is the same first step
            # (buf = grad) and keeps the buffers a captured CUDA graph refers to
            for state in self.w_opt.state.values():
                if "momentum_buffer" in state and state["momentum_buffer"] is not None:
                    state["momentum_buffer"].zero_()

    def _set_lr(self, epoch: int, step: int) -> None:
        opts = self.options
        if epoch < self.supernet_epochs:
            progress = schedule_progress(opts.lr_schedule, epoch, step, self.ctx.steps_per_epoch, self.supernet_epochs)
            lr = cosine_lr(opts.w_lr, opts.w_lr_min, progress)
        else:
            lr = opts.w_lr * opts.tune_lr_scale
        for group in self.w_opt.param_groups:
            group["lr"] = lr

    # ---- the projected supernet ---------------------------------------------------------------
    def _refresh(self) -> None:
        """Device copies of the decisions (rebuilt between epochs only, so that a captured step's tensors
        stay put within an epoch) and the gradient-correlation groups of the ops whose weights still get a
        gradient (computed, and feeding the cell's output)."""
        one_hot, rows, self._active = decided_arrays(self.projection.decided)
        self._one_hot = torch.from_numpy(one_hot).to(device=self.alpha.device, dtype=self.alpha.dtype)
        self._rows = torch.from_numpy(rows).to(self.alpha.device)[:, None]
        live = None if self._active is None else reaching_output(self._active)
        self._gc_groups = {k: v for k, v in self._all_gc_groups.items() if live is None or live[k]}

    def projected_weights(self) -> torch.Tensor:
        """activate(α) with each decided edge's row replaced by its one-hot (no gradient to that row's α)."""
        weights = self.activate(self.alpha)
        return weights if self._active is None else torch.where(self._rows, self._one_hot, weights)

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor, arch_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.projected_weights()
        logits = self._forward(x, weights if arch_grad else weights.detach(), self._active)
        return self.task_loss(logits, y), logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.projected_weights().detach(), self._active)

    def op_weights(self) -> np.ndarray:
        with torch.no_grad():
            return self.projected_weights().float().cpu().numpy()

    @property
    def candidates(self) -> list[int]:
        return [o for o in range(NUM_OPS) if self.options.derive_none or o != OP_INDEX["none"]]

    # ---- the decisions --------------------------------------------------------------------------
    def select(self, batches: Iterator[Batch], epoch: int) -> None:
        if not self._due(epoch):
            return
        batches = list(batches)   # every op of every decision of this epoch is scored on the same batches
        self.train(self.options.proj_bn == "train")
        while self._due(epoch):
            edge = self.projection.order[self.projection.count]
            scores = score_edge(self._forward, self.projected_weights(), self._active, edge, self.candidates,
                                batches, self.options.proj_crit)
            self.projection.record(scores, epoch)
            self._refresh()

    def extra_records(self) -> dict[str, Any]:
        with torch.no_grad():
            relaxed = self.activate(self.alpha).float().cpu().numpy()
        return {**self.projection.columns(), "alpha_genotype": self.genotype_of(relaxed).to_str(),
                "tune_epochs": self.options.tune_epochs_used, "supernet_epochs": self.supernet_epochs}

    # ---- checkpointing ------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {**super().checkpoint_state(), "projection": self.projection.to_plain()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        self.projection = ProjectionState.from_plain(state["projection"])
        self._refresh()


_DEPARTURES = (
    "Which published number to compare with: the authors' own rerun of the α-trained variant (darts-201.sh + "
    "darts-proj-201.sh, seeds 0 and 1) gave 88.21 and 88.18 CIFAR-10 test (ruocwang/darts-pt issue 6, by the "
    "author); a ~93.8 figure quoted for DARTS-PT on NB201 is not this variant's.",
    "Schedule: the first decision at the end of the last supernet epoch, then one every tune_epochs, the sixth at "
    "the end of the last epoch. The authors decide at the start of tuning epochs 0, 5, 10, 15, 20 and 24 of 25: "
    "their sixth comes after 4 epochs of tuning and is followed by one more epoch, which cannot change the cell "
    "(and with proj_intv=1 their fifth and sixth fall on the same epoch, leaving an edge undecided). Same total.",
    "Scores read the engine's shuffled valid batches without augmentation (proj_batches; by default one pass, "
    "full batches only), the same batches for every op of a decision; the authors' valid_queue applies the "
    "training augmentation and is reshuffled for every op.",
    "Each decision also scores the supernet with nothing removed (one more pass), to record the accuracy drop "
    "of every removal; the pick does not use it.",
    "Removed ops are not computed (active mask) instead of computed and multiplied by 0: the same outputs; the "
    "dead weights of removed ops then get no weight decay or momentum updates, which nothing reads again.",
    "The edge order is drawn once from the seed (a uniform permutation) instead of edge by edge from numpy's "
    "global RNG: the same distribution, and a resumed run needs no RNG state. edge_order=fixed is ours.",
    "Batches come from nbs's streams (a fresh shuffle each epoch, class-balanced halves); the authors draw "
    "next(iter(loader)) every step from the first and second halves of CIFAR-10's train set by index.",
    "'none' is not computed (it adds w·0); with derive_none=false it is neither an argmax nor a projection candidate.",
    "Not yet available: the projection as a derivation step on another method's supernet (the paper applies it to "
    "SDARTS and others too); here it follows this method's own DARTS-V1 supernet. perturbation.project_cell is the "
    "piece such an option would call.",
)

@dataclass(frozen=True)
class DartsPtFixAlphaOptions(DartsPtOptions):
    """The authors' fix-α variant: the same supernet and projection, α never trained."""

    train_alpha: bool = option(False, _CODE + "architect_ig.py:24-25, 38-39 (method blank: 'do not update alpha'; "
                               "exp_scripts/blank-201.sh --method blank, blank-proj-201.sh)", "false: α is never "
                               "stepped and keeps its initialisation 1e-3·N(0, 1), so the projection picks on a "
                               "supernet trained with near-uniform weights; true = darts-pt")


_PAPER = ("Wang, Cheng, Chen, Tang, Hsieh. Rethinking Architecture Selection in Differentiable NAS. ICLR 2021 "
          "(code: ruocwang/darts-pt)")

register("darts-pt", summary="DARTS supernet, then each edge's op picked by perturbation (the op whose removal "
                             "lowers valid accuracy most), tuning between decisions",
         paper=_PAPER, options=DartsPtOptions, departures=_DEPARTURES)(DartsPt)
register("darts-pt-fix-alpha", summary="DARTS-PT's fix-α variant: the supernet trained with α fixed at its "
                                       "initialisation (never stepped), then the same perturbation projection",
         paper=_PAPER, options=DartsPtFixAlphaOptions,
         departures=_DEPARTURES + ("op_grad and gradient correlation are not recorded (NaN): without an α step "
                                   "there is no valid-batch forward to take them from.",))(DartsPt)
