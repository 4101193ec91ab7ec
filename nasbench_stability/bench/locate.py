"""Where the benchmark table lives and where its source files are found.

The table's search order is the project's usual one (see :mod:`..paths`): an explicit path, then
``$NBS_BENCHMARK``, then ``$NBS_HOME/benchmark/nb201.parquet``. ``nbs bench build`` writes to the
same place ``Benchmark.load`` reads from, so a default build is found without configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths


def table_path(path: str | os.PathLike | None = None) -> Path:
    """The benchmark table's path: ``path``, else ``$NBS_BENCHMARK``, else the default under NBS_HOME."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(paths.BENCHMARK_ENV)
    if env:
        return Path(env).expanduser()
    return paths.default_benchmark_path()


def default_source_dir() -> Path | None:
    """``nb201/`` of the trusted reference-data folder (``$NBS_SHARED``, else the checkout's own
    ``../shared``; never one found from the working directory: :func:`..paths.shared_dir`), else None."""
    shared = paths.shared_dir()
    if shared is None or not (shared / "nb201").is_dir():
        return None
    return shared / "nb201"
