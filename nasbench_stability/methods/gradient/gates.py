"""Independent sigmoid gates over candidate ops (FairDARTS, DNAS): the zero-one loss and the
candidate-op columns.

FairDARTS' zero-one loss ``L_01 = −w·mean((σ − 0.5)²)`` (its code: ``−w·mse(σ, 0.5)``): *minimizing* it
maximizes each gate's squared distance from 0.5, i.e. drives every σ to 0 or 1, so that discretizing
the gates loses little. It depends on the architecture parameters only.

With sigmoid gates a ``none`` column gets no data gradient (its output is zero whatever its weight),
so only the zero-one loss would move it — to 0 or 1 by the sign of its initial value — and it would
win argmaxes for reasons unrelated to the data. FairDARTS' and DNAS' op sets have no zero op: their
α covers the candidate columns only, and :func:`to_nb201` puts them back into NB201's five columns.
"""

from __future__ import annotations

import torch

from ...space.ops import NUM_OPS, OP_INDEX

_NONE = OP_INDEX["none"]


def zero_one_loss(gates: torch.Tensor, weight: float) -> torch.Tensor:
    """``−weight·mean((gates − 0.5)²)`` over the last dimension: a scalar for a 1-D vector of gates,
    one value per seed for (K, n) gates of packed seeds."""
    return -weight * (gates - 0.5).pow(2).mean(-1)


def candidate_ops(include_none: bool) -> tuple[int, ...]:
    """NB201 op columns that are candidates: all five, or the four non-``none`` ops."""
    return tuple(o for o in range(NUM_OPS) if include_none or o != _NONE)


def to_nb201(t: torch.Tensor, candidates: tuple[int, ...], fill: float = 0.0) -> torch.Tensor:
    """Candidate-op columns (last dim) → NB201's five columns; a non-candidate column gets ``fill``
    (0 for op weights: the op is then not computed; NaN for gradients: it has no parameter). Built from
    slices, not a host-side index list, so that a captured CUDA graph needs no host-to-device copy."""
    if candidates == tuple(range(NUM_OPS)):
        return t
    filler = torch.full_like(t[..., :1], fill)
    return torch.cat([t[..., candidates.index(o):candidates.index(o) + 1] if o in candidates else filler
                      for o in range(NUM_OPS)], dim=-1)
