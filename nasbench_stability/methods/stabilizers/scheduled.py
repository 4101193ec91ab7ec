"""A DARTS-family method with one coefficient that changes once per epoch (DARTS-' β, β-DARTS' λ).

The coefficient is a persistent buffer, not a host float: the step reads it on the device (so a CUDA
graph captured in an epoch replays with that epoch's value), packed seeds carry it along their seed
axis like every per-seed state (:mod:`..packing` stacks persistent buffers and copies them back to the
solo objects that write the records), and a checkpoint holds the value the last record shows.
"""

from __future__ import annotations

from typing import Any

import torch

from ..base import SearchContext
from ..gradient.darts_family import DartsFamily, DartsOptions


def linear_in_epochs(start: float, end: float, epoch: int, epochs: int) -> float:
    """``start + (end − start)·epoch/epochs`` (0-based ``epoch``): ``start`` in the first epoch, one
    ``epochs``-th of the way closer to ``end`` in each later one (``end`` itself would be epoch ``epochs``)."""
    return start + (end - start) * epoch / max(epochs, 1)


class ScheduledCoefficient(DartsFamily):
    """Subclasses define :meth:`coefficient_at` and use ``self.coefficient`` in their step."""

    #: the record column of the coefficient (the value the epoch's steps used)
    coefficient_column: str = "coefficient"

    def __init__(self, options: DartsOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self.register_buffer("coefficient", torch.tensor(self.coefficient_at(0), device=ctx.device))

    def coefficient_at(self, epoch: int) -> float:
        raise NotImplementedError

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.coefficient.fill_(self.coefficient_at(epoch))   # fill_: packed, one value per seed

    def extra_records(self) -> dict[str, Any]:
        return {**super().extra_records(), self.coefficient_column: float(self.coefficient.reshape(-1)[0])}
