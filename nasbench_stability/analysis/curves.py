"""Per-epoch curves aggregated over seeds: the numbers behind every banded figure (mean with its 95%
interval, :mod:`.intervals`, or ± std).

Runs of different lengths are aggregated epoch by epoch over the seeds that reached that epoch
(``n`` says how many), so a seed still running shortens nothing and hides nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import NbsError, quote
from .intervals import DEFAULT_RULE, IntervalRule, mean_intervals


def epoch_curves(df: pd.DataFrame, column: str, by: Sequence[str] = ("method",),
                 rule: IntervalRule | None = DEFAULT_RULE) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed), count and the mean's interval under ``rule``
    (``ci_low``/``ci_high``; NaN for one seed; not computed for ``rule=None``) of ``column`` per group and epoch.

    NaN values (e.g. a Hessian measured only every k epochs) are left out of the statistics, and
    epochs with no value in a group are dropped.
    """
    if column not in df:
        raise NbsError(f"no {quote(column)} column in these records")
    by = list(by)
    values = df[by + ["epoch"]].copy()
    values["value"] = pd.to_numeric(df[column], errors="coerce").astype(float)
    values = values[np.isfinite(values["value"])]
    grouped = values.groupby(by + ["epoch"], sort=True)["value"]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n="count")
    if rule is not None:
        out["ci_low"], out["ci_high"], _ = mean_intervals([np.asarray(v) for v in grouped.agg(list)], rule)
    return out.reset_index()


def array_epoch_curves(df: pd.DataFrame, column: str, reduce: str = "mean",
                       by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Like :func:`epoch_curves` for a flat (6 × k) array column, first reduced per record over edges
    (``reduce``: mean or absmean), giving one curve per op column ``op``."""
    from .matrices import long_edge_op

    long = long_edge_op(df, column, id_columns=[*by, "run_dir", "seed", "epoch"])
    if reduce == "absmean":
        long["value"] = long["value"].abs()
    elif reduce != "mean":
        raise NbsError(f"reduce must be 'mean' or 'absmean', got {quote(reduce)}")
    per_record = long.groupby([*by, "run_dir", "epoch", "op"], sort=False)["value"].mean().reset_index()
    return epoch_curves(per_record, "value", by=[*by, "op"])
