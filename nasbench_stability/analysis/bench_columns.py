"""Which benchmark column each cell of a published-style NB201 results table reads.

NB201's tables (Dong & Yang, ICLR 2020, Table 5) show, per dataset, a *valid* and a *test*
accuracy after 200 epochs. For CIFAR-10 those come from two different training setups: "valid" is
the ``cifar10-valid`` network (trained on the 25k train half, evaluated on the other half) and
"test" the ``cifar10`` network (trained on all 50k, evaluated on the test set). The mapping lives
here once, so the table, the collapse curves and the report agree on it, and every column carries
its :class:`~nasbench_stability.bench.columns.ColumnSpec` (exact or approximate, and the source).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bench.columns import ColumnSpec, accuracy_column

RESULT_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")
RESULT_SPLITS: tuple[str, ...] = ("valid", "test")
DATASET_LABELS: dict[str, str] = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "ImageNet16-120": "ImageNet16-120"}
RECORD_PREFIX = "bench_"
APPROX_MARK = "†"

#: The default accuracy of "the derived cell" in collapse statistics and curves.
DEFAULT_TEST_COLUMN = "cifar10_test_200"


def benchmark_column(dataset: str, split: str, epochs: int = 200) -> str:
    """The benchmark column behind (dataset, split) of a results table (see the module doc)."""
    source = "cifar10-valid" if (dataset, split) == ("cifar10", "valid") else dataset
    return accuracy_column(source, split, epochs)


def record_column(column: str) -> str:
    """The per-epoch record column holding benchmark column ``column`` for the derived cell."""
    return column if column.startswith(RECORD_PREFIX) else RECORD_PREFIX + column


@dataclass(frozen=True)
class ResultColumn:
    """One (dataset, split) column of a results table, and how far to trust its numbers."""

    dataset: str
    split: str
    column: str                    # benchmark column name, e.g. cifar10-valid_valid_200
    spec: ColumnSpec | None        # None when no benchmark table was given (exactness unknown)

    @property
    def record(self) -> str:
        return record_column(self.column)

    @property
    def exact(self) -> bool | None:
        return None if self.spec is None else self.spec.exact

    @property
    def label(self) -> str:
        """Header text, with the approximate mark where the values are not the official ones."""
        mark = APPROX_MARK if self.exact is False else ""
        return f"{DATASET_LABELS.get(self.dataset, self.dataset)} {self.split}{mark}"


def result_columns(specs: list[ColumnSpec] | None = None, epochs: int = 200) -> list[ResultColumn]:
    """The table's columns in NB201 order; those the benchmark table lacks are left out when
    ``specs`` (``Benchmark.columns``) is given."""
    by_name = {s.name: s for s in specs} if specs is not None else None
    out = []
    for dataset in RESULT_DATASETS:
        for split in RESULT_SPLITS:
            name = benchmark_column(dataset, split, epochs)
            if by_name is None:
                out.append(ResultColumn(dataset, split, name, None))
            elif name in by_name:
                out.append(ResultColumn(dataset, split, name, by_name[name]))
    return out

