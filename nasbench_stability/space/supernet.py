"""The NB201 search network: stem, 3 stages of N searchable cells, 2 residual reductions, head.

Methods differ in how they produce the per-edge op weights, not in copies of the network: the
supernet's ``forward(x, weights)`` takes either one ``(edges, ops)`` matrix shared by all cells or a
``(cells, edges, ops)`` tensor with one matrix per cell (DNAS). The searchable cell class is a
constructor argument, so a method with its own edge semantics (MergeNAS, factorized) supplies a cell
and reuses everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from .blocks import Head, ResidualReduction, Stem


# channels -> a searchable cell: a module with forward(x, weights[E, O], active=None) and, for gradient
# correlation, conv_weights(edge, op) -> list of that conv op's weights
CellFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class NetworkShape:
    """Size of the search network. Defaults are the NB201 reference (C=16, N=5)."""

    channels: int = 16
    cells_per_stage: int = 5
    num_classes: int = 10

    @property
    def num_search_cells(self) -> int:
        return 3 * self.cells_per_stage


class Supernet(nn.Module):
    def __init__(self, shape: NetworkShape, cell_factory: CellFactory) -> None:
        super().__init__()
        self.shape = shape
        c = shape.channels
        self.stem = Stem(c)
        layers: list[nn.Module] = []
        search_index: list[int] = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                layers.append(ResidualReduction(width // 2, width))
            for _ in range(shape.cells_per_stage):
                search_index.append(len(layers))
                layers.append(cell_factory(width))
        self.layers = nn.ModuleList(layers)
        self._search_positions = tuple(search_index)
        self.head = Head(4 * c, shape.num_classes)

    @property
    def search_cells(self) -> list[nn.Module]:
        return [self.layers[i] for i in self._search_positions]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        """``weights``: (E, O) shared by all cells, or (L, E, O) with one matrix per searchable cell.

        ``active``: optional host-side (E, O) boolean mask of ops worth computing; ops outside it
        must have weight exactly 0 (single-path methods use this to skip work).
        """
        per_cell = weights is not None and weights.dim() == 3
        if per_cell and weights.shape[0] != len(self._search_positions):
            raise ValueError(f"expected {len(self._search_positions)} per-cell weight matrices, got {weights.shape[0]}")
        x = self.stem(x)
        k = 0
        for i, layer in enumerate(self.layers):
            if k < len(self._search_positions) and i == self._search_positions[k]:
                x = layer(x, weights[k] if per_cell else weights, active)
                k += 1
            else:
                x = layer(x)
        return self.head(x)

    def named_search_cells(self) -> Iterator[tuple[int, nn.Module]]:
        for k, i in enumerate(self._search_positions):
            yield k, self.layers[i]
