"""Regularized (aging) evolution, REA (Real et al., AAAI 2019, Algorithm 1), on the table.

As xautodl's R_EA.py: a population of random cells; each cycle samples ``sample_size`` members with
replacement, the best of the sample by the search signal is the parent, its child changes one edge's
op to a different op, the child joins and the *oldest* member dies (not the worst: that is what
"aging" regularizes). The engine keeps the best cell ever queried (xautodl: the best of the history).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ...errors import ConfigError
from ...ranges import Range
from ...space.ops import NUM_OPS
from ..registry import register
from ..options import option
from .base import (BUDGET_DEPARTURE, SIGNAL_DEPARTURE, XAUTODL_REA, XAUTODL_REA_SH, Cell, Oracle, TableSearch,
                   TableSearchOptions)

_PAPER = ("Real, Aggarwal, Huang, Le. Regularized Evolution for Image Classifier Architecture Search. AAAI 2019; "
          "on NB201 as in Dong & Yang, ICLR 2020 §5 (xautodl exps/NAS-Bench-201-algos/R_EA.py)")

#: how the mutated edge is picked: by-node = a target node uniformly, then one of its inputs uniformly
#: (xautodl: edge 0→1 has chance 1/3, each edge into node 3 has 1/9); uniform = each of the six edges 1/6
EDGE_CHOICES = ("by-node", "uniform")
# target node of each edge in arch-string order (0→1 | 0→2, 1→2 | 0→3, 1→3, 2→3)
_EDGES_BY_NODE = ((0,), (1, 2), (3, 4, 5))
POPULATION = Range(2, 100_000)
SAMPLE = Range(1, 100_000)


@dataclass(frozen=True)
class ReaOptions(TableSearchOptions):
    population: int = option(10, XAUTODL_REA_SH, "population size (--ea_population 10)", bounds=POPULATION)
    sample_size: int = option(3, XAUTODL_REA_SH, "tournament sample, drawn with replacement "
                              "(R-EA.sh's 2nd argument; docs/NAS-Bench-201.md runs `R-EA.sh cifar10 3 -1`)",
                              bounds=SAMPLE)
    mutation_edge: str = option("by-node", XAUTODL_REA, "how mutate_arch_func picks the edge whose op changes: "
                                "a node, then one of its inputs (by-node), or each edge alike (uniform)",
                                EDGE_CHOICES)


@register("rea", summary="regularized (aging) evolution on the benchmark table: tournament 3 of 10, one-edge "
                         "mutations, the oldest dies",
          paper=_PAPER, options=ReaOptions, departures=(SIGNAL_DEPARTURE, BUDGET_DEPARTURE))
class RegularizedEvolution(TableSearch):
    def __init__(self, options: ReaOptions, seed: int) -> None:
        super().__init__(options, seed)
        if options.sample_size > options.population:
            # with replacement it would still run, but a tournament larger than the population is a typo
            raise ConfigError(f"rea: sample_size={options.sample_size} is larger than population="
                              f"{options.population}")
        #: (cell, signal) of the living members, oldest first
        self.population: deque[tuple[Cell, float]] = deque()

    def search(self, oracle: Oracle) -> None:
        while len(self.population) < self.options.population:
            cell = self.random_cell()
            self.population.append((cell, oracle.query(cell)))
        while True:
            self.evolve(oracle)

    def evolve(self, oracle: Oracle) -> None:
        """One cycle: a tournament picks the parent, its mutant is queried and joins, the oldest dies."""
        child = self.mutate(self.select_parent())
        signal = oracle.query(child)
        self.population.append((child, signal))
        self.population.popleft()   # aging: the oldest dies, whatever its accuracy

    def select_parent(self) -> Cell:
        """The best of ``sample_size`` members drawn uniformly with replacement (first drawn wins a tie)."""
        picks = self.rng.integers(0, len(self.population), size=self.options.sample_size)
        sample = [self.population[int(i)] for i in picks]
        return max(sample, key=lambda member: member[1])[0]

    def mutate(self, cell: Cell) -> Cell:
        """``cell`` with one edge's op replaced by a different op, drawn uniformly among the other four."""
        if self.options.mutation_edge == "by-node":
            edges = _EDGES_BY_NODE[int(self.rng.integers(0, len(_EDGES_BY_NODE)))]
            edge = edges[int(self.rng.integers(0, len(edges)))]
        else:
            edge = int(self.rng.integers(0, len(cell)))
        others = [op for op in range(NUM_OPS) if op != cell[edge]]
        child = list(cell)
        child[edge] = others[int(self.rng.integers(0, len(others)))]
        return tuple(child)


