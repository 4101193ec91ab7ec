"""Schedules runs. Today: several seeds of one method in turn in this process.

Each run is a self-contained unit (resolved config in → run directory out), so other executors
(several seeds packed on one GPU, a Ray cluster) only need to call :func:`execute_config`.
Nothing global leaks between runs: each run reseeds every RNG from its own seed at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..bench.table import Benchmark
from ..data.catalog import dataset_spec
from ..data.locate import locate_dataset
from .config import RunConfig, resolve_config
from .run import Run, RunResult


def execute_config(config: RunConfig, out: Path, *, benchmark: Benchmark, data_root: Path | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> RunResult:
    from ..analysis.hessian import dominant_arch_eigenvalue

    return Run(config, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log,
               hessian=dominant_arch_eigenvalue).execute()


def run_seeds(method: str, seeds: list[int], *, dataset: str = "cifar10", epochs: int | None = None,
              device: str = "auto", preset: str | None = None, out: Path = Path("runs"),
              overrides: dict[str, str] | None = None, data_root: Path | None = None,
              benchmark_path: Path | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> list[RunResult]:
    """Resolve one config per seed (all validated before any work starts), then run them in turn."""
    configs = [resolve_config(method, dataset=dataset, seed=s, preset=preset, device=device, epochs=epochs,
                              overrides=overrides) for s in seeds]
    benchmark = Benchmark.load(benchmark_path)
    locate_dataset(dataset_spec(dataset), data_root)  # a missing dataset fails before any run directory exists
    return [execute_config(c, out, benchmark=benchmark, data_root=data_root, progress=progress, log=log)
            for c in configs]
