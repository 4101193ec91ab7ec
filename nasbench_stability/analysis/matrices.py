"""Array-valued record columns (α weights, gradients) as numpy stacks and tidy long frames.

Records store every (edge × op) quantity as a flat row-major list so that Parquet stays simple;
this module is the one place that knows how to fold them back, for every shape a method records
(``(6, 5)`` op weights, DNAS ``(L, 6, 5)``, factorized ``(6, k)`` factors).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import NbsError, quote
from ..space.ops import EDGES, NUM_EDGES, NUM_OPS, OPS

EDGE_LABELS: tuple[str, ...] = tuple(f"{s}→{t}" for s, t in EDGES)

# Method-specific matrices: record column → labels of their last axis (when known).
FACTOR_COLUMNS: dict[str, str] = {
    "act_weights": "activation (β)",
    "kernel_weights": "kernel size (β)",
    "o1_weights": "regular op (α)",
    "candidate_weights": "(activation, op) pair",
}


def factor_labels(column: str, width: int) -> tuple[str, ...]:
    """Names of the last axis of a method's extra matrix column, or ``c0, c1, ...`` when unknown."""
    try:
        from ..space import factorized_cell as fc
        known = {"act_weights": fc.ACTIVATIONS, "kernel_weights": fc.KERNEL_O2, "o1_weights": fc.KERNEL_O1,
                 "candidate_weights": fc.PAIR_CANDIDATES}
    except ImportError:  # a checkout without the factorized methods
        known = {}
    labels = tuple(known.get(column, ()))
    return labels if len(labels) == width else tuple(f"c{i}" for i in range(width))


def stack(values: Sequence, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Flat per-row arrays → one float array ``(rows, *shape)``; missing rows become NaN.

    ``shape`` defaults to ``(6, k)`` with k inferred from the first non-missing row.
    """
    arrays = [None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else np.asarray(v, dtype=np.float64).ravel()
              for v in values]
    sizes = {a.size for a in arrays if a is not None}
    if len(sizes) > 1:
        raise NbsError(f"rows hold arrays of different sizes {sorted(sizes)}; mixed methods in one column?")
    size = sizes.pop() if sizes else (int(np.prod(shape)) if shape else NUM_EDGES * NUM_OPS)
    if shape is None:
        if size % NUM_EDGES:
            raise NbsError(f"cannot fold {size} values into {NUM_EDGES} edges")
        shape = (NUM_EDGES, size // NUM_EDGES)
    if int(np.prod(shape)) != size:
        raise NbsError(f"cannot fold {size} values into shape {shape}")
    out = np.full((len(arrays), *shape), np.nan)
    for i, a in enumerate(arrays):
        if a is not None:
            out[i] = a.reshape(shape)
    return out


def layer_count(values: Sequence) -> int:
    """L of a DNAS ``layer_op_weights`` column (flat L × 6 × 5)."""
    sizes = {np.asarray(v).size for v in values if v is not None}
    if len(sizes) != 1 or next(iter(sizes)) % (NUM_EDGES * NUM_OPS):
        raise NbsError(f"layer_op_weights must hold L×{NUM_EDGES}×{NUM_OPS} values per row, got sizes {sorted(sizes)}")
    return next(iter(sizes)) // (NUM_EDGES * NUM_OPS)


def long_edge_op(df: pd.DataFrame, column: str = "op_weights", *, labels: Sequence[str] | None = None,
                 id_columns: Sequence[str] = ("run_dir", "method", "seed", "epoch")) -> pd.DataFrame:
    """A ``(6, k)`` column as a long frame: one row per (record, edge, op) with ``value``.

    ``op`` takes ``labels`` (default: NB201's op names for k = 5, else :func:`factor_labels`).
    """
    if column not in df:
        raise NbsError(f"no {quote(column)} column in these records")
    arr = stack(df[column].tolist())
    k = arr.shape[2]
    if labels is None:
        labels = OPS if (k == NUM_OPS and column not in FACTOR_COLUMNS) else factor_labels(column, k)
    ids = [c for c in id_columns if c in df]
    base = df[ids].reset_index(drop=True)
    rep = base.loc[base.index.repeat(NUM_EDGES * k)].reset_index(drop=True)
    rep["edge"] = np.tile(np.repeat(EDGE_LABELS, k), len(df))
    rep["edge_index"] = np.tile(np.repeat(np.arange(NUM_EDGES), k), len(df))
    rep["op"] = np.tile(np.asarray(labels, dtype=object), NUM_EDGES * len(df))
    rep["value"] = arr.reshape(-1)
    return rep
