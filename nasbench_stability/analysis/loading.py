"""Run directories in, one tidy per-epoch DataFrame out.

Every analysis and figure starts from :func:`load_runs`, so it is the one place that deals with
the untidy facts of real experiments: runs still in progress, runs killed between epochs, runs of
different lengths, a damaged file, the same run named twice on the command line. It never
writes to a run directory, so it is safe to point at runs that are still being written.

A damaged record (unreadable, or not the epoch its name says) or a gap in a run's epochs is never
dropped silently: each is a one-line warning naming the file, which ``nbs report`` and ``nbs plot``
print on stderr (and the report lists). A run whose records hold a value of the wrong kind (a text
seed, a text α, an infinite time) is left out whole, named the same way. A damaged ``status.json``
reads as state ``damaged``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Union

import pandas as pd

from ..engine.records import DamagedRecordError, read_record, record_files, record_kind_problem
from ..engine.status import status_problem
from ..errors import MissingFileError, NbsError

PathsLike = Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]]

CONFIG_FILE, STATUS_FILE, RECORDS_DIR = "config.json", "status.json", "records"

# Run-level columns added to every epoch row (from config.json / status.json). Records already
# carry method, dataset, seed, preset and epochs; these say how big the run was and where it lives.
CONFIG_COLUMNS: tuple[str, ...] = (
    "channels", "cells_per_stage", "data_subset", "eval_batches", "batch_size", "device",
    "hessian_every", "split_policy",
)
# Method options worth a column of their own: ``mode`` separates bi-level from single-level runs;
# the step order, schedule and BN mode are what fidelity to a reference turns on.
OPTION_COLUMNS: tuple[str, ...] = ("mode", "activation", "order", "step_order", "lr_schedule", "track_running_stats")
RUN_COLUMNS: tuple[str, ...] = ("run_dir", "status", "epochs_done") + CONFIG_COLUMNS + OPTION_COLUMNS

SORT_KEYS = ["method", "dataset", "seed", "run_dir", "epoch"]


class NoRunsError(MissingFileError):
    """No nbs run directory under the given paths."""


def is_run_dir(path: Path) -> bool:
    """A run directory has ``records/``, or ``config.json`` and ``status.json`` (both written before
    the first epoch, so a run that has just started is found too)."""
    return (path / RECORDS_DIR).is_dir() or ((path / CONFIG_FILE).is_file() and (path / STATUS_FILE).is_file())


def find_run_dirs(paths: PathsLike) -> list[Path]:
    """Run directories named by ``paths``: each path is a run directory or a folder holding some
    (at any depth). Duplicates (a run named directly and through its parent) are dropped; the
    order is sorted, so tables and figures do not depend on the shell's argument order."""
    found: dict[Path, None] = {}
    for raw in _as_list(paths):
        path = Path(raw).expanduser()
        if not path.exists():
            raise MissingFileError(f"{path} does not exist")
        if is_run_dir(path):
            found[path.resolve()] = None
            continue
        candidates = {p.parent for p in path.rglob(CONFIG_FILE)} | {p.parent for p in path.rglob(RECORDS_DIR)}
        for candidate in sorted(candidates):
            if is_run_dir(candidate):
                found[candidate.resolve()] = None
    if not found:
        names = ", ".join(str(p) for p in _as_list(paths)) or "(none given)"
        raise NoRunsError(f"no nbs run directories (with records/, or config.json and status.json) under {names}")
    return sorted(found)


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config as saved (empty if missing or unreadable)."""
    return _read_json(Path(run_dir) / CONFIG_FILE)


def read_run_status(run_dir: Path) -> dict[str, Any]:
    """``status.json``; a run with records but no status file reads as ``unknown``, one whose
    status file is damaged as ``damaged`` (with a warning)."""
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        return {"state": "unknown"}
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        status, problem = None, f"unreadable: {type(err).__name__}"
    else:
        problem = status_problem(status)
    if problem:
        warnings.warn(f"damaged {path} ({problem}): its run is shown as 'damaged'; `nbs run` with the run's "
                      f"settings rewrites it from the checkpoint", stacklevel=2)
        return {"state": "damaged"}
    return status


def read_run_records(run_dir: Path) -> pd.DataFrame:
    """All readable epoch records of one run, sorted by epoch.

    Unlike the engine, which refuses to continue a run with a damaged record, this leaves such a
    file out — a disk that filled up, a file copied half-way — with a one-line warning naming it,
    instead of failing the whole analysis. A gap in the epochs is warned about too.
    """
    frames = []
    files = record_files(run_dir)
    for epoch, f in files.items():
        try:
            frames.append(read_record(f))
        except DamagedRecordError as err:
            warnings.warn(f"damaged record {f} ({err.problem}): epoch {epoch} of {run_dir} is left out; it "
                          f"cannot be re-derived without re-running the run from scratch", stacklevel=2)
    missing = sorted(set(range(1, max(files, default=0) + 1)) - set(files))
    if missing:
        warnings.warn(f"{run_dir / RECORDS_DIR} lacks the record(s) of epoch(s) {_ranges(missing)}; "
                      f"they are left out", stacklevel=2)
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates(subset="epoch", keep="last") if "epoch" in df else df
    return df.sort_values("epoch", kind="stable").reset_index(drop=True)


def run_index(paths: PathsLike) -> pd.DataFrame:
    """One row per run directory: identity, status, size and the full saved config.

    Includes runs without any record yet (they appear in the report's run list, not in curves).
    """
    rows = []
    for run_dir in find_run_dirs(paths):
        cfg, status = read_run_config(run_dir), read_run_status(run_dir)
        options = cfg.get("method_options", {}) or {}
        rows.append({
            "run_dir": str(run_dir),
            "run": f"{cfg['method']}-{cfg.get('dataset', '?')}-seed{cfg.get('seed', '?')}" if "method" in cfg
            else run_dir.name,
            "method": cfg.get("method"), "dataset": cfg.get("dataset"), "seed": cfg.get("seed"),
            "preset": cfg.get("preset"), "epochs": cfg.get("epochs"),
            "status": status.get("state", "unknown"), "epochs_done": status.get("epochs_done"),
            **{k: cfg.get(k) for k in CONFIG_COLUMNS},
            # runs made before an option existed may have it at the config's top level (or not at all)
            **{k: options.get(k, cfg.get(k)) for k in OPTION_COLUMNS},
            "config": cfg,
        })
    return pd.DataFrame(rows)


def load_runs(paths: PathsLike) -> pd.DataFrame:
    """Every epoch record of every run under ``paths`` as one tidy DataFrame (one row per run and epoch).

    Adds :data:`RUN_COLUMNS` (``run_dir``, ``status``, ``epochs_done``, network size, ``mode``, ...)
    to every row. Runs without records are left out with a warning; runs of different lengths
    simply have different numbers of rows. Array-valued record columns (``op_weights``,
    ``op_grad``, ``gc_inner``, ...) stay flat numpy arrays; :mod:`.matrices` reshapes them.
    Raises :class:`NoRunsError` if no run directory is found, and :class:`NbsError` if none of
    them has a record yet.
    """
    index = run_index(paths)
    frames = []
    for run in index.itertuples(index=False):
        records = read_run_records(Path(run.run_dir))
        if records.empty:
            warnings.warn(f"{run.run_dir} has no epoch records yet; left out", stacklevel=2)
            continue
        wrong = record_kind_problem(records)
        if wrong is not None:
            # one such run would break every table and figure of the runs beside it (a text seed does not
            # sort with numbers, a text α does not reshape): the run goes, named, as a damaged file does
            position, problem = wrong
            path = record_files(run.run_dir).get(records["epoch"].iloc[position], Path(run.run_dir) / RECORDS_DIR)
            warnings.warn(f"record {path} holds {problem}: {run.run_dir} is left out", stacklevel=2)
            continue
        for col in RUN_COLUMNS:
            if col not in records:
                records[col] = getattr(run, col)
        frames.append(records)
    if not frames:
        raise NbsError(f"none of the {len(index)} run director{'y' if len(index) == 1 else 'ies'} "
                       f"has an epoch record yet")
    df = pd.concat(frames, ignore_index=True, sort=False)
    return df.sort_values([k for k in SORT_KEYS if k in df], kind="stable").reset_index(drop=True)


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} if missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ranges(epochs: list[int]) -> str:
    """[2, 3, 4, 7] -> '2-4, 7' (a long gap stays one short line)."""
    spans: list[list[int]] = []
    for e in epochs:
        if spans and e == spans[-1][1] + 1:
            spans[-1][1] = e
        else:
            spans.append([e, e])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _as_list(paths: PathsLike) -> list:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)
