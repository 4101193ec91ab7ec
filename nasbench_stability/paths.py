"""Where nbs keeps its caches and looks for data, in one place.

Search order for everything: an explicit argument, then an environment variable, then the default
under ``NBS_HOME`` (env var; default ``./data`` relative to the working directory, the project's
git-ignored ``data/`` folder when run from a checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

BENCHMARK_ENV = "NBS_BENCHMARK"
DATA_ENV = "NBS_DATA"
HOME_ENV = "NBS_HOME"
SHARED_ENV = "NBS_SHARED"


def nbs_home() -> Path:
    return Path(os.environ.get(HOME_ENV, "data")).expanduser()


def default_benchmark_path() -> Path:
    return nbs_home() / "benchmark" / "nb201.parquet"


def dataset_cache_dir() -> Path:
    return nbs_home() / "datasets"


def shared_dir() -> Path | None:
    """The reference-data folder (``../shared`` beside a checkout), if present."""
    candidates = [os.environ.get(SHARED_ENV)] if os.environ.get(SHARED_ENV) else []
    here = Path(__file__).resolve().parent.parent
    candidates += [str(here.parent / "shared"), "../shared"]
    for c in candidates:
        p = Path(c).expanduser()
        if (p / "nb201").is_dir() or (p / "datasets").is_dir():
            return p
    return None
