"""What a worker does with one work unit, wherever it runs (this process, a worker process, a Ray task).

A unit's runs go through the engine (:func:`engine.executor.execute_config`, or
:func:`engine.packed_run.run_packed` for packed seeds), which locks, checkpoints and resumes each run
directory. A run that fails is an outcome, not an exception: one bad grid point must not stop the
other runs of a study.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ..bench.sources import one_line
from ..destinations import WriteError
from ..engine.budget import TimeBudget, unstarted
from ..errors import ConfigError, NbsError
from .expand import WorkUnit

#: states of a run's outcome; "already-*" runs were skipped (ended before this sweep)
FAILED = "failed"   # and engine.status.PAUSED: stopped, or not started, by --time-budget (a re-run continues it)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    state: str                  # finished | diverged | paused | already-finished | already-diverged | failed
    epochs_done: int | None     # None when the run failed before saying
    message: str
    retry: bool = True          # a failure that re-running the sweep may get past (see can_retry)

    @property
    def skipped(self) -> bool:
        return self.state.startswith("already-")


@dataclass(frozen=True)
class RunEnvironment:
    """Where a worker finds what the runs read, resolved to absolute paths by the sweep (a Ray worker
    has another working directory, maybe on another machine of a shared file system)."""

    benchmark_path: Path
    data_roots: tuple[tuple[str, Path | None], ...]   # dataset → its archive or folder (None: table search)
    nbs_home: Path                                    # the dataset cache every run reads
    threads: int = 1                                  # torch CPU threads per unit
    cuda_graphs: bool = True
    quiet: bool = False                               # no per-epoch lines
    epoch_log: str = "none"                           # also log each epoch to: none | tensorboard
    #: --time-budget: its deadline is wall-clock time (engine/budget.py), so it means the same in a spawned
    #: worker and, as far as the nodes' clocks agree, in a Ray task on another node
    budget: TimeBudget | None = None

    def budget_spent(self) -> bool:
        return self.budget is not None and self.budget.spent()

    def data_root(self, dataset: str) -> Path | None:
        return dict(self.data_roots).get(dataset)


def run_unit(unit: WorkUnit, env: RunEnvironment) -> list[RunOutcome]:
    """Run (or resume, or skip) the unit's runs; one outcome per run, in order."""
    import torch

    from ..engine.executor import execute_config
    from ..engine.packed_run import run_packed
    from ..engine.run import Run

    if env.budget_spent():   # before the benchmark is loaded: nothing of the unit starts
        return not_started(unit)
    log: Callable[[str], None] = (lambda line: None) if env.quiet else print
    threads = torch.get_num_threads()
    torch.set_num_threads(env.threads)   # also keeps float sums the same wherever a run goes
    try:
        benchmark = load_benchmark(env.benchmark_path)
        configs = [r.config for r in unit.runs]
        out = unit.runs[0].out
        root = env.data_root(configs[0].dataset)
        if len(configs) > 1:
            results = run_packed([Run(c, out, benchmark=benchmark, data_root=root, progress=False, log=log,
                                      cuda_graphs=env.cuda_graphs, epoch_log=env.epoch_log, budget=env.budget)
                                  for c in configs])
        else:
            results = [execute_config(configs[0], out, benchmark=benchmark, data_root=root, progress=False,
                                      log=log, cuda_graphs=env.cuda_graphs, epoch_log=env.epoch_log,
                                      budget=env.budget)]
    except Exception as err:  # noqa: BLE001 — reported per run; the other units go on
        return failed(unit, describe_error(err), retry=can_retry(err))
    finally:
        torch.set_num_threads(threads)
    return [RunOutcome(r.run_dir, r.state, r.epochs_done, _message(r)) for r in results]


@lru_cache(maxsize=2)
def load_benchmark(path: Path):
    """The table, loaded once per process (a Ray worker runs many tasks; the sweep's own process checks
    it before any unit and then runs its units with the same copy)."""
    from ..bench.table import Benchmark

    return Benchmark.load(path)


def _message(result) -> str:
    """The engine's message without the run directory it starts with (the progress line names it)."""
    if not result.message:
        return f"{result.state} after {result.epochs_done} {result.unit}, final cell {result.final_genotype}"
    return result.message.removeprefix(f"{result.run_dir} ")


def describe_error(err: BaseException) -> str:
    """One line: an nbs error's own message; anything else with its type (a bug, a dead worker)."""
    return " ".join(str(err).split()) if isinstance(err, NbsError) else one_line(err)


def can_retry(err: BaseException) -> bool:
    """Whether re-running the sweep may get past ``err``: not for an nbs error about the run itself (a
    directory holding another run's config, options that do not go together, a damaged checkpoint),
    which fails the same way every time until the user acts; yes for a run another process holds (it
    will be free), a destination that could not be written (space freed, a mount back) and anything
    unexpected (a killed worker, out of memory)."""
    if isinstance(err, WriteError) or not isinstance(err, NbsError):
        return True
    # the engine's lock message (engine/run_lock.py) is the one ConfigError that time cures
    return isinstance(err, ConfigError) and str(err).endswith("is being run by another process")


def not_started(unit: WorkUnit) -> list[RunOutcome]:
    """The unit's runs, left as they are because the time budget is spent (an ended one as skipped)."""
    outcomes = []
    for r in unit.runs:
        state, done, message = unstarted(r.run_dir, r.config.epochs)
        outcomes.append(RunOutcome(r.run_dir, state, done, message.removeprefix(f"{r.run_dir} ")))
    return outcomes


def failed(unit: WorkUnit, why: str, retry: bool = True) -> list[RunOutcome]:
    """Every run of ``unit`` as failed (its worker died or raised): a re-run of the sweep resumes them
    (``retry``), unless the failure is one that a re-run meets again."""
    return [RunOutcome(r.run_dir, FAILED, None, why.removeprefix(f"{r.run_dir} "), retry) for r in unit.runs]
