"""Where each run under some folders stands, one row per run: what ``nbs status`` prints.

Reads only: ``status.json``, ``config.json``, the newest readable record and a probe of the run's lock,
so it is safe (and cheap) to call every few seconds on runs being written. The lock tells a live run
from a killed one: both leave ``status.json`` at "running", but only a live process holds the lock.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.records import (DamagedRecordError, planned_table_records, read_record, record_files,
                              record_kind_problem)
from ..engine.run_lock import run_lock_held
from ..engine.status import PAUSED, TERMINAL, read_status
from .bench_columns import DEFAULT_TEST_COLUMN, record_column
from .loading import PathsLike, find_run_dirs, read_run_config

#: states besides status.json's own (running, paused, finished, diverged)
STALE, DAMAGED, UNKNOWN = "stale lock", "damaged status", "unknown"
TABLE_PRESET = "table"   # a table search's config preset (engine.config.TABLE_PRESET, which imports torch)
TEST_COLUMN = record_column(DEFAULT_TEST_COLUMN)   # the derived cell's CIFAR-10 test accuracy (200 epochs)

COLUMNS = ("method", "dataset", "seed", "state", "epochs_done", "epochs", "genotype", "test_acc",
           "seconds_per_epoch", "eta_seconds", "updated", "run_dir")


def run_progress(paths: PathsLike) -> pd.DataFrame:
    """One row per run directory under ``paths`` (found as ``nbs report`` finds them), in :data:`COLUMNS`.

    ``state``: running (its lock is held), paused (stopped by ``--time-budget``; re-running the command
    continues it), finished, diverged, ``stale lock`` (status running, lock free: a killed run; re-running
    the command resumes it), ``damaged status`` or ``unknown`` (no status file). ``seconds_per_epoch`` is the
    wall time per epoch so far (a packed seed's share times the pack size: the seeds advance together);
    ``eta_seconds`` is given for running and paused runs only. :class:`~.loading.NoRunsError`
    if there is no run directory.
    """
    return pd.DataFrame([progress_row(d) for d in find_run_dirs(paths)], columns=list(COLUMNS))


def progress_row(run_dir: Path) -> dict[str, Any]:
    config = read_run_config(run_dir)
    status, problem = read_status(run_dir)
    last = last_record(run_dir)
    state = run_state(status.get("state"), bool(problem), run_lock_held(run_dir))
    epochs = config.get("epochs", _get(last, "epochs"))
    if config.get("preset") == TABLE_PRESET:
        epochs = table_search_records(config, state, last, epochs)
    done = status.get("epochs_done", _get(last, "epoch"))
    per_epoch = seconds_per_epoch(last)
    remaining = epochs - done if isinstance(epochs, int) and isinstance(done, int) else None
    eta = per_epoch * remaining if state in ("running", PAUSED) and remaining is not None else math.nan
    return {
        "method": config.get("method", _get(last, "method")), "dataset": config.get("dataset", _get(last, "dataset")),
        "seed": config.get("seed", _get(last, "seed")), "state": state, "epochs_done": done, "epochs": epochs,
        "genotype": _get(last, "genotype"), "test_acc": _get(last, TEST_COLUMN, math.nan),
        "seconds_per_epoch": per_epoch, "eta_seconds": eta, "updated": status.get("updated", math.nan),
        "run_dir": str(run_dir),
    }


def table_search_records(config: dict[str, Any], state: str, last: dict[str, Any], default: Any) -> Any:
    """The records a table search writes: its config's ``epochs`` is its ``checkpoints`` option, but a
    smaller query budget writes fewer (``--set max_queries=5``: 5 records, not 20). An ended run's records
    say how many it wrote; a running one's options, for a query budget."""
    if state in TERMINAL and isinstance(_get(last, "epochs"), int):
        return _get(last, "epochs")
    planned = planned_table_records(config.get("method_options") or {})
    return planned if planned is not None else default


def run_state(state: str | None, damaged: bool, lock_held: bool | None) -> str:
    """The state shown for a run: status.json's, corrected by whether its lock is held."""
    if state in TERMINAL:
        return state
    if lock_held:
        return "running"        # also a run that is just starting or repairing its status
    if damaged:
        return DAMAGED
    if state == PAUSED:
        return PAUSED
    if state == "running":
        return STALE if lock_held is False else UNKNOWN
    return UNKNOWN


def last_record(run_dir: Path) -> dict[str, Any]:
    """The newest sound epoch record as a dict ({} if none). A newer one that is damaged, or holds a value
    of the wrong kind (an infinite time would make the time left infinite), is passed over with one
    warning naming the newest such file."""
    skipped: list[tuple[Path, str]] = []
    found: dict[str, Any] = {}
    for path in reversed(list(record_files(run_dir).values())):
        try:
            record = read_record(path)
        except DamagedRecordError as err:
            skipped.append((path, f"damaged record {path} ({err.problem})"))
            continue
        wrong = record_kind_problem(record)
        if wrong is not None:
            skipped.append((path, f"record {path} holds {wrong[1]}"))
            continue
        found = record.iloc[0].to_dict()
        break
    if skipped:
        more = f" (and {len(skipped) - 1} older record(s) like it)" if len(skipped) > 1 else ""
        shows = "an older epoch's cell" if found else "no cell or time"
        warnings.warn(f"{skipped[0][1]}{more}: the status shows {shows}", stacklevel=2)
    return found


def seconds_per_epoch(record: dict[str, Any]) -> float:
    """Wall seconds per epoch up to ``record`` (NaN without one): its cumulative time over its epoch."""
    wall, epoch = record.get("wall_seconds"), record.get("epoch")
    if wall is None or not epoch:
        return math.nan
    return float(wall) / int(epoch) * int(record.get("pack_size", 1) or 1)


def _get(record: dict[str, Any], key: str, default: Any = None) -> Any:
    value = record.get(key, default)
    return value.item() if hasattr(value, "item") else value
