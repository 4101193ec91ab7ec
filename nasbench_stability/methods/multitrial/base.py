"""Multi-trial searches on the benchmark table: what such a method is, as the engine sees it.

A table search trains no supernet and reads no dataset: it proposes NB201 cells and learns from the
search signal the benchmark returns for each (NB201 §5: the hp=12 valid accuracy). So, unlike
:class:`~..base.SearchMethod`, it has no steps, batches or weights; it has one call,
:meth:`TableSearch.search`, that queries an :class:`Oracle` until the oracle says the budget is spent
(:class:`BudgetExhausted`). The engine owns the oracle (which column is the signal, what a query costs,
the budget), the log of what was queried, and the records: the best-so-far cell is always picked by the
engine from the cells the oracle actually answered, so a method can never report a cell it did not query.

A cell is a tuple of six op indices (:data:`~...space.ops.OPS` order) on the edges in arch-string order
(:data:`~...space.ops.EDGES`): the encoding every one of these methods mutates or samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...ranges import POSITIVE, Range
from ...space.ops import NUM_EDGES, NUM_OPS
from ..options import OURS, reference, option

Cell = tuple[int, ...]
"""Op index per edge, in arch-string edge order."""

BUDGETS = ("queries", "seconds")

# the xautodl (AutoDL-Projects) files the multi-trial defaults are read from
XAUTODL_REA_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/R-EA.sh")
XAUTODL_REA = reference("AutoDL-Projects exps/NAS-Bench-201-algos/R_EA.py")
XAUTODL_RANDOM = reference("AutoDL-Projects exps/NAS-Bench-201-algos/RANDOM.py")
XAUTODL_REINFORCE = reference("AutoDL-Projects exps/NAS-Bench-201-algos/reinforce.py")
XAUTODL_REINFORCE_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/REINFORCE.sh")
XAUTODL_BOHB = reference("AutoDL-Projects exps/NAS-Bench-201-algos/BOHB.py")
XAUTODL_BOHB_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/BOHB.sh")

#: where every table search here departs from xautodl in the same way
SIGNAL_DEPARTURE = ("the search signal is the table's seed-mean accuracy; xautodl reads one training seed's, drawn "
                    "at random per query (get_more_info(..., is_random=True)), which our tables do not hold")
BUDGET_DEPARTURE = ("a query that does not fit in the budget is never made, and what was made is all counted; "
                    "xautodl's REA charges its initial population without checking and REINFORCE keeps the "
                    "query that overran the budget in its trace")

MAX_QUERIES = Range(1, 1_000_000)
CHECKPOINTS = Range(1, 10_000)


class BudgetExhausted(Exception):
    """Raised by :meth:`Oracle.query` when the next query does not fit in the budget: the search ends."""


class Oracle(Protocol):
    """What a table search may ask: the search signal of one cell (each call spends budget)."""

    def query(self, cell: Cell) -> float:
        """The search signal (accuracy, %) of ``cell``; :class:`BudgetExhausted` when the budget is spent."""
        ...


@dataclass(frozen=True)
class TableSearchOptions:
    """Options every table search has: the budget, the search signal and how often the trajectory is recorded."""

    budget: str = option("queries", OURS, "what the budget counts: queries = cells queried (our shared tables "
                         "hold no train times); seconds = simulated train+valid seconds of each queried cell, as "
                         "xautodl, from the table's per-cell time column (see docs)", BUDGETS)
    max_queries: int = option(100, OURS, "the query budget (budget=queries): xautodl's 12,000 s divided by a "
                              "12-epoch training of roughly 100-120 s on its GPUs is about 100 cells; an estimate, "
                              "not read off a table (ours has no times)", bounds=MAX_QUERIES)
    time_budget: float = option(12000.0, XAUTODL_REA_SH, "the simulated-seconds budget (budget=seconds): "
                                "--time_budget 12000 in every xautodl NB201 multi-trial script", bounds=POSITIVE)
    signal_epochs: int = option(12, XAUTODL_REA, "training epochs of the search signal, the dataset's valid "
                                "accuracy (train_and_eval: hp=\"12\"); 200 reads the 200-epoch valid column, "
                                "approximate in tables built offline", (12, 200))
    checkpoints: int = option(20, OURS, "records per run: record k holds the best-so-far cell after the first "
                              "ceil(k·N/checkpoints) of the run's N queries (every 5 queries at the defaults): "
                              "a best-so-far curve stays smooth and 100 seeds stay small", bounds=CHECKPOINTS)


class TableSearch:
    """Base class of the methods that search the benchmark table. Subclasses define :meth:`search`."""

    #: tells the engine (through :attr:`~..registry.MethodInfo.table_search`) to run it without data or a supernet
    table_search = True
    packable = False
    solo_reason = "a table search trains no model, so there is nothing to pack"

    def __init__(self, options: Any, seed: int) -> None:
        self.options = options
        self.seed = seed
        # numpy's PCG64 from the run's seed: the same seed gives the same queries
        self.rng = np.random.default_rng(seed)

    def search(self, oracle: Oracle) -> None:
        """Query ``oracle`` until it raises :class:`BudgetExhausted` (the engine catches it)."""
        raise NotImplementedError

    def random_cell(self) -> Cell:
        """A uniformly random cell: each edge's op drawn independently and uniformly."""
        return tuple(int(v) for v in self.rng.integers(0, NUM_OPS, size=NUM_EDGES))


__all__ = ["BUDGETS", "BUDGET_DEPARTURE", "SIGNAL_DEPARTURE", "BudgetExhausted", "Cell", "Oracle", "TableSearch", "TableSearchOptions"]
