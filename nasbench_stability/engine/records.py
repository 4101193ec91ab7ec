"""Per-epoch records: one Parquet file per epoch under ``<run>/records/``.

A directory of Parquet files is appendable without rewriting (each epoch adds a file, written
atomically) and pandas reads it in one call: ``pd.read_parquet(run_dir / "records")``. Nested
values (α, gradient correlation) are fixed-shape float lists in row-major (edge, op) order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path

RECORDS_DIR = "records"

# Columns every run writes (methods may add more). Timing columns differ between identical runs.
TIMING_COLUMNS = ("epoch_seconds", "wall_seconds")


def record_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / RECORDS_DIR / f"epoch-{epoch:04d}.parquet"


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
    files = sorted((Path(run_dir) / RECORDS_DIR).glob("epoch-*.parquet"))
    if not files:
        return pd.DataFrame()
    frames = [pq.read_table(f).to_pandas() for f in files]
    return pd.concat(frames, ignore_index=True).sort_values("epoch", kind="stable").reset_index(drop=True)


def drop_records_after(run_dir: Path, epoch: int) -> None:
    """Remove records of epochs > ``epoch`` (written after the last checkpoint of a killed run);
    resuming recomputes them identically."""
    for f in (Path(run_dir) / RECORDS_DIR).glob("epoch-*.parquet"):
        if int(f.stem.split("-")[1]) > epoch:
            f.unlink()
