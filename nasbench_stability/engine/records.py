"""Per-epoch records: one Parquet file per epoch under ``<run>/records/``.

A directory of Parquet files is appendable without rewriting (each epoch adds a file, written
atomically) and pandas reads it in one call: ``pd.read_parquet(run_dir / "records")``. Nested
values (α, gradient correlation) are fixed-shape float lists in row-major (edge, op) order.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import NbsError, quote
from .atomic import atomic_path

RECORDS_DIR = "records"

# Columns every run writes (methods may add more). Timing columns differ between identical runs.
TIMING_COLUMNS = ("epoch_seconds", "wall_seconds")

_RECORD_NAME = re.compile(r"epoch-(\d+)\.parquet")


class DamagedRecordError(NbsError):
    """A record file that cannot be read, or does not hold the epoch its name says."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"record {path} is damaged ({problem})")
        self.path, self.problem = path, problem

    def __reduce__(self):  # picklable, so it crosses from a worker process intact
        return type(self), (self.path, self.problem)


def record_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / RECORDS_DIR / f"epoch-{epoch:04d}.parquet"


def record_epoch(path: Path) -> int | None:
    """The epoch a record file's name says (None for a stray file that only looks like one)."""
    m = _RECORD_NAME.fullmatch(Path(path).name)
    return int(m[1]) if m else None


def record_files(run_dir: Path) -> dict[int, Path]:
    """Epoch -> record file, for every file named like a record."""
    found = {}
    for f in (Path(run_dir) / RECORDS_DIR).glob("epoch-*.parquet"):
        epoch = record_epoch(f)
        if epoch is not None:
            found[epoch] = f
    return dict(sorted(found.items()))


def read_record(path: Path) -> pd.DataFrame:
    """One epoch's record; :class:`DamagedRecordError` (one line) if it is unreadable or not that epoch's."""
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DamagedRecordError(path, _unreadable(err)) from None
    epoch = record_epoch(path)
    if len(df) != 1 or "epoch" not in df:
        raise DamagedRecordError(path, f"{len(df)} rows, {'an' if 'epoch' in df else 'no'} epoch column; "
                                       f"a record has one row")
    if epoch is not None and df["epoch"].iloc[0] != epoch:
        raise DamagedRecordError(path, f"holds epoch {df['epoch'].iloc[0]}, not {epoch}")
    return df


def _unreadable(err: Exception) -> str:
    """A short reason: pyarrow's messages repeat the path and run long."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if "magic bytes" in text:
        return "not a Parquet file: truncated or overwritten"
    return "unreadable: " + text.rsplit("': ", 1)[-1]


# The kind of value of the columns the engine writes (a method's own columns are free). A record that
# breaks one was not written by nbs (edited, or written by another tool), and every analysis that trusts
# the kinds (sorting seeds, reshaping α, timing) would fail on it, or on the runs read beside it.
_KINDS = {
    "integer": ("seed", "epoch", "epochs", "param_free_count", "bench_index", "pack_size", "queries",
                "distinct_queries", "best_query"),
    "text": ("run", "method", "dataset", "preset", "genotype", "canonical_key", "exec_path"),
    "number": ("train_loss", "train_acc", "valid_loss", "valid_acc", "gc_mean", "gc_cos_mean", "hessian_max",
               "hessian_min", "signal", "budget_spent", "budget_total"),
    "duration": TIMING_COLUMNS,
    "array": ("op_weights", "op_grad", "gc_inner", "gc_cos", "hessian_spectrum"),
    "flag": ("diverged", "track_running_stats"),
}
_KIND_OF = {column: kind for kind, columns in _KINDS.items() for column in columns}
_KIND_TEXT = {"integer": "a whole number", "text": "a text", "number": "a number", "array": "a list of numbers",
              "duration": "seconds (finite, at least 0)", "flag": "true or false"}


def _kind_of(column: str) -> str | None:
    if column in _KIND_OF:
        return _KIND_OF[column]
    return "number" if column.startswith(("bench_", "lr_")) else None


def _fits(kind: str, value: Any) -> bool:
    """Whether one value is of ``kind``. A missing value (None, NaN) fits every kind, and a whole float
    fits ``integer``: a column that a run's older records lack reads as NaN, and its numbers as floats."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if value is None or (number and math.isnan(value)) or value is pd.NA:
        return True
    if kind == "integer":
        return number and math.isfinite(value) and float(value).is_integer()
    if kind == "number":
        return number
    if kind == "duration":
        return number and math.isfinite(value) and value >= 0
    if kind == "text":
        return isinstance(value, str)
    if kind == "flag":
        return isinstance(value, (bool, np.bool_))
    return isinstance(value, (np.ndarray, list)) and np.asarray(value).dtype.kind in "fiu"   # array


