"""``--time-budget S``: a command's runs advance by whole epochs and stop, checkpointed, before an epoch
that would not finish within S wall-clock seconds of the command's start; re-running continues them.

Not the multi-trial methods' ``time_budget`` option, which is simulated seconds of training read off the
benchmark table. This one is real time on this machine, for short GPU allocations (a preemptible
instance, a SLURM time limit): the engine already checkpoints after every epoch and resumes exactly, so
all a budget adds is *not starting* an epoch (or a run) that the allocation would cut off.

A run stopped by the budget writes status ``paused`` (not failed, not finished): ``nbs status`` shows it,
and the same command resumes it from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .status import PAUSED, TERMINAL, read_status

#: the one clock of the budget, for its deadline and for the epochs it measures. Wall-clock time
#: (``time.time``), not a monotonic clock: the deadline is handed to spawned worker processes and Ray tasks
#: on other nodes, and only the wall clock means the same there. Tests replace it.
now: Callable[[], float] = time.time


def clock() -> float:
    """:data:`now`, looked up at each call (so that a replaced clock reaches the modules that import this)."""
    return now()


@dataclass(frozen=True)
class TimeBudget:
    """The command's wall-clock budget: ``seconds`` as given, ending at ``deadline`` (a :data:`now` value)."""

    seconds: float
    deadline: float

    @classmethod
    def start(cls, seconds: float) -> "TimeBudget":
        """The budget counted from now: call it first thing in the command, before the slow imports."""
        return cls(seconds, clock() + seconds)

    def left(self) -> float:
        return self.deadline - clock()

    def spent(self) -> bool:
        return self.left() <= 0

    def line(self) -> str:
        ends = time.strftime("%H:%M:%S", time.localtime(self.deadline))
        return (f"time budget: {self.seconds:g} s of wall-clock time, until {ends}; whole epochs run while the "
                f"next is expected to finish within it")


def left_message(done: int, total: int) -> str:
    """What a run stopped by the budget says (per run; the CLI prefixes its directory)."""
    return f"{done} of {total} epochs done; re-run to continue"


def unstarted(run_dir: Path, epochs: int) -> tuple[str, int, str]:
    """(state, epochs done, message) of a run not started because the budget is spent, from its status
    without taking its lock: an ended run says so, any other is paused where its status left it."""
    status, problem = read_status(run_dir)
    state = None if problem else status.get("state")
    done = 0 if problem else int(status.get("epochs_done", 0))
    if state in TERMINAL:
        return f"already-{state}", done, f"{run_dir} already {state}; not re-run"
    return PAUSED, done, left_message(done, epochs) + " (not started: the time budget was spent)"


# ---------------------------------------------------------------------------------------------
# will the next epoch fit?
# ---------------------------------------------------------------------------------------------
@dataclass
class EpochTimes:
    """Whole epochs of one kind of run measured in this process: seconds without the α-Hessian (training,
    selection, evaluation, record and checkpoint), and the α-Hessians' seconds."""

    epochs: list[float] = field(default_factory=list)
    hessians: list[float] = field(default_factory=list)


#: per kind of run (its config less its seed, and the pack size): a second seed of a method in this
#: process (`nbs run --seeds 5`, a sweep worker's next unit) starts with the first one's epochs
_MEASURED: dict[tuple[str, int], EpochTimes] = {}


class EpochBudget:
    """Whether a run's (or a pack's) next epoch fits in what is left of the budget."""

    def __init__(self, budget: TimeBudget, config: Any, pack_size: int = 1) -> None:
        self.budget, self.config, self.pack_size = budget, config, pack_size
        key = (dataclasses.replace(config, seed=0).config_hash, pack_size)
        self.times = _MEASURED.setdefault(key, EpochTimes())

    def took(self, seconds: float, hessian_seconds: float = 0.0) -> None:
        """Record a whole epoch of ``seconds``, ``hessian_seconds`` of them its α-Hessian (0: none)."""
        self.times.epochs.append(seconds - hessian_seconds)
        if hessian_seconds:
            self.times.hessians.append(hessian_seconds)

    def expected(self, hessian: bool) -> tuple[float | None, str]:
        """(seconds, where the number comes from) of the next epoch; None: nothing to go by.

        The longest epoch measured in this process, not the last: the first epochs of a run are often the
        slow ones (allocator, cuDNN autotuning), and overrunning an allocation loses the whole epoch while
        stopping one epoch early loses nothing. Before any epoch here, the measured rate of the method at
        this preset and device (engine/epoch_costs.csv, × the pack size: packed seeds cost at most their
        solo sum); without one, None: the caller runs one epoch to measure it. The α-Hessian of an epoch
        that measures one is added: the longest measured here, else the rate's, else as much as the epoch
        (the README's ≈ one epoch's steps at the `cpu` preset)."""
        epoch, source = self._epoch()
        if epoch is None or not hessian:
            return epoch, source
        if self.times.hessians:
            return epoch + max(self.times.hessians), source + " + the longest α-Hessian so far"
        row = self._rate_hessian()
        if row is not None:
            return epoch + row, source + " + the α-Hessian's measured rate"
        return 2 * epoch, source + " + as much again for its α-Hessian"

    def fits(self, hessian: bool) -> tuple[bool, str]:
        """(whether to run the next epoch, a line saying why not)."""
        left = self.budget.left()
        if left <= 0:
            return False, "the time budget is spent"
        seconds, source = self.expected(hessian)
        if seconds is None or seconds <= left:
            return True, ""
        return False, f"the next epoch (≈ {seconds:.1f} s: {source}) would not finish in the {left:.1f} s left"

    def _epoch(self) -> tuple[float | None, str]:
        if self.times.epochs:
            return max(self.times.epochs), "the longest epoch so far"
        rate = self._rate()
        if rate is None:
            return None, "no epoch measured yet and no measured rate"
        return rate.epoch_s * self.pack_size, "engine/epoch_costs.csv's rate"

    def _rate(self):
        from .cost import rate_of   # the method registry: only when a budget is used

        c = self.config
        return rate_of(c.method, c.preset, c.device)

    def _rate_hessian(self) -> float | None:
        rate = self._rate()
        if rate is None or rate.hessian_row_s is None:
            return None
        return rate.hessian_row_s * rate.hessian_rows * self.config.hessian_batches * self.pack_size


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the seconds it took on the budget's clock."""
    t0 = clock()
    result = fn()
    return result, clock() - t0
