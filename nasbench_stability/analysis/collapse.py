"""Collapse statistics: did the search find a good cell and then lose it?

DARTS' failure mode on NB201 is a derived cell that drifts towards parameter-free ops (skip
connections, pooling, none) while the supernet keeps improving, so the benchmark accuracy of the
derived cell peaks early and falls. Per run this module measures the peak (best epoch and its
accuracy), the end, the drop, and when the cell first became mostly parameter-free; per method it
aggregates them over seeds and counts the seeds that collapsed under :class:`CollapseCriteria`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import NbsError
from ..space.ops import NUM_EDGES
from .bench_columns import DEFAULT_TEST_COLUMN, record_column
from .intervals import DEFAULT_RULE, IntervalRule, format_interval, mean_interval, wilson_interval, with_interval

GROUP = "method"


@dataclass(frozen=True)
class CollapseCriteria:
    """The thresholds of the collapse statistics (our choice; every report prints :meth:`describe`).

    * ``param_free_fraction = 0.5`` defines the *first epoch with ≥ 50% parameter-free ops*
      (≥ 3 of 6 edges holding none, skip_connect or avg_pool_3x3), as docs/methods.md asks.
    * A run is **collapsed** if its final cell has ≥ ``collapsed_param_free_edges`` (5) of 6 edges
      parameter-free, or its final accuracy is ≥ ``drop_points`` (5) points below the best cell the
      same run derived at any epoch.

    Why not 50% for "collapsed": 3 of NB201's 5 ops are parameter-free, so 82% of uniformly random
    cells have ≥ 3 parameter-free edges, and cells with 3 still reach 94.0% on CIFAR-10; it would
    flag chance, not collapse. With ≥ 5 of 6 the mean CIFAR-10 test accuracy of NB201 cells falls
    to 81% (66% at 6 of 6, the all-skip cell at 54.3%). The accuracy drop catches collapse whatever
    the structure. Accuracy is ``column`` (default CIFAR-10 test, 200 epochs).
    """

    param_free_fraction: float = 0.5
    collapsed_param_free_edges: int = 5
    drop_points: float = 5.0
    column: str = DEFAULT_TEST_COLUMN

    @property
    def param_free_edges(self) -> int:
        """Edges that make "≥ param_free_fraction" (3 of 6 at 50%)."""
        return int(math.ceil(self.param_free_fraction * NUM_EDGES - 1e-9))

    def describe(self) -> str:
        return (f"first epoch ≥ {self.param_free_fraction:.0%} param-free: the first epoch whose derived cell has "
                f"≥ {self.param_free_edges} of {NUM_EDGES} edges holding none, skip_connect or avg_pool_3x3. "
                f"Collapsed: the final cell has ≥ {self.collapsed_param_free_edges} of {NUM_EDGES} edges "
                f"parameter-free, or its {self.column} accuracy is ≥ {self.drop_points:g} points below the best "
                f"cell the run derived at any epoch.")


def collapsed_by_epoch(accuracy: np.ndarray, param_free: np.ndarray,
                       criteria: CollapseCriteria = CollapseCriteria()) -> np.ndarray:
    """Whether the run is collapsed at each of its epochs (in order): the criterion applied as if that
    epoch were the last, i.e. the cell has ≥ ``collapsed_param_free_edges`` parameter-free edges or its
    accuracy is ≥ ``drop_points`` below the best cell derived up to that epoch. At the last epoch this
    is :func:`collapse_per_run`'s ``collapsed``; :mod:`.survival` takes the first such epoch as the event."""
    acc = np.asarray(accuracy, dtype=float)
    best_so_far = np.fmax.accumulate(np.where(np.isfinite(acc), acc, -np.inf))
    with np.errstate(invalid="ignore"):
        dropped = np.isfinite(acc) & (acc - best_so_far <= -criteria.drop_points)
    return (np.asarray(param_free) >= criteria.collapsed_param_free_edges) | dropped


def collapse_per_run(df: pd.DataFrame, criteria: CollapseCriteria = CollapseCriteria()) -> pd.DataFrame:
    """One row per run: ``best_epoch`` (first epoch reaching the maximum), ``acc_best``,
    ``acc_end`` (last recorded epoch), ``drop`` (= end − best, ≤ 0), ``first_param_free_epoch``
    (first epoch whose derived cell has ≥ ``param_free_edges`` parameter-free ops; NaN if never),
    ``final_param_free``, ``collapsed`` (see :class:`CollapseCriteria`)."""
    acc_col = record_column(criteria.column)
    missing = [c for c in (acc_col, "epoch", "param_free_count") if c not in df]
    if missing:
        raise NbsError(f"records lack column(s) {', '.join(missing)} needed for collapse statistics")
    key = "run_dir" if "run_dir" in df else "run"
    rows = []
    for _, run in df.sort_values([key, "epoch"], kind="stable").groupby(key, sort=False):
        acc = run[acc_col].to_numpy(dtype=float)
        epochs = run["epoch"].to_numpy()
        pf = run["param_free_count"].to_numpy()
        finite = np.isfinite(acc)
        best_i = int(np.nanargmax(np.where(finite, acc, -np.inf))) if finite.any() else None
        reached = np.flatnonzero(pf >= criteria.param_free_edges)
        acc_best = float(acc[best_i]) if best_i is not None else math.nan
        acc_end = float(acc[-1])
        drop = acc_end - acc_best
        final_pf = int(pf[-1])
        rows.append({
            GROUP: run[GROUP].iloc[0] if GROUP in run else None,
            "seed": run["seed"].iloc[0] if "seed" in run else None,
            key: run[key].iloc[0],
            "epochs_recorded": len(run),
            "best_epoch": int(epochs[best_i]) if best_i is not None else math.nan,
            "acc_best": acc_best, "acc_end": acc_end, "drop": drop,
            "first_param_free_epoch": float(epochs[reached[0]]) if reached.size else math.nan,
            "final_param_free": final_pf,
            "collapsed": bool(collapsed_by_epoch(acc, pf, criteria)[-1]),
        })
    return pd.DataFrame(rows)


