"""GDAS' searchable cell: the drawn op of each edge is computed, the others add their weight.

xautodl's ``NAS201SearchCell.forward_gdas`` sums, on each edge, ``hardwts[o] * op(x)`` for the drawn
op and the bare scalar ``hardwts[o]`` for every other op. Those scalars are exactly 0 in value
(``one_hot − p.detach() + p`` is ``−p + p`` there), so the forward is the drawn cell's, but each
carries the gradient ``Σ ∂L/∂node`` back to its weight, hence to α through the softmax: without
them α would get a gradient from the drawn op's weight only (AutoDL-Projects issue #36).

This cell is :class:`MixedCell` with the supernet's ``active`` mask as the drawn ops, plus those
scalars, summed per target node (the same value, 0, and the same gradients as per edge).
"""

from __future__ import annotations

import functools

import torch

from .mixed_cell import MixedCell
from .ops import EDGES, NUM_NODES


@functools.lru_cache(maxsize=4096)
def _active_mask(active: tuple[tuple[bool, ...], ...], device: torch.device) -> torch.Tensor:
    """The host-side ``active`` mask as a device tensor, made once per mask and device (every cell of
    a forward gets the same mask, and draws repeat as α sharpens)."""
    return torch.tensor(active, dtype=torch.bool).to(device)


class GdasCell(MixedCell):
    """``forward(x, weights, active)``: only the ``active`` ops are computed (GDAS: one per edge); each
    inactive op's weight, which must be exactly 0, is added as a scalar to the edge's target node."""

    def __init__(self, channels: int, track_running_stats: bool = False, eps: float = 1e-5) -> None:
        super().__init__(channels, track_running_stats, eps)
        incidence = torch.zeros(len(EDGES), NUM_NODES)
        for e, (_, target) in enumerate(EDGES):
            incidence[e, target] = 1.0
        self.register_buffer("_edge_to_node", incidence, persistent=False)

    def node_scalars(self, weights: torch.Tensor, active) -> torch.Tensor | None:
        if active is None or not weights.requires_grad:   # nothing skipped, or a constant 0: nothing to add
            return None
        skipped = weights.masked_fill(_active_mask(active, weights.device), 0.0)
        return skipped.sum(-1).to(self._edge_to_node.dtype) @ self._edge_to_node
