"""Random search (RS) on the table: uniformly random cells, the best by the search signal wins.

As xautodl's RANDOM.py: each query is an independent uniform draw (repeats are possible and cost
budget, as a repeated training would); the engine keeps the best-so-far cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import register
from .base import SIGNAL_DEPARTURE, Oracle, TableSearch, TableSearchOptions

_PAPER = ("Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012; on NB201 as in "
          "Dong & Yang, NAS-Bench-201, ICLR 2020 §5 (xautodl exps/NAS-Bench-201-algos/RANDOM.py)")


@dataclass(frozen=True)
class RandomSearchOptions(TableSearchOptions):
    pass


@register("rs", summary="random search on the benchmark table: uniform cells, keep the best by hp=12 valid acc",
          paper=_PAPER, options=RandomSearchOptions,
          departures=(SIGNAL_DEPARTURE,))
class RandomSearch(TableSearch):
    def search(self, oracle: Oracle) -> None:
        while True:
            oracle.query(self.random_cell())