def collapse_summary(df: pd.DataFrame, criteria: CollapseCriteria = CollapseCriteria(),
                     rule: IntervalRule = DEFAULT_RULE) -> pd.DataFrame:
    """Per method: seeds, mean best epoch, mean/std of accuracy at best and at end and of the
    drop, the seeds that reached ``param_free_fraction`` parameter-free ops and their mean first such
    epoch, and the fraction of seeds collapsed (see :class:`CollapseCriteria`). Every mean ``X_mean``
    has its interval ``X_ci_low``/``X_ci_high`` under ``rule``; the collapsed fraction its Wilson
    interval ``collapsed_ci_low``/``collapsed_ci_high``."""
    per_run = collapse_per_run(df, criteria)
    rows = []
    for method, runs in per_run.groupby(GROUP, sort=True):
        reached = runs["first_param_free_epoch"].dropna()
        collapsed = int(runs["collapsed"].sum())
        row = {
            GROUP: method, "seeds": len(runs),
            "best_epoch_mean": runs["best_epoch"].mean(),
            "acc_best_mean": runs["acc_best"].mean(), "acc_best_std": _std(runs["acc_best"]),
            "acc_end_mean": runs["acc_end"].mean(), "acc_end_std": _std(runs["acc_end"]),
            "drop_mean": runs["drop"].mean(), "drop_std": _std(runs["drop"]),
            "param_free_seeds": len(reached),
            "first_param_free_epoch_mean": reached.mean() if len(reached) else math.nan,
            "collapsed_fraction": runs["collapsed"].mean(), "collapsed_seeds": collapsed,
        }
        for name, values in (("best_epoch", runs["best_epoch"]), ("acc_best", runs["acc_best"]),
                             ("acc_end", runs["acc_end"]), ("drop", runs["drop"]),
                             ("first_param_free_epoch", reached)):
            ci = mean_interval(values.to_numpy(dtype=float), rule)
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci.low, ci.high
        row["collapsed_ci_low"], row["collapsed_ci_high"] = wilson_interval(collapsed, len(runs), rule.confidence)
        rows.append(row)
    return pd.DataFrame(rows).set_index(GROUP)


def collapse_display(summary: pd.DataFrame, criteria: CollapseCriteria = CollapseCriteria(),
                     digits: int = 2) -> pd.DataFrame:
    """:func:`collapse_summary` as strings with readable headers (for reports); intervals follow the
    means when the summary has them."""
    from .tables import format_mean_std

    def ci(r: pd.Series, name: str, text: str, places: int = digits) -> str:
        return with_interval(text, r.get(f"{name}_ci_low", math.nan), r.get(f"{name}_ci_high", math.nan), places)

    pf_header = f"first epoch ≥ {criteria.param_free_fraction:.0%} param-free"
    out = {}
    for method, r in summary.iterrows():
        n = int(r["seeds"])
        k = int(round(r["collapsed_fraction"] * n))
        wilson = format_interval(r.get("collapsed_ci_low", math.nan), r.get("collapsed_ci_high", math.nan),
                                 percent=True)
        out[str(method)] = {
            "seeds": str(n),
            "best epoch (mean)": ci(r, "best_epoch", f"{r['best_epoch_mean']:.1f}", 1),
            "test acc. at best": ci(r, "acc_best", format_mean_std(r["acc_best_mean"], r["acc_best_std"], n, digits)),
            "test acc. at end": ci(r, "acc_end", format_mean_std(r["acc_end_mean"], r["acc_end_std"], n, digits)),
            "drop end − best": ci(r, "drop", format_mean_std(r["drop_mean"], r["drop_std"], n, digits)),
            pf_header: (ci(r, "first_param_free_epoch", f"{r['first_param_free_epoch_mean']:.1f}", 1)
                        + f" ({int(r['param_free_seeds'])}/{n})" if int(r["param_free_seeds"]) else f"never (0/{n})"),
            "collapsed": f"{r['collapsed_fraction']:.0%} ({k}/{n})" + (f" {wilson}" if wilson else ""),
        }
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = GROUP
    return frame


def _std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if values.notna().sum() > 1 else math.nan
