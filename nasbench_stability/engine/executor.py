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
from .config import RunConfig, resolve_config
from .run import Run, RunResult


def execute_config(config: RunConfig, out: Path, *, benchmark: Benchmark, data_root: Path | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> RunResult:
    return Run(config, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log).execute()


def run_seeds(method: str, seeds: list[int], *, dataset: str = "cifar10", epochs: int | None = None,
              device: str = "auto", preset: str | None = None, out: Path = Path("runs"),
              overrides: dict[str, str] | None = None, data_root: Path | None = None,
              benchmark_path: Path | None = None, progress: bool = True, jobs: int = 1,
              log: Callable[[str], None] = print) -> list[RunResult]:
    """Resolve one config per seed (all validated before any work starts), then run them, ``jobs``
    at a time (results in seed order either way)."""
    configs = [resolve_config(method, dataset=dataset, seed=s, preset=preset, device=device, epochs=epochs,
                              overrides=overrides) for s in seeds]
    check_folder_path(out, "--out folder")  # a file in the way fails before any slow work (creates nothing)
    benchmark = Benchmark.load(ensure_table(benchmark_path, log=log))
    locate_dataset(dataset_spec(dataset), data_root)  # a missing dataset fails before any run directory exists
    if jobs <= 1 or len(configs) == 1:
        return [execute_config(c, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log)
                for c in configs]
    load_arrays(dataset, data_root)  # decode once here, so that the workers all read the cache
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_worker, c, out, table_path(benchmark_path), data_root, threads) for c in configs]
        return [f.result() for f in futures]


def _worker(config: RunConfig, out: Path, benchmark_path: Path, data_root: Path | None, threads: int) -> RunResult:
    """One run in a worker process (its own benchmark copy and CPU-thread share; no progress bars)."""
    torch.set_num_threads(threads)
    return execute_config(config, out, benchmark=Benchmark.load(benchmark_path), data_root=data_root, progress=False)
