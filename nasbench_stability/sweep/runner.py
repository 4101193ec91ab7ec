"""Run a study: check what every run needs once, here, then hand the work units to an executor.

The benchmark table is built if missing and each dataset is located and decoded into the cache
before any unit starts (workers started together would each decode it), and their paths are made
absolute for workers elsewhere. Re-running a sweep is safe: finished runs are skipped and unfinished
ones resume (the engine's run directories), so a sweep that was stopped, or lost a worker, is
finished by running it again.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import paths
from ..bench.build import ensure_table
from ..data.cache import load_arrays
from ..data.catalog import dataset_spec
from ..data.locate import locate_dataset
from ..destinations import check_folder_path, check_writable
from ..engine.budget import TimeBudget
from ..engine.cost import RunPlan, estimate
from ..engine.epoch_log import check_log_kind
from ..engine.status import PAUSED, TERMINAL, read_status
from ..methods.registry import get_method
from .executors import Executor, OnDone
from .expand import PlannedRun, WorkUnit, work_units
from .study import Study
from .worker import FAILED, RunEnvironment, RunOutcome, load_benchmark, run_unit


@dataclass(frozen=True)
class SweepSummary:
    outcomes: tuple[RunOutcome, ...]
    seconds: float

    @property
    def counts(self) -> Counter:
        return Counter("skipped" if o.skipped else o.state for o in self.outcomes)

    @property
    def failed(self) -> bool:
        return self.counts[FAILED] > 0

    @property
    def retryable(self) -> bool:
        """Whether re-running the sweep may finish a failed run (not if each failed for a reason that a
        re-run meets again, such as a directory holding another run's config)."""
        return any(o.state == FAILED and o.retry for o in self.outcomes)

    @property
    def paused(self) -> list[RunOutcome]:
        """The runs that --time-budget stopped or did not start: re-running the sweep continues them."""
        return [o for o in self.outcomes if o.state == PAUSED]

    def line(self) -> str:
        c = self.counts
        paused = f", {c[PAUSED]} unfinished (time budget)" if c[PAUSED] else ""
        return (f"{len(self.outcomes)} runs: {c['finished']} finished, {c['skipped']} skipped (ended before), "
                f"{c['diverged']} diverged, {c[FAILED]} failed{paused}; {self.seconds:.1f} s")


def run_sweep(study: Study, planned: list[PlannedRun], executor: Executor, *, benchmark_path: Path | None = None,
              data_root: Path | None = None, cuda_graphs: bool = True, quiet: bool = False, epoch_log: str = "none",
              log: Callable[[str], None] = print, on_done: OnDone | None = None,
              out: Path | None = None, budget: TimeBudget | None = None) -> SweepSummary:
    """Run ``planned`` (from :func:`expand.expand`) with ``executor``; the outcome of every run. ``budget``
    (--time-budget) is the whole command's: runs stop between epochs before it runs out, and the units not
    started by then are not started."""
    start = time.perf_counter()
    units = work_units(planned, study.pack)
    ended = {i for i, unit in enumerate(units) if _ended(unit)}
    writes = [r for i, unit in enumerate(units) if i not in ended for r in unit.runs]
    env = prepare_environment(study, planned, benchmark_path, data_root, cuda_graphs=cuda_graphs, quiet=quiet,
                              epoch_log=epoch_log, log=log, writes=writes, out=out, budget=budget)
    jobs = getattr(executor, "jobs", None)   # None: a Ray cluster, whose size is its own
    cost = estimate([RunPlan.of(r.config, r.run_dir) for r in planned], jobs=jobs or 1).line
    log(cost if jobs is not None else cost.replace("one at a time", "if run one at a time (the Ray cluster's "
                                                   "workers divide it)"))
    on_done = on_done or (lambda unit, outcomes: None)
    results: dict[int, list[RunOutcome]] = {}
    for i in sorted(ended):   # answered here from its status (and records): no worker to start, no cluster
        results[i] = run_unit(units[i], env)
        on_done(units[i], results[i])
    rest = [i for i in range(len(units)) if i not in results]
    if rest:
        results.update(zip(rest, executor.run([units[i] for i in rest], env, on_done)))
    return SweepSummary(tuple(o for i in range(len(units)) for o in results[i]), time.perf_counter() - start)


def _ended(unit: WorkUnit) -> bool:
    """Every run of the unit ended (finished or diverged) in an earlier sweep, as its status says."""
    return all(read_status(r.run_dir)[0].get("state") in TERMINAL for r in unit.runs)


def prepare_environment(study: Study, planned: list[PlannedRun], benchmark_path: Path | None,
                        data_root: Path | None, *, cuda_graphs: bool = True, quiet: bool = False,
                        epoch_log: str = "none", log: Callable[[str], None] = print,
                        writes: list[PlannedRun] | None = None, out: Path | None = None,
                        budget: TimeBudget | None = None) -> RunEnvironment:
    """Everything the runs read, checked and made absolute before any run starts (errors: one line).
    ``writes``: the runs that will write (default: all); those that ended before only read their
    directory, which may be read-only by now. ``out``: the --out folder they are in, checked first."""
    check_log_kind(epoch_log)   # a missing logging library fails before any slow work
    writing = {r.out for r in (planned if writes is None else writes)}
    for folder in sorted({r.out for r in planned} - writing):
        check_folder_path(folder, "--out folder")   # a file in the way fails before any slow work
    # --out itself first (the folder the user named), then each settings folder in it
    root = [Path(out) if out is not None else Path(os.path.commonpath(writing))] if writing else []
    for folder in root + sorted(writing):
        # as `nbs run`: a read-only place, /proc, a file in the way is one line before the table is built
        # or a dataset decoded (and not one failure per run after them); creates nothing
        check_writable(folder, "--out folder")
    table = ensure_table(benchmark_path, log=log).resolve()
    load_benchmark(table)   # a missing or damaged table: one line now, not one per run (and cached)
    datasets = {r.config.dataset for r in planned if not get_method(r.config.method).table_search}
    roots: dict[str, Path | None] = {d: None for d in study.datasets}
    for dataset in sorted(datasets):
        roots[dataset] = locate_dataset(dataset_spec(dataset), data_root).resolve()
        load_arrays(dataset, roots[dataset], progress=not quiet)   # decoded once, into the shared cache
    return RunEnvironment(benchmark_path=table, data_roots=tuple(roots.items()), nbs_home=paths.nbs_home().resolve(),
                          cuda_graphs=cuda_graphs, quiet=quiet, epoch_log=epoch_log, budget=budget)
