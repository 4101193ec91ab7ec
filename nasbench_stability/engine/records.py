"""Per-epoch records: one Parquet file per epoch under ``<run>/records/``.

A directory of Parquet files is appendable without rewriting (each epoch adds a file, written
atomically) and pandas reads it in one call: ``pd.read_parquet(run_dir / "records")``. Nested
values (α, gradient correlation) are fixed-shape float lists in row-major (edge, op) order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import NbsError
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
