"""Where nbs keeps its caches and looks for data, in one place.

Search order for everything: an explicit argument, then an environment variable, then a default
that does not depend on the working directory (issue 23: a relative default made every fresh folder
a place nbs built its table in, and ``../shared`` beside the working folder a place it unpickled
files from — whoever could write next to the user's folder could run code in nbs):

* ``NBS_HOME`` (caches: the benchmark table, decoded datasets): ``$NBS_HOME``, else the checkout's
  git-ignored ``data/`` when nbs runs from a source checkout (found from this file's location, so
  ``make smoke`` and a ``nbs run`` from any folder share one table), else the per-user cache
  ``$XDG_CACHE_HOME/nbs`` (``~/.cache/nbs``) for an installed package.
* the reference data (``nb201/``, ``datasets/``): ``$NBS_SHARED``, else the checkout's own
  ``../shared`` (beside the checkout, found from this file's location), else none. Never
  ``../shared`` of the working directory, nor a ``shared`` beside an installed package's
  site-packages: only places the user chose (the variable, where they cloned the project).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from .errors import NbsError

BENCHMARK_ENV = "NBS_BENCHMARK"
DATA_ENV = "NBS_DATA"
HOME_ENV = "NBS_HOME"
SHARED_ENV = "NBS_SHARED"
PROJECT_NAME = "nasbench_stability"   # [project] name in the checkout's pyproject.toml


def checkout_root() -> Path | None:
    """The source checkout this package is imported from (an editable install, or ``python -m`` in the
    repository), else None. A checkout is recognised by its own ``pyproject.toml`` beside the package:
    an installed wheel's parent is site-packages, which has none, so nothing beside it is trusted."""
    root = Path(__file__).resolve().parent.parent
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text()).get("project")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return root if isinstance(project, dict) and project.get("name") == PROJECT_NAME else None


def nbs_home() -> Path:
    """``$NBS_HOME``, else the checkout's ``data/``, else the per-user cache (see the module docstring)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    root = checkout_root()
    if root is not None:   # the project's git-ignored data/: where `make smoke` has always put the table
        return root / "data"
    # XDG: a relative XDG_CACHE_HOME is invalid and must be ignored
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache and Path(cache).is_absolute():
        return Path(cache) / "nbs"
    try:
        return Path.home() / ".cache" / "nbs"
    except RuntimeError:   # no HOME and no password entry: there is no per-user place to default to
        raise NbsError(f"cannot tell where to keep nbs's caches (no home folder): set {HOME_ENV}") from None


def default_benchmark_path() -> Path:
    return nbs_home() / "benchmark" / "nb201.parquet"


def dataset_cache_dir() -> Path:
    return nbs_home() / "datasets"


def shared_dir() -> Path | None:
    """The reference-data folder: ``$NBS_SHARED``, else ``../shared`` beside this checkout, if it holds
    ``nb201/`` or ``datasets/``. Deliberately not ``../shared`` from the working directory: that lookup let
    a folder planted beside the user's (a shared /tmp, an unpacked archive) feed nbs a pickle."""
    candidates = [Path(os.environ[SHARED_ENV]).expanduser()] if os.environ.get(SHARED_ENV) else []
    root = checkout_root()
    if root is not None:
        candidates.append(root.parent / "shared")
    for p in candidates:
        if (p / "nb201").is_dir() or (p / "datasets").is_dir():
            return p
    return None
