"""Uniform single-path cells, and the pick of the best of N candidate cells by their accuracy with the
shared weights on validation batches (xautodl ``RANDOM-NAS.py`` ``search_find_best``, ``SETN.py``
``get_best_arch``, ``ENAS.py`` ``get_best_arch``: one valid batch per candidate, top-1, first argmax)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ...space.genotype import Genotype
from ...space.ops import NUM_EDGES, NUM_OPS, OPS
from ..base import Batch


def uniform_cell(generator: torch.Generator) -> Genotype:
    """Each edge's op drawn uniformly from NB201's five (xautodl ``random_genotype``)."""
    picks = torch.randint(0, NUM_OPS, (NUM_EDGES,), generator=generator)
    return Genotype(tuple(OPS[int(k)] for k in picks))


@dataclass(frozen=True)
class CandidatePick:
    """The candidates scored at the end of an epoch, their accuracies and the one picked."""

    cells: tuple[Genotype, ...]
    valid_acc: tuple[float, ...]

    @property
    def index(self) -> int:
        """First argmax, as ``np.argmax`` in the reference."""
        return int(np.argmax(self.valid_acc))

    @property
    def best(self) -> Genotype:
        return self.cells[self.index]

    def to_record(self) -> dict[str, Any]:
        """Record columns: every candidate and its valid accuracy, and the pick."""
        return {"candidate_genotypes": [c.to_str() for c in self.cells],
                "candidate_valid_acc": np.asarray(self.valid_acc, dtype=np.float64),
                "picked_index": self.index, "picked_valid_acc": float(self.valid_acc[self.index]),
                "candidates_distinct": len(set(self.cells))}


def pick_best(cells: Iterable[Genotype], batches: Iterator[Batch],
              logits_of: Callable[[torch.Tensor, Genotype], torch.Tensor]) -> CandidatePick:
    """Score each cell on the next batch of ``batches`` (top-1 %, with ``logits_of(x, cell)``: the shared
    weights' output of that discrete cell, without gradients; the caller sets eval mode, as the
    reference's ``network.eval()``) and keep all scores. Stops early if the batches run out."""
    scored, accs = [], []
    for cell, (x, y) in zip(cells, batches):
        with torch.no_grad():
            logits = logits_of(x, cell)
        accs.append(100.0 * float((logits.argmax(-1) == y).float().mean()))
        scored.append(cell)
    if not scored:
        raise ValueError("no validation batch to score the candidate cells on")
    return CandidatePick(tuple(scored), tuple(accs))
