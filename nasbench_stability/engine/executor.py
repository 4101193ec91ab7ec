"""Schedules runs: several seeds of one method in turn in this process, or ``jobs`` at a time in
worker processes (several seeds sharing a many-core CPU or one GPU).

Each run is a self-contained unit (resolved config in → run directory out), so other executors
(a Ray cluster) only need to call :func:`execute_config`. Nothing global leaks between runs: each
run reseeds every RNG from its own seed at start, and runs write only their own directory.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import torch

from ..bench.build import ensure_table
from ..bench.locate import table_path
from ..bench.table import Benchmark
from ..data.cache import load_arrays
from ..data.catalog import dataset_spec
from ..data.locate import locate_dataset
from ..destinations import check_folder_path
from ..errors import ConfigError
from ..methods.registry import get_method
from .budget import TimeBudget
from .config import RunConfig, resolve_config
from .cost import RunPlan, estimate
from .epoch_log import check_log_destination, check_log_kind
from .packed_run import run_packed
from .presets import cut_schedule
from .run import Run, RunResult, has_ended, run_dir_for
from .table_run import TableRun

#: whether seeds pack when --pack is not given, by device type: on CUDA the step is launch-bound and
#: K packed seeds cost little more than one (benchmarks/gpu_epoch.py); on a CPU the work is compute-bound
#: and the measured packed step is no faster than K solo steps (benchmarks/RESULTS.md), so seeds run solo
PACK_BY_DEFAULT = {"cuda": True, "cpu": False}


def execute_config(config: RunConfig, out: Path, *, benchmark: Benchmark, data_root: Path | None = None,
                   progress: bool = True, log: Callable[[str], None] = print, cuda_graphs: bool = True,
                   epoch_log: str = "none", budget: TimeBudget | None = None) -> RunResult:
    # a table search takes about a second: the budget only keeps it from starting once spent
    runner = TableRun if get_method(config.method).table_search else Run
    return runner(config, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log,
                  cuda_graphs=cuda_graphs, epoch_log=epoch_log, budget=budget).execute()


def will_pack(configs: list[RunConfig], pack: bool | None, jobs: int = 1) -> bool:
    """Whether these seeds run packed: asked for (or the device's default), more than one seed, a
    method that packs. ``--pack`` with ``--jobs`` > 1 or a method that cannot pack is a ConfigError."""
    info = get_method(configs[0].method)
    if pack is None:
        return (jobs <= 1 and len(configs) > 1 and info.packable
                and PACK_BY_DEFAULT.get(configs[0].torch_device().type, False))
    if pack and jobs > 1:
        raise ConfigError("--pack runs the seeds in one process; it does not go with --jobs > 1")
    if pack and not info.packable:
        raise ConfigError(f"{info.name} does not pack: {info.solo_reason}; run it without --pack")
    return pack and len(configs) > 1


def run_seeds(method: str, seeds: list[int], *, dataset: str = "cifar10", epochs: int | None = None,
              device: str = "auto", preset: str | None = None, out: Path = Path("runs"),
              overrides: dict[str, str] | None = None, data_root: Path | None = None,
              benchmark_path: Path | None = None, progress: bool = True, jobs: int = 1,
              pack: bool | None = None, cuda_graphs: bool = True,
              log: Callable[[str], None] = print, epoch_log: str = "none",
              announce_cost: bool = True, budget: TimeBudget | None = None) -> list[RunResult]:
    """Resolve one config per seed (all validated before any work starts), then run them: packed into
    one model (``pack``; None = the device's default, for a method that packs), or ``jobs`` at a time
    (results in seed order either way). ``announce_cost``: log the expected wall time first (a caller
    that runs several of these says it once for all). ``budget``: stop between epochs before it runs out
    (``--time-budget``); the runs it stops are ``paused``."""
    configs = [resolve_config(method, dataset=dataset, seed=s, preset=preset, device=device, epochs=epochs,
                              overrides=overrides) for s in seeds]
    check_log_kind(epoch_log)   # a missing logging library fails before any slow work
    check_folder_path(out, "--out folder")  # a file in the way fails before any slow work (creates nothing)
    for c in configs:   # every seed's log folder, so that a later seed's is not found after the earlier ran;
        if not has_ended(run_dir_for(out, c)):   # an ended run logs nothing more: it is answered as ended
            check_log_destination(epoch_log, run_dir_for(out, c))
    benchmark = Benchmark.load(ensure_table(benchmark_path, log=log))
    table_search = get_method(method).table_search   # searches the table: no dataset, no supernet
    if not table_search:
        locate_dataset(dataset_spec(dataset), data_root)  # a missing dataset fails before any run directory exists
    packed = will_pack(configs, pack, jobs)
    if announce_cost:
        log(estimate([RunPlan.of(c, run_dir_for(out, c)) for c in configs], jobs=1 if packed else jobs).line)
        if budget is not None:
            log(budget.line())
        cut = None if table_search else cut_schedule(configs[0].preset, configs[0].epochs,
                                                      get_method(method).default_options().epochs)
        if cut is not None:
            log(f"note: {cut}")
    if packed:
        return run_packed([Run(c, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log,
                               cuda_graphs=cuda_graphs, epoch_log=epoch_log, budget=budget) for c in configs])
    if jobs <= 1 or len(configs) == 1:
        return [execute_config(c, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log,
                               cuda_graphs=cuda_graphs, epoch_log=epoch_log, budget=budget) for c in configs]
    if not table_search:
        load_arrays(dataset, data_root)  # decode once here, so that the workers all read the cache
    threads = worker_threads(jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_worker, c, out, table_path(benchmark_path), data_root, threads, epoch_log, budget)
                   for c in configs]
        return [f.result() for f in futures]


def worker_threads(jobs: int) -> int:
    """Torch CPU threads of each of ``jobs`` worker processes: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _worker(config: RunConfig, out: Path, benchmark_path: Path, data_root: Path | None, threads: int,
            epoch_log: str = "none", budget: TimeBudget | None = None) -> RunResult:
    """One run in a worker process (its own benchmark copy and CPU-thread share; no progress bars)."""
    torch.set_num_threads(threads)
    return execute_config(config, out, benchmark=Benchmark.load(benchmark_path), data_root=data_root, progress=False,
                          epoch_log=epoch_log, budget=budget)
