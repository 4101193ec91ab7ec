"""Is method A better than method B? Pairwise tests of the final cells' benchmark accuracy over seeds.

For every dataset and every pair of methods: the difference of the mean final test accuracy (A − B),
its 95% interval, a two-sided p-value and the seeds behind each side. The test is named in the table:

* ``welch`` (default): Welch's t-test (scipy.stats.ttest_ind, equal_var=False) — seeds of two methods
  have no reason to share a variance — with its own interval of the difference.
* ``mannwhitney``: the Mann–Whitney U test (scipy.stats.mannwhitneyu), no normality assumed; the
  interval of the difference of means is then a percentile bootstrap (fixed random_state).

p-values are Holm-corrected (statsmodels ``multipletests(method="holm")``) over the pairs of one
dataset that have a test. A pair where either method has fewer than ``min_seeds`` (3) seeds gets no
number at all: its cells say "too few seeds" (with 2 seeds a p-value means nothing).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError, quote
from .bench_columns import DATASET_LABELS, RESULT_DATASETS, benchmark_column, record_column
from .intervals import DEFAULT_RULE

WELCH, MANN_WHITNEY = "welch", "mannwhitney"
TEST_NAMES = {WELCH: "Welch's t", MANN_WHITNEY: "Mann–Whitney U"}
TOO_FEW = "too few seeds"
GROUP = "method"


@dataclass(frozen=True)
class PairwiseOptions:
    """``test`` (welch | mannwhitney), ``min_seeds = 3`` per method for a pair to be tested,
    ``confidence = 0.95`` of the difference's interval, ``n_resamples``/``random_state`` of its bootstrap."""

    test: str = WELCH
    min_seeds: int = 3
    confidence: float = 0.95
    n_resamples: int = DEFAULT_RULE.n_resamples
    random_state: int = DEFAULT_RULE.random_state

    def __post_init__(self) -> None:
        if self.test not in TEST_NAMES:
            raise ConfigError(f"unknown test {quote(self.test)}; known: {', '.join(TEST_NAMES)}")

    def describe(self) -> str:
        interval = ("Welch's interval of the difference" if self.test == WELCH else
                    f"percentile bootstrap of the difference of means ({self.n_resamples} resamples, "
                    f"random_state={self.random_state})")
        return (f"difference: mean final test accuracy of A minus B (points), [{self.confidence:.0%} interval: "
                f"{interval}]. p: two-sided {TEST_NAMES[self.test]} test on the seeds' final cells, Holm-corrected "
                f"over the pairs of this table that have a test. Fewer than {self.min_seeds} seeds on either "
                f"side: {TOO_FEW}, no number.")


def final_values(df: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Per method, the finite values of benchmark ``column`` of every run's final cell."""
    from .tables import final_records

    last = final_records(df)
    rec = record_column(column)
    values = last[rec].astype(float) if rec in last else pd.Series(np.nan, index=last.index)
    return {str(m): v[np.isfinite(v)].to_numpy() for m, v in values.groupby(last[GROUP].astype(str), sort=True)}


def pairwise_tests(df: pd.DataFrame, *, datasets: Sequence[str] = RESULT_DATASETS, split: str = "test",
                   epochs: int = 200, options: PairwiseOptions = PairwiseOptions()) -> pd.DataFrame:
    """One row per (dataset, pair of methods): ``method_a``, ``method_b``, ``n_a``, ``n_b``, ``mean_a``,
    ``mean_b``, ``difference`` (a − b), ``ci_low``, ``ci_high``, ``test``, ``statistic``, ``p_value``,
    ``p_holm`` and ``note`` (``too few seeds``, or why a tested pair has no p-value). Datasets whose
    column the records lack are left out."""
    rows = []
    for dataset in datasets:
        column = benchmark_column(dataset, split, epochs)
        if record_column(column) not in df or not df[record_column(column)].notna().any():
            continue
        values = final_values(df, column)
        block = [_pair(dataset, column, a, b, values[a], values[b], options) for a, b in combinations(values, 2)]
        _holm(block)
        rows += block
    return pd.DataFrame(rows, columns=["dataset", "column", "method_a", "method_b", "n_a", "n_b", "mean_a", "mean_b",
                                       "difference", "ci_low", "ci_high", "test", "statistic", "p_value", "p_holm",
                                       "note"])


def _pair(dataset: str, column: str, a: str, b: str, x: np.ndarray, y: np.ndarray, options: PairwiseOptions) -> dict:
    row = {"dataset": dataset, "column": column, "method_a": a, "method_b": b, "n_a": len(x), "n_b": len(y),
           "mean_a": x.mean() if len(x) else math.nan, "mean_b": y.mean() if len(y) else math.nan,
           "difference": math.nan, "ci_low": math.nan, "ci_high": math.nan, "test": TEST_NAMES[options.test],
           "statistic": math.nan, "p_value": math.nan, "p_holm": math.nan, "note": ""}
    if min(len(x), len(y)) < options.min_seeds:
        row["note"] = TOO_FEW
        return row
    row["difference"] = x.mean() - y.mean()
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        # every seed of each method found one cell: no spread to test against (scipy would return NaN)
        row["ci_low"] = row["ci_high"] = row["difference"]
        row["note"] = "no spread within either method"
        return row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # one constant side: scipy warns, the answer stands
        if options.test == WELCH:
            result = stats.ttest_ind(x, y, equal_var=False)
            ci = result.confidence_interval(options.confidence)
        else:
            result = stats.mannwhitneyu(x, y, alternative="two-sided")
            ci = stats.bootstrap((x, y), _mean_difference, method="percentile", confidence_level=options.confidence,
                                 n_resamples=options.n_resamples, rng=options.random_state).confidence_interval
    row.update(statistic=float(result.statistic), p_value=float(result.pvalue),
               ci_low=float(ci.low), ci_high=float(ci.high))
    return row


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down correction of ``p_values`` (statsmodels); NaN entries stay NaN and are not counted."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.isfinite(p)
    if tested.any():
        out[tested] = multipletests(p[tested], method="holm")[1]
    return out


def _holm(block: list[dict]) -> None:
    for row, corrected in zip(block, holm([r["p_value"] for r in block])):
        row["p_holm"] = corrected


def format_p(p: float) -> str:
    """``0.012``, ``< 0.001``; ``–`` without a test."""
    if not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def pairwise_display(tests: pd.DataFrame, dataset: str, digits: int = 2) -> pd.DataFrame:
    """The rows of one ``dataset`` of :func:`pairwise_tests` as strings (for reports)."""
    rows = {}
    for r in tests[tests["dataset"] == dataset].itertuples(index=False):
        pair = f"{r.method_a} − {r.method_b}"
        seeds = f"{r.n_a} / {r.n_b}"
        if r.note == TOO_FEW:
            rows[pair] = {"seeds (A / B)": seeds, "difference (A − B)": TOO_FEW, "95% interval": TOO_FEW,
                          f"p ({r.test})": TOO_FEW, "p (Holm)": TOO_FEW}
            continue
        rows[pair] = {"seeds (A / B)": seeds, "difference (A − B)": f"{r.difference:+.{digits}f}",
                      "95% interval": f"[{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]",
                      f"p ({r.test})": format_p(r.p_value) if not r.note else r.note, "p (Holm)": format_p(r.p_holm)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "pair (A − B)"
    return frame


def dataset_title(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)
