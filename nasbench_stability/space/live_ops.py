"""Which computed ops of a cell reach its output.

A single-path or partly projected cell can leave a node dead (every op out of it removed or ``none``): the
convs into that node still run, but their weights get no gradient. Gradient correlation and xautodl's
zero-gradient bookkeeping need to know which ops are live.
"""

from __future__ import annotations

import numpy as np

from .ops import EDGES, NUM_EDGES, NUM_NODES, OP_INDEX


def reaching_output(active) -> np.ndarray:
    """(edges, ops) bool: the computed ops (``active``, an (E, O) bool mask) other than ``none`` whose
    output reaches the cell's output node, walking back from it over edges with a computed non-none op."""
    computed = np.array(active, dtype=bool).reshape(NUM_EDGES, -1)
    computed[:, OP_INDEX["none"]] = False
    live = [False] * (NUM_NODES - 1) + [True]
    for node in range(NUM_NODES - 2, -1, -1):
        live[node] = any(computed[e].any() and live[t] for e, (s, t) in enumerate(EDGES) if s == node)
    return computed & np.array([[live[t]] for _, t in EDGES])


def live_pairs(active) -> set[tuple[int, int]]:
    """:func:`reaching_output` as a set of (edge, op) pairs."""
    return {(int(e), int(o)) for e, o in zip(*np.nonzero(reaching_output(active)))}
