"""The benchmark as a table search sees it: a search signal per cell, a cost per query, a budget, a log.

The oracle is the only way a :class:`~..methods.multitrial.base.TableSearch` learns anything about a
cell, and it logs every answer; the records are built from that log alone, so a run never reports a
cell it did not query, and never one queried after the budget ran out.

Search signal: the searched dataset's valid accuracy after ``signal_epochs`` epochs, as xautodl's
``train_and_eval`` (CIFAR-10 searches read the ``cifar10-valid`` network, trained on the 25k train half).
Cost: one query, or the simulated seconds of training the cell (budget=seconds), read from the column
:func:`time_column` names — the official ``train-all-time + valid-per-time`` that xautodl charges. The
tables built from the offline sources have no such column; a table that has one enables the budget.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import numpy as np

from ..bench.columns import accuracy_column
from ..bench.table import Benchmark
from ..errors import ConfigError
from ..methods.multitrial.base import BudgetExhausted, Cell
from ..space.ops import NUM_EDGES, NUM_OPS, OP_INDEX

_CODES = NUM_OPS ** np.arange(NUM_EDGES)   # cell -> base-5 code, edge 0 the lowest digit
_INDEX_CACHE: "weakref.WeakKeyDictionary[Benchmark, np.ndarray]" = weakref.WeakKeyDictionary()


def network_of(dataset: str) -> str:
    """The NB201 network a search on ``dataset`` reads its signal from (xautodl: cifar10 -> cifar10-valid)."""
    return "cifar10-valid" if dataset == "cifar10" else dataset


def signal_column(dataset: str, epochs: int) -> str:
    return accuracy_column(network_of(dataset), "valid", epochs)


def time_column(dataset: str, epochs: int) -> str:
    """The per-cell simulated cost column: seconds to train ``epochs`` epochs and evaluate once."""
    return f"{network_of(dataset)}_train_seconds_{epochs}"


def cell_code(cell: Cell) -> int:
    return int(np.dot(cell, _CODES))


def index_by_code(benchmark: Benchmark) -> np.ndarray:
    """NB201 table index of every cell, by :func:`cell_code` (built once per loaded table)."""
    found = _INDEX_CACHE.get(benchmark)
    if found is None:
        found = np.full(NUM_OPS ** NUM_EDGES, -1, dtype=np.int64)
        for i, arch in enumerate(benchmark.frame["arch"]):
            # arch strings are |op~j|+|op~j|op~j|+...; their ops come in edge order
            ops = [token.split("~")[0] for token in arch.replace("+", "").split("|") if token]
            found[cell_code(tuple(OP_INDEX[op] for op in ops))] = i
        _INDEX_CACHE[benchmark] = found
    return found


@dataclass(frozen=True)
class Query:
    """One answered query: the cell's table index, its signal, the budget spent after it, when it returned."""

    index: int
    signal: float
    spent: float
    seconds: float   # wall-clock since the search started


class TableOracle:
    """Answers :meth:`query` with the cell's search signal while the budget lasts; logs every answer."""

    def __init__(self, benchmark: Benchmark, dataset: str, options) -> None:
        self.signal_name = signal_column(dataset, options.signal_epochs)
        self.signals = _column(benchmark, self.signal_name, "the search signal")
        self.budget_kind = options.budget
        if options.budget == "seconds":
            self.cost_name = time_column(dataset, options.signal_epochs)
            self.costs = _column(benchmark, self.cost_name, "budget=seconds",
                                 hint="this table has no train times (tables built from the offline sources "
                                      "have none); use --set budget=queries")
            if (self.costs < 0).any():
                raise ConfigError(f"column {self.cost_name} has negative times")
            self.budget = float(options.time_budget)
        else:
            self.cost_name, self.costs, self.budget = None, None, float(options.max_queries)
        self.index_of = index_by_code(benchmark)
        self.log: list[Query] = []
        self.spent = 0.0
        self.exhausted = False
        self._start = time.perf_counter()

    def query(self, cell: Cell) -> float:
        if self.exhausted:
            raise BudgetExhausted
        index = int(self.index_of[cell_code(cell)])
        cost = 1.0 if self.costs is None else float(self.costs[index])
        if self.spent + cost > self.budget:
            # xautodl: a query that would overrun the budget ends the search uncounted
            self.exhausted = True
            raise BudgetExhausted
        self.spent += cost
        signal = float(self.signals[index])
        self.log.append(Query(index, signal, self.spent, time.perf_counter() - self._start))
        return signal


def _column(benchmark: Benchmark, name: str, what: str, hint: str = "") -> np.ndarray:
    """Column ``name`` as floats; ConfigError if the table lacks it or it has cells without a value."""
    if name not in benchmark.frame.columns:
        where = f" {benchmark.path}" if benchmark.path else ""
        raise ConfigError(f"{what} reads column {name}, which the benchmark table{where} lacks"
                          + (f"; {hint}" if hint else ""))
    values = benchmark.frame[name].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ConfigError(f"column {name} has cells without a value; {what} needs one for every cell")
    return values
