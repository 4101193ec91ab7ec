"""Best-so-far trajectories of the table searches (RS, REA, REINFORCE, BOHB).

A table search's record k is a checkpoint of its trajectory, not a search epoch: the best cell by the
search signal among its first ``queries`` queries (:mod:`..engine.table_run`). Their curves are drawn
against the budget spent (queries, or simulated seconds when the budget is in seconds), and they are
kept out of the per-epoch collapse statistics, whose "epoch" they do not have.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NbsError, quote
from .curves import epoch_curves

#: the record column only a table search writes (queries asked so far)
TABLE_SEARCH_COLUMN = "queries"
BUDGET_LABELS = {"queries": "queries to the benchmark", "seconds": "simulated search seconds"}


def table_search_rows(df: pd.DataFrame) -> pd.Series:
    """True for the records of table searches (they have a query count)."""
    if TABLE_SEARCH_COLUMN not in df:
        return pd.Series(False, index=df.index)
    return pd.to_numeric(df[TABLE_SEARCH_COLUMN], errors="coerce").notna()


def supernet_records(df: pd.DataFrame) -> pd.DataFrame:
    """The records of searches with epochs (every method but the table searches)."""
    return df[~table_search_rows(df)]


def best_so_far_curves(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per table-search method and checkpoint: mean, sample std and count over seeds of ``column`` (the
    best-so-far cell's accuracy), at ``budget`` = the mean budget spent at that checkpoint over seeds
    (with a query budget every seed has spent the same there), and the ``budget_kind``."""
    rows = df[table_search_rows(df)]
    if rows.empty:
        raise NbsError("no table-search runs (rs, rea, reinforce, bohb) in these records")
    if column not in rows:
        raise NbsError(f"no {quote(column)} column in these records")
    curves = epoch_curves(rows, column)
    spent = rows.assign(spent=pd.to_numeric(rows["budget_spent"], errors="coerce").astype(float))
    x = spent.groupby(["method", "epoch"])["spent"].mean().rename("budget")
    kinds = rows.groupby("method")["budget"].agg(lambda v: v.iloc[0] if v.nunique() == 1 else "mixed")
    out = curves.join(x, on=["method", "epoch"])
    out["budget_kind"] = out["method"].map(kinds)
    return out[np.isfinite(out["budget"])].reset_index(drop=True)
