"""What a search method is, as the engine sees it.

A method says *what* one step computes (given the batches it asked for, update w and α, return
step statistics) and how to derive a genotype. The engine owns epochs, data, seeds, records,
checkpoints, timing and devices; a method never writes files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..space.genotype import Genotype
from ..space.supernet import NetworkShape

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SearchContext:
    """What the engine tells a method when it builds it."""

    shape: NetworkShape
    device: torch.device
    epochs: int
    steps_per_epoch: int
    seed: int
    amp_dtype: torch.dtype | None = None   # autocast dtype (bf16 on CUDA) or None
    channels_last: bool = False


@dataclass
class StepStats:
    """Statistics of one step, as device tensors (the engine syncs once per epoch)."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    count: int
    op_grad: torch.Tensor | None = None        # ∂L/∂α the arch optimizer saw, shape like α
    gc_inner: torch.Tensor | None = None       # (E, O) inner products ⟨∇w L(B_w), ∇w L(B_α)⟩, NaN = not learnable
    gc_cos: torch.Tensor | None = None         # (E, O) cosine form
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


class SearchMethod(nn.Module):
    """Base class. Subclasses define the streams they need, ``step``, and ``op_weights``."""

    #: batch streams the engine must provide each step: any of "train", "train2", "valid"
    streams: tuple[str, ...] = ("train",)

    #: whether K seeds can run as one model with stacked parameters (:mod:`methods.packing`); a method
    #: that cannot sets ``solo_reason``, which ``nbs methods`` shows
    packable: bool = False
    solo_reason: str = "its step has not been written for a leading seed axis"
    #: None for a solo run; K when this object is K seeds packed together
    pack_size: int | None = None

    def graph_static(self) -> bool:
        """Whether one step, given its batches, launches the same kernels on the same tensors with the
        same host-side constants every time within an epoch, so that a captured CUDA graph replays it
        exactly (no host-side sampling, no host syncs, no learning rate changing within the epoch)."""
        return self.graph_blocker() is None

    def graph_blocker(self) -> str | None:
        """Why this method's step cannot be replayed as a CUDA graph (None: it can)."""
        return "its step has not been checked for host-side work"

    def __init__(self, options: Any, ctx: SearchContext) -> None:
        super().__init__()
        self.options = options
        self.ctx = ctx

    # ---- the step ---------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        """Called before the first step of ``epoch`` (0-based)."""

    def epoch_steps(self, epoch: int, steps: int) -> int:
        """Steps the engine runs in ``epoch``, given ``steps``, the train half's full batches (what most
        methods' epoch is). A method whose epoch has its own length overrides it (CDARTS: a fraction of
        the data, after its evaluation network's warm-up on the valid half)."""
        return steps

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        raise NotImplementedError

    #: validation batches :meth:`select` reads at the end of each epoch (0: the method has no selection step)
    select_batches: int = 0
    #: examples per such batch (None: the run's batch size; at most the valid half). xautodl scores
    #: candidates on its valid_loader, whose batches are the config's test_batch_size (512)
    select_batch_size: int | None = None
    #: whether those batches get the training augmentation (ENAS.py gives its valid loader the train transform)
    select_augment: bool = False

    def select(self, batches: Iterator[Batch], epoch: int) -> None:
        """After the epoch's steps, before the supernet evaluation (SETN and ENAS evaluate the cell they
        pick, xautodl ``SETN.py``, ``ENAS.py``) and the record of a solo run: a method that picks
        its derived cell by scoring candidate cells with the shared weights (RSPS, SETN, ENAS) does it
        here, reading up to ``select_batches`` batches of the valid half (no augmentation unless
        ``select_augment``, a fresh shuffle every epoch, as xautodl's ``valid_loader``). ``derive`` then
        returns the pick. ENAS also trains its controller here (xautodl ``ENAS.py`` ``train_controller``
        reads the valid loader after the shared weights' epoch). Called in training mode with gradients on: a method sets ``eval()`` and
        ``torch.no_grad()`` where it needs them; the engine puts it back in training mode afterwards."""

    #: whether the method reads the α-Hessian spectrum itself (:meth:`observe_hessian`); the engine then
    #: measures it after each epoch of :meth:`own_hessian_epochs`, on the run's fixed valid batches, whatever
    #: ``hessian_every`` says
    needs_hessian: bool = False

    @classmethod
    def own_hessian_epochs(cls, options: Any, epochs: int) -> list[int]:
        """The 0-based epochs after which the method reads the α-Hessian (none; DARTS-ES: its measurement
        interval). A class method: the cost line counts them from a config, before anything is built."""
        return list(range(epochs)) if cls.needs_hessian else []

    def observe_hessian(self, epoch: int, spectrum: Any) -> None:
        """The spectrum of ∇²_α L_valid the engine measured after ``epoch``'s steps and selection, before its
        record (a :class:`~..engine.hessian.HessianSpectrum`; DARTS-ES decides whether to stop here). Called
        for every measurement, the user's ``hessian_every`` ones included."""

    def stop_reason(self) -> str | None:
        """Why the search ends before its last epoch, or None to go on. Checked after each epoch's record and
        checkpoint: a reason ends the run as finished after that epoch (a resume does nothing more)."""
        return None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Supernet output under the current architecture (used for validation)."""
        raise NotImplementedError

    # ---- what is recorded -------------------------------------------------------------------
    def op_weights(self) -> np.ndarray:
        """(edges, ops) architecture weights after activation, as recorded every epoch."""
        raise NotImplementedError

    def derive(self) -> Genotype:
        """The derived NB201 cell: what the records score in the benchmark and count ops of."""
        return Genotype.from_weights(self.op_weights())

    def learning_rates(self) -> dict[str, float]:
        return {}

    def extra_records(self) -> dict[str, Any]:
        """Method-specific per-epoch record columns (flat scalars, strings or lists)."""
        return {}

    #: whether :meth:`discrete_logits` can evaluate one NB201 cell with the shared weights
    evaluates_discrete_cells: bool = False

    def discrete_logits(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        """Output of the discrete cell ``genotype`` with the supernet's shared weights (ranking analyses)."""
        raise NotImplementedError(f"{type(self).__name__} cannot evaluate discrete NB201 cells")

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss as a differentiable function of the architecture parameters (Hessian analysis)."""
        raise NotImplementedError

    def arch_parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def shift_invariant_groups(self) -> list[list[int]] | None:
        """Disjoint index groups of the flattened :meth:`arch_parameters` along whose common shift
        :meth:`arch_loss` is constant, or None (no such promise). The exact Hessian skips those
        directions (engine/hessian.py); a wrong promise would be a wrong Hessian, so a method only makes
        it where α reaches the loss through a softmax over each group (tests check it on every method)."""
        return None

    # ---- checkpointing ----------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def checkpoint_state(self) -> dict[str, Any]:
        return {"module": self.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()}}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["module"])
        for k, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
