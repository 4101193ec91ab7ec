"""Collapse as survival: when does a run first collapse, and does one method hold out longer?

Each run is one subject. Its **event** is the first epoch at which the report's collapse criterion
(:class:`~.collapse.CollapseCriteria`, applied to that epoch as if it were the last:
:func:`~.collapse.collapsed_by_epoch`) holds; a run that may recover later still counts its first
collapse. A run that never collapses is **right-censored** at its last recorded epoch — whether it
finished, stopped early (diverged) or is still running: we only know it had not collapsed by then.

Per method, the Kaplan–Meier estimate of "not yet collapsed" after each epoch (scipy.stats.ecdf on
scipy.stats.CensoredData, with its 95% log-log interval), the median epochs to collapse (the first
epoch where the estimate is ≤ 0.5; "not reached" otherwise), and between methods the log-rank test
(scipy.stats.logrank): for two methods one test, for more every pair, Holm-corrected. As for the
pairwise accuracy tests, a pair with fewer than ``min_seeds`` runs on either side is not tested.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from .bench_columns import record_column
from .collapse import CollapseCriteria, collapsed_by_epoch
from .pairwise import TOO_FEW, format_p, holm

GROUP = "method"
LOGRANK_MIN_SEEDS = 3


def collapse_events(df: pd.DataFrame, criteria: CollapseCriteria = CollapseCriteria()) -> pd.DataFrame:
    """One row per run: ``method``, ``seed``, ``run_dir``, ``status``, ``time`` (the first collapsed
    epoch, or the last recorded one), ``collapsed`` (True: an event at ``time``; False: censored there)
    and ``censored_because`` (why a censored run has no later epoch)."""
    acc_col = record_column(criteria.column)
    key = "run_dir" if "run_dir" in df else "run"
    rows = []
    for _, run in df.sort_values([key, "epoch"], kind="stable").groupby(key, sort=False):
        epochs = run["epoch"].to_numpy(dtype=int)
        acc = run[acc_col].to_numpy(dtype=float) if acc_col in run else np.full(len(run), np.nan)
        hit = np.flatnonzero(collapsed_by_epoch(acc, run["param_free_count"].to_numpy(), criteria))
        status = str(run["status"].iloc[-1]) if "status" in run else "unknown"
        planned = run["epochs"].iloc[-1] if "epochs" in run else None
        reason = ""
        if not hit.size:
            reason = (f"{status} after {epochs[-1]}" + (f" of {int(planned)}" if planned is not None
                                                        and not pd.isna(planned) else "") + " epochs")
        rows.append({GROUP: str(run[GROUP].iloc[0]) if GROUP in run else None,
                     "seed": run["seed"].iloc[0] if "seed" in run else None, key: run[key].iloc[0],
                     "status": status, "time": int(epochs[hit[0]] if hit.size else epochs[-1]),
                     "collapsed": bool(hit.size), "censored_because": reason})
    return pd.DataFrame(rows)


def _censored(events: pd.DataFrame) -> stats.CensoredData:
    done = events["collapsed"].to_numpy(dtype=bool)
    times = events["time"].to_numpy(dtype=float)
    return stats.CensoredData(uncensored=times[done], right=times[~done])


def kaplan_meier(events: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per method and epoch where something happened (plus epoch 0): ``at_risk``, ``collapses``,
    ``censored``, ``survival`` (Kaplan–Meier "not yet collapsed" just after that epoch) and its
    ``ci_low``/``ci_high`` (log-log; NaN where undefined)."""
    rows = []
    for method, group in events.groupby(GROUP, sort=True):
        sf = stats.ecdf(_censored(group)).sf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # undefined where S = 1 or 0: NaN, as documented
            ci = sf.confidence_interval(confidence, method="log-log")
        times = group["time"].to_numpy()
        done = group["collapsed"].to_numpy(dtype=bool)
        rows.append({GROUP: method, "epoch": 0, "at_risk": len(group), "collapses": 0, "censored": 0,
                     "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0})
        for t, s, lo, hi in zip(sf.quantiles, sf.probabilities, ci.low.probabilities, ci.high.probabilities):
            rows.append({GROUP: method, "epoch": int(t), "at_risk": int((times >= t).sum()),
                         "collapses": int(((times == t) & done).sum()), "censored": int(((times == t) & ~done).sum()),
                         "survival": float(s), "ci_low": float(lo), "ci_high": float(hi)})
    return pd.DataFrame(rows)


def median_epochs_to_collapse(curve: pd.DataFrame) -> float:
    """The first epoch at which one method's Kaplan–Meier estimate is ≤ 0.5; NaN if it never is."""
    reached = curve.loc[curve["survival"] <= 0.5 + 1e-12, "epoch"]
    return float(reached.min()) if len(reached) else math.nan


def survival_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Per method: ``runs``, ``collapses``, ``censored``, ``median_epochs`` (NaN: not reached) and
    ``survival_end`` (the estimate after the last epoch any run reached)."""
    curves = kaplan_meier(events)
    rows = []
    for method, group in events.groupby(GROUP, sort=True):
        curve = curves[curves[GROUP] == method]
        rows.append({GROUP: method, "runs": len(group), "collapses": int(group["collapsed"].sum()),
                     "censored": int((~group["collapsed"]).sum()), "median_epochs": median_epochs_to_collapse(curve),
                     "survival_end": float(curve["survival"].iloc[-1]), "last_epoch": int(group["time"].max())})
    return pd.DataFrame(rows).set_index(GROUP)


def logrank_tests(events: pd.DataFrame, min_seeds: int = LOGRANK_MIN_SEEDS) -> pd.DataFrame:
    """Every pair of methods: ``n_a``, ``n_b``, ``collapses_a``, ``collapses_b``, log-rank ``statistic``,
    ``p_value``, ``p_holm`` (over the tested pairs) and ``note`` (too few seeds; no collapse on either side)."""
    groups = {str(m): g for m, g in events.groupby(GROUP, sort=True)}
    rows = []
    for a, b in combinations(groups, 2):
        x, y = groups[a], groups[b]
        row = {"method_a": a, "method_b": b, "n_a": len(x), "n_b": len(y),
               "collapses_a": int(x["collapsed"].sum()), "collapses_b": int(y["collapsed"].sum()),
               "statistic": math.nan, "p_value": math.nan, "note": ""}
        if min(len(x), len(y)) < min_seeds:
            row["note"] = TOO_FEW
        elif not (row["collapses_a"] or row["collapses_b"]):
            row["note"] = "no collapse on either side"   # the statistic is 0/0
        else:
            result = stats.logrank(_censored(x), _censored(y))
            row.update(statistic=float(result.statistic), p_value=float(result.pvalue))
        rows.append(row)
    out = pd.DataFrame(rows, columns=["method_a", "method_b", "n_a", "n_b", "collapses_a", "collapses_b",
                                      "statistic", "p_value", "note"])
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float)) if len(out) else []
    return out


def survival_display(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`survival_summary` as strings (for reports)."""
    out = {}
    for method, r in summary.iterrows():
        median = r["median_epochs"]
        out[str(method)] = {
            "runs": str(int(r["runs"])), "collapsed (events)": str(int(r["collapses"])),
            "censored": str(int(r["censored"])),
            "median epochs to collapse": f"{int(median)}" if math.isfinite(median)
            else f"not reached (> {int(r['last_epoch'])})",
            "not yet collapsed at end (KM)": f"{r['survival_end']:.0%}",
        }
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = GROUP
    return frame


def logrank_display(tests: pd.DataFrame) -> pd.DataFrame:
    """:func:`logrank_tests` as strings (for reports)."""
    rows = {}
    for r in tests.itertuples(index=False):
        untested = r.note if r.note else None
        rows[f"{r.method_a} vs {r.method_b}"] = {
            "runs (A / B)": f"{r.n_a} / {r.n_b}", "collapsed (A / B)": f"{r.collapses_a} / {r.collapses_b}",
            "p (log-rank)": untested or format_p(r.p_value),
            "p (Holm)": untested or format_p(r.p_holm),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "pair"
    return frame


def survival_notes(criteria: CollapseCriteria, min_seeds: int = LOGRANK_MIN_SEEDS) -> tuple[str, ...]:
    return (f"Event: the first epoch at which the collapse criterion held (as if that epoch were the run's last). "
            f"{criteria.describe()} Runs that never collapsed are censored at their last recorded epoch "
            f"(finished, stopped early or still running).",
            "Kaplan–Meier estimate of the fraction not yet collapsed (scipy.stats.ecdf); median epochs to collapse: "
            "the first epoch where it is ≤ 50% (not reached: it stays above).",
            f"p: log-rank test (scipy.stats.logrank) between two methods, Holm-corrected over all pairs of methods; "
            f"fewer than {min_seeds} runs on either side: {TOO_FEW}.")
