"""Perturbation-based choice of one edge's op (DARTS-PT: Wang et al., "Rethinking Architecture Selection in
Differentiable NAS", ICLR 2021, §4): remove each candidate op of the edge in turn, measure the supernet's
valid accuracy without it, and keep the op whose removal lowers the accuracy the most.

"Removal" is the authors' ``proj_mask``: the op's weight on that edge set to 0, nothing renormalised, every
other edge as it is (decided edges one-hot, the rest their relaxed weights). Here the removed op is also left
out of the ``active`` mask, so it is not computed at all (a weight of exactly 0 contributes nothing either way).

Works on any supernet whose forward takes an (edge × op) weight matrix and a host-side ``active`` mask of the
ops worth computing (:meth:`Supernet.forward`, ``DartsFamily._forward``); the caller chooses train or eval mode
(BN statistics) before scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...space.ops import NUM_EDGES, NUM_OPS
from ..base import Batch

#: forward(x, weights[E, O], active) -> logits; active: host-side (E, O) bool mask or None (all ops)
Forward = Callable[[torch.Tensor, torch.Tensor, "np.ndarray | None"], torch.Tensor]
CRITERIA = ("acc", "loss")
UNDECIDED = -1


@dataclass(frozen=True)
class EdgeScores:
    """One decision: the supernet's valid accuracy (%) and loss with nothing removed and with each op removed
    (NaN for ops that were no candidates), and the op kept."""

    edge: int
    base_acc: float
    base_loss: float
    removed_acc: tuple[float, ...]
    removed_loss: tuple[float, ...]
    op: int


def decided_arrays(decided: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(one-hot rows, which rows are decided, active mask) of the decided ops (``UNDECIDED`` elsewhere).
    The active mask keeps only the decided op on a decided edge; None while no edge is decided."""
    one_hot = np.zeros((NUM_EDGES, NUM_OPS), dtype=bool)
    rows = np.array([op != UNDECIDED for op in decided])
    for e, op in enumerate(decided):
        if op != UNDECIDED:
            one_hot[e, op] = True
    if not rows.any():
        return one_hot, rows, None
    active = np.ones((NUM_EDGES, NUM_OPS), dtype=bool)
    active[rows] = one_hot[rows]
    return one_hot, rows, active


def without_op(weights: torch.Tensor, active: np.ndarray | None, edge: int,
               op: int) -> tuple[torch.Tensor, np.ndarray]:
    """``weights`` with ``weights[edge, op]`` = 0 and ``active`` with (edge, op) off; nothing else changes."""
    w = weights.clone()
    w[edge, op] = 0.0
    mask = np.ones((NUM_EDGES, NUM_OPS), dtype=bool) if active is None else active.copy()
    mask[edge, op] = False
    return w, mask


def valid_score(forward: Forward, weights: torch.Tensor, active: np.ndarray | None,
                batches: Sequence[Batch]) -> tuple[float, float]:
    """Top-1 accuracy (%) and mean cross-entropy over ``batches`` (one host sync at the end)."""
    correct = loss = 0
    n = 0
    with torch.no_grad():
        for x, y in batches:
            logits = forward(x, weights, active)
            loss = loss + F.cross_entropy(logits.float(), y, reduction="sum")
            correct = correct + (logits.argmax(-1) == y).sum()
            n += y.shape[0]
    if n == 0:
        raise ValueError("no validation batch to score the projection on")
    return 100.0 * float(correct) / n, float(loss) / n


def pick(removed_acc: Sequence[float], removed_loss: Sequence[float], candidates: Sequence[int],
         criterion: str) -> int:
    """The op whose removal hurts most: lowest accuracy (``acc``) or highest loss (``loss``); ties go to the
    first candidate, as the authors' strict comparison does."""
    if criterion == "acc":
        return min(candidates, key=lambda o: (removed_acc[o], candidates.index(o)))
    return min(candidates, key=lambda o: (-removed_loss[o], candidates.index(o)))


def score_edge(forward: Forward, weights: torch.Tensor, active: np.ndarray | None, edge: int,
               candidates: Sequence[int], batches: Sequence[Batch], criterion: str = "acc") -> EdgeScores:
    """Score removing each of ``candidates`` from ``edge`` on the same ``batches``, and pick the op to keep."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    weights = weights.detach()
    base_acc, base_loss = valid_score(forward, weights, active, batches)
    acc, loss = [math.nan] * NUM_OPS, [math.nan] * NUM_OPS
    for op in candidates:
        acc[op], loss[op] = valid_score(forward, *without_op(weights, active, edge, op), batches)
    return EdgeScores(edge, base_acc, base_loss, tuple(acc), tuple(loss), pick(acc, loss, list(candidates), criterion))


def project(relaxed: torch.Tensor, decided: Sequence[int]) -> tuple[torch.Tensor, np.ndarray | None]:
    """The supernet's weights once ``decided`` edges are projected: their rows one-hot, the others
    ``relaxed``; and the active mask that leaves the ops removed from decided edges uncomputed."""
    one_hot, rows, active = decided_arrays(decided)
    if active is None:
        return relaxed, None
    rows_t = torch.from_numpy(rows).to(relaxed.device)[:, None]
    return torch.where(rows_t, torch.from_numpy(one_hot).to(relaxed), relaxed), active


def project_cell(forward: Forward, relaxed: torch.Tensor, order: Sequence[int], candidates: Sequence[int],
                 batches: Sequence[Batch], criterion: str = "acc") -> tuple[list[int], list[EdgeScores]]:
    """Every edge decided in ``order`` on a fixed supernet (no tuning between decisions): the perturbation
    derivation of any supernet with weighted, maskable ops. Returns the op per edge and each decision."""
    decided, scores = [UNDECIDED] * NUM_EDGES, []
    for edge in order:
        weights, active = project(relaxed.detach(), decided)
        scores.append(score_edge(forward, weights, active, edge, candidates, batches, criterion))
        decided[edge] = scores[-1].op
    return decided, scores
