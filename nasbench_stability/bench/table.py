"""The loaded benchmark table: fast ground-truth lookup of NB201 cells.

The search engine looks up the derived cell every epoch, so everything a lookup needs is built
once at load time — an ``arch string -> row`` dict and one float matrix of all metrics — and a
lookup is a dict hit per cell plus one ``numpy.take``. Loading reads only the Parquet file and its
metadata; it never imports the official benchmark packages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ArchStringError, ConfigError, MissingFileError, NbsError, quote
from ..space.genotype import Genotype
from . import locate
from .columns import META_COLUMNS, METRIC_COLUMNS, ROW_COLUMNS, ColumnSpec, specs_from_json
from .sources import NUM_CELLS, one_line

_REBUILD = "rebuild it with `nbs bench build --force`"

Cell = Union[str, Genotype, int, np.integer, Sequence[int]]
"""An arch string, a NASLib tuple (or its text), a Genotype, or an NB201 index (int or digit text)."""

_LOOKUP_ID_COLUMNS = ("arch", "index", "canonical_key")
_INTEGER = re.compile(r"[+-]?\d+")


class Benchmark:
    """NB201 ground truth for all 15,625 cells, with each metric column's provenance."""

    def __init__(self, frame: pd.DataFrame, columns: Sequence[ColumnSpec], path: Path | None = None):
        missing = [c for c in (*ROW_COLUMNS, *(s.name for s in columns)) if c not in frame.columns]
        if missing:
            raise NbsError(f"benchmark table lacks column(s) {', '.join(missing)}; {_REBUILD}")
        frame = frame.reset_index(drop=True)
        if len(frame) != NUM_CELLS:
            # a partial table would fail only later, on the first cell it lacks, as "not in the table"
            where = f" {path}" if path else ""
            raise NbsError(f"benchmark table{where} has {len(frame):,} rows, expected {NUM_CELLS:,} "
                           f"(every NB201 cell); {_REBUILD}")
        if not np.array_equal(frame["index"].to_numpy(), np.arange(len(frame))):
            raise NbsError(f"benchmark table rows are not in NB201 index order; {_REBUILD}")
        self.path = path
        self.columns: list[ColumnSpec] = list(columns)
        self._frame = frame
        self._spec = {s.name: s for s in self.columns}
        self._metric_names = [s.name for s in self.columns]
        self._metric_pos = {name: j for j, name in enumerate(self._metric_names)}
        self._values = frame[self._metric_names].to_numpy(dtype=np.float64)
        self._arch = frame["arch"].to_numpy(dtype=object)
        self._keys = frame["canonical_key"].to_numpy(dtype=object)
        self._index_of = {arch: i for i, arch in enumerate(self._arch)}
        self._groups: dict[str, np.ndarray] | None = None

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Benchmark":
        """Open the table at ``path``, else ``$NBS_BENCHMARK``, else the default under ``NBS_HOME``."""
        target = locate.table_path(path)
        if not target.is_file():
            raise MissingFileError(f"no benchmark table at {target}; run `nbs bench build` to create it")
        try:
            table = pq.read_table(target)
        except (pa.ArrowException, OSError) as err:
            raise NbsError(f"cannot read benchmark table {target} ({one_line(err)}); {_REBUILD}") from err
        raw = (table.schema.metadata or {}).get(META_COLUMNS)
        if raw is None:
            raise NbsError(f"{target} is not an nbs benchmark table (no column metadata); {_REBUILD}")
        return cls(table.to_pandas(), specs_from_json(raw), path=target)

    # ---- columns -------------------------------------------------------------------------------
    @property
    def accuracy_columns(self) -> list[ColumnSpec]:
        return [s for s in self.columns if s.is_accuracy]

    def column(self, name: str) -> ColumnSpec:
        """The spec of metric column ``name``; ConfigError naming the alternatives if absent."""
        spec = self._spec.get(name)
        if spec is not None:
            return spec
        if name in METRIC_COLUMNS:
            raise ConfigError(
                f"column {name} is not in this table; build from the official NB201/NATS-Bench files to get it"
            )
        raise ConfigError(f"unknown column {quote(name)}; this table has {', '.join(self._metric_names)}")

    @property
    def frame(self) -> pd.DataFrame:
        """The whole table (identity columns, then metrics), one row per cell; do not modify."""
        return self._frame

    def __len__(self) -> int:
        return len(self._arch)

    def __repr__(self) -> str:
        exact = sum(s.exact for s in self.accuracy_columns)
        n_acc = len(self.accuracy_columns)
        return f"Benchmark({len(self)} cells, {n_acc} accuracy columns ({exact} exact), path={self.path})"

    # ---- cells ---------------------------------------------------------------------------------
    def index_of(self, cell: Cell) -> int:
        """The NB201 index of a cell given in any accepted form."""
        return self._resolve(cell)

    def genotype_at(self, index: int) -> Genotype:
        return Genotype.from_str(self._arch[self._check_index(index)])

    def lookup(self, cells: Iterable[Cell] | Cell) -> pd.DataFrame:
        """One row per input cell, in input order: ``arch``, ``index``, ``canonical_key``, every metric.

        ``cells`` is a collection of cells in any mix of forms; an integer numpy array takes a
        vectorised path. A lone string, Genotype or int is treated as one cell.
        """
        return self._rows(self._positions(cells))

    def lookup_one(self, cell: Cell) -> dict[str, Any]:
        """The same fields as :meth:`lookup` for one cell, as a plain dict (floats, NaN if unknown)."""
        i = self._resolve(cell)
        out: dict[str, Any] = {"arch": self._arch[i], "index": i, "canonical_key": self._keys[i]}
        out.update(zip(self._metric_names, self._values[i].tolist()))
        return out

    def optimum(self, column: str) -> tuple[float, str]:
        """The best value of ``column`` over all cells and the arch reaching it (lowest index on ties)."""
        values = self._values[:, self._metric_pos[self.column(column).name]]
        if not np.isfinite(values).any():
            raise NbsError(f"column {column} has no values")
        i = int(np.nanargmax(values))
        return float(values[i]), str(self._arch[i])

    def by_canonical_key(self, key: str) -> pd.DataFrame:
        """All cells in one isomorphism class (as :meth:`lookup` rows, index order); empty if none."""
        if self._groups is None:
            groups: dict[str, list[int]] = {}
            for i, k in enumerate(self._keys):
                groups.setdefault(k, []).append(i)
            self._groups = {k: np.array(v, dtype=np.int64) for k, v in groups.items()}
        return self._rows(self._groups.get(key, np.empty(0, dtype=np.int64)))

    # ---- internals -----------------------------------------------------------------------------
    def _rows(self, idx: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame(self._values.take(idx, axis=0), columns=self._metric_names)
        out.insert(0, "canonical_key", self._keys.take(idx))
        out.insert(0, "index", idx)
        out.insert(0, "arch", self._arch.take(idx))
        return out

    def _positions(self, cells: Iterable[Cell] | Cell) -> np.ndarray:
        if isinstance(cells, (str, Genotype, int, np.integer)):
            cells = [cells]
        if isinstance(cells, (np.ndarray, pd.Series, pd.Index)) and np.asarray(cells).dtype.kind in "iu":
            idx = np.asarray(cells, dtype=np.int64).ravel()
            bad = idx[(idx < 0) | (idx >= len(self))]
            if bad.size:
                self._check_index(int(bad[0]))
            return idx
        return np.fromiter((self._resolve(c) for c in cells), dtype=np.int64)

    def _resolve(self, cell: Cell) -> int:
        if isinstance(cell, str):
            hit = self._index_of.get(cell)
            if hit is not None:
                return hit
            text = cell.strip()
            if _INTEGER.fullmatch(text):
                if len(text.lstrip("+-")) > 9:  # int() refuses 4,300+ digits, and no index has 10
                    raise ArchStringError(f"NB201 index {quote(text)} is out of range 0..{len(self) - 1}")
                return self._check_index(int(text))
            return self._index_of_genotype(Genotype.parse(text))
        if isinstance(cell, Genotype):
            return self._index_of_genotype(cell)
        if isinstance(cell, (bool, np.bool_)):
            raise ArchStringError(f"a cell cannot be a bool ({cell})")
        if isinstance(cell, (int, np.integer)):
            return self._check_index(int(cell))
        if isinstance(cell, (tuple, list, np.ndarray)):
            try:
                return self._index_of_genotype(Genotype.from_naslib(cell))
            except (TypeError, ValueError) as err:
                if isinstance(err, ArchStringError):
                    raise
                raise ArchStringError(f"malformed NASLib tuple {quote(cell)}") from err
        raise ArchStringError(
            f"cannot read {type(cell).__name__} {quote(cell)} as a NB201 cell (arch string, Genotype, index or NASLib tuple)"
        )

    def _index_of_genotype(self, genotype: Genotype) -> int:
        arch = genotype.to_str()
        hit = self._index_of.get(arch)
        if hit is None:
            raise ArchStringError(f"cell {arch} is not in the benchmark table")
        return hit

    def _check_index(self, index: int) -> int:
        if isinstance(index, (bool, np.bool_)) or not 0 <= index < len(self):
            raise ArchStringError(f"NB201 index {index} is out of range 0..{len(self) - 1}")
        return int(index)