def _fits_by_dtype(kind: str, column: pd.Series) -> bool:
    """The common case at once: a column whose dtype already says every value fits."""
    dtype = column.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "integer":
        return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "number":
        return numeric
    if kind == "duration":
        return numeric and not bool((np.isinf(column) | (column < 0)).any())
    if kind == "text":
        return isinstance(dtype, pd.StringDtype)
    if kind == "flag":
        return pd.api.types.is_bool_dtype(dtype)
    return False


def record_kind_problem(df: pd.DataFrame) -> tuple[int, str] | None:
    """(row position, what is wrong) for the first value of an engine column that is not of the kind the
    engine writes (:data:`_KINDS`: ``seed`` a whole number, ``op_weights`` a list of numbers, the timings
    finite seconds, ...); None if every value fits. Columns a method adds are not checked."""
    for column in df.columns:
        kind = _kind_of(str(column))
        if kind is None or _fits_by_dtype(kind, df[column]):
            continue
        for position, value in enumerate(df[column].to_numpy(dtype=object)):
            if not _fits(kind, value):
                shown = quote(value.tolist() if isinstance(value, np.ndarray) else value, limit=40)
                return position, (f"{column} {shown} (a {type(value).__name__}) where nbs writes "
                                  f"{_KIND_TEXT[kind]}")
    return None


def damaged_records(run_dir: Path, upto: int) -> list[tuple[Path, str]]:
    """(file, problem) for each record of epochs 1..``upto`` that is missing or damaged."""
    files = record_files(run_dir)
    found = []
    for epoch in range(1, upto + 1):
        path = files.get(epoch, record_path(run_dir, epoch))
        if epoch not in files:
            found.append((path, "missing"))
            continue
        try:
            read_record(path)
        except DamagedRecordError as err:
            found.append((path, err.problem))
    return found


def checkpoint_ends(queries: int, checkpoints: int) -> list[int]:
    """A table search's query counts after which records are written: ceil(k·N/K) for k = 1..K, without
    repeats when N < K (here, beside the records, so that ``nbs status`` can count them without torch)."""
    return sorted({math.ceil(k * queries / checkpoints) for k in range(1, checkpoints + 1)})


def planned_table_records(options: dict[str, Any]) -> int | None:
    """How many records a table search with these saved method options writes, where its budget says so in
    advance (a query budget: min(max_queries, checkpoints)); None for a time budget, whose query count is
    known only at its end."""
    budget, queries, checkpoints = options.get("budget"), options.get("max_queries"), options.get("checkpoints")
    if budget != "queries" or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                      for v in (queries, checkpoints)):
        return None
    return len(checkpoint_ends(queries, checkpoints))


def _to_cell(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).ravel().tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_record(run_dir: Path, epoch: int, record: dict[str, Any]) -> Path:
    row = {k: [_to_cell(v)] for k, v in record.items()}
    table = pa.Table.from_pydict(row)
    path = record_path(run_dir, epoch)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_records(run_dir: Path) -> pd.DataFrame:
    """All epoch records of one run, sorted by epoch (empty frame if none yet)."""
    files = list(record_files(run_dir).values())
    if not files:
        return pd.DataFrame()
    frames = [read_record(f) for f in files]
    return pd.concat(frames, ignore_index=True).sort_values("epoch", kind="stable").reset_index(drop=True)


def drop_records_after(run_dir: Path, epoch: int) -> None:
    """Remove records of epochs > ``epoch`` (written after the last checkpoint of a killed run);
    resuming recomputes them identically."""
    for e, f in record_files(run_dir).items():
        if e > epoch:
            f.unlink()
