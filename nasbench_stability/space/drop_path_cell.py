"""The mixed NB201 cell with DropPath on its edges (R-DARTS(DP), "Understanding and Robustifying DARTS").

As in the authors' search code (automl/RobustDARTS ``src/search/model_search.py``, ``Cell.forward``
with ``utils.drop_path``), DropPath acts on each edge's whole mixed output Σ_o w[e,o]·o(x): in training
mode, for every sample b, edge e and cell independently, the output is kept with probability 1 − p and
then divided by 1 − p, or zeroed. So the parameter-free ops (skip, pool) are dropped with the convs:
the unit is the edge. Nothing is dropped in eval mode or at p = 0 (then this cell is a MixedCell,
computed the same way).

The masks come from torch's global generator on the input's device: the engine checkpoints its state,
so a resumed run draws the masks an uninterrupted one would.
"""

from __future__ import annotations

import torch

from .mixed_cell import MixedCell
from .ops import NUM_EDGES


class DropPathCell(MixedCell):
    """A :class:`MixedCell` whose edges are dropped per sample with probability ``drop_prob`` (a host
    float the method sets once per epoch)."""

    def __init__(self, channels: int, track_running_stats: bool = False, eps: float = 1e-5) -> None:
        super().__init__(channels, track_running_stats, eps)
        self.drop_prob = 0.0

    def edge_scale(self, x: torch.Tensor) -> torch.Tensor | None:
        p = self.drop_prob
        if not self.training or p <= 0.0:
            return None
        keep = torch.rand(NUM_EDGES, x.shape[0], device=x.device) >= p   # P(keep) = 1 − p
        return keep.to(x.dtype) / (1.0 - p)
