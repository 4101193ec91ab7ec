"""The early warning's discrimination measure: pairs of a collapsing run and a control compared k epochs before
the collapse, the AUC over them, its bootstrap over runs, and the *paired* difference of two indicators' AUCs
(does a signal beat the naive baseline on the same runs?).

A pair is (collapsing run with its event at T, control still observed at T), both read at T − k; a win is 1
when the collapsing run's score is the more alarming, ½ for a tie. The bootstrap resamples runs, collapsing and
control runs separately; for a difference both indicators see the same resampled runs, so what they share
(which runs are hard) cancels, as in DeLong's paired test — our choice of a bootstrap over DeLong's variance
because pairs here are matched on epoch and risk set, not a plain two-sample design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RunSignal:
    """One run's oriented indicator values (higher = more alarming) and its event."""
    epochs: np.ndarray
    scores: np.ndarray
    values: np.ndarray
    time: int            # the event epoch, or the last recorded one (censored)
    collapsed: bool
    method: str = ""     # pairs "within a method" compare runs of one method only


@dataclass(frozen=True)
class Resampling:
    """The bootstrap over runs: ``n_resamples`` draws, a ``confidence`` percentile interval, a fixed seed."""
    n_resamples: int
    confidence: float
    random_state: int


def value_at(epochs: np.ndarray, values: np.ndarray, t: float) -> float:
    """The value at the last recorded epoch ≤ t (NaN before the first)."""
    i = int(np.searchsorted(epochs, t, side="right")) - 1
    return float(values[i]) if i >= 0 else math.nan


def pair_matrix(runs: dict[object, RunSignal], k: int, within_method: bool = False) -> tuple[np.ndarray, list, list]:
    """Wins of each collapsing run (rows) over each control (columns) at k epochs before the row's event:
    1 (collapsing more alarming), ½ (tie), 0, NaN where the pair is not comparable (the control was not
    observed up to the event, either value is missing at T − k, or, ``within_method``, the two runs' methods
    differ). Also the row and column run ids."""
    cases = [r for r, s in runs.items() if s.collapsed]
    controls = [r for r, s in runs.items() if not s.collapsed]
    wins = np.full((len(cases), len(controls)), np.nan)
    for i, case in enumerate(cases):
        s = runs[case]
        t = s.time - k
        a = value_at(s.epochs, s.scores, t)
        if not math.isfinite(a):
            continue
        for j, control in enumerate(controls):
            c = runs[control]
            if c.time < s.time:           # censored before this event: not in its risk set
                continue
            if within_method and c.method != s.method:
                continue
            b = value_at(c.epochs, c.scores, t)
            if math.isfinite(b):
                wins[i, j] = 1.0 if a > b else 0.5 if a == b else 0.0
    return wins, cases, controls


def pairwise_auc(wins: np.ndarray) -> float:
    """The mean of the comparable pairs (NaN if none)."""
    valid = np.isfinite(wins)
    return float(wins[valid].mean()) if valid.any() else math.nan


def _resampled_means(matrices: list[np.ndarray], resampling: Resampling) -> list[np.ndarray] | None:
    """Per matrix (all of one shape, NaN = no pair), the pair mean in each bootstrap resample of its rows and
    columns; the same resampled runs for every matrix. None with fewer than 2 runs on a side."""
    valid = np.logical_and.reduce([np.isfinite(m) for m in matrices])
    rows, cols = valid.any(axis=1), valid.any(axis=0)
    n1, n2 = int(rows.sum()), int(cols.sum())
    if n1 < 2 or n2 < 2:
        return None
    valid = valid[rows][:, cols]
    rng = np.random.default_rng(resampling.random_state)
    # a resample is a count per run; the mean over pairs with counts c, d is c·W·d / c·V·d (V: comparable pairs)
    c = rng.multinomial(n1, np.full(n1, 1.0 / n1), size=resampling.n_resamples).astype(float)
    d = rng.multinomial(n2, np.full(n2, 1.0 / n2), size=resampling.n_resamples).astype(float)
    den = np.einsum("bi,ij,bj->b", c, valid.astype(float), d)
    keep = den > 0
    out = []
    for m in matrices:
        m = np.where(valid, m[rows][:, cols], 0.0)
        out.append(np.einsum("bi,ij,bj->b", c, m, d)[keep] / den[keep])
    return out


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2
    return float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))


def bootstrap_auc(wins: np.ndarray, resampling: Resampling) -> tuple[float, float]:
    """Percentile interval of :func:`pairwise_auc` over runs: collapsing and control runs resampled with
    replacement, each side on its own (so every resample has both); NaN with fewer than 2 runs on a side."""
    draws = _resampled_means([wins], resampling)
    return (math.nan, math.nan) if draws is None else _interval(draws[0], resampling.confidence)


def aligned(wins: np.ndarray, cases: list, controls: list, to_cases: list, to_controls: list) -> np.ndarray:
    """``wins`` (rows ``cases``, columns ``controls``) laid out as rows ``to_cases``, columns ``to_controls``
    (NaN where a run is missing): two indicators' matrices, pair for pair."""
    out = np.full((len(to_cases), len(to_controls)), np.nan)
    row = {r: i for i, r in enumerate(cases)}
    col = {r: j for j, r in enumerate(controls)}
    for i, r in enumerate(to_cases):
        for j, c in enumerate(to_controls):
            if r in row and c in col:
                out[i, j] = wins[row[r], col[c]]
    return out


def paired_difference(wins: np.ndarray, baseline: np.ndarray, resampling: Resampling) -> dict:
    """AUC of ``wins`` minus AUC of ``baseline`` (same rows and columns) over the pairs comparable in both, with
    the percentile interval of the difference when both are computed on the same resampled runs.
    ``difference``, ``ci_low``, ``ci_high`` (NaN with fewer than 2 runs on a side), ``n_pairs``."""
    both = np.isfinite(wins) & np.isfinite(baseline)
    n_pairs = int(both.sum())
    if not n_pairs:
        return {"difference": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_pairs": 0}
    difference = float(wins[both].mean() - baseline[both].mean())
    draws = _resampled_means([np.where(both, wins, np.nan), np.where(both, baseline, np.nan)], resampling)
    low, high = (math.nan, math.nan) if draws is None else _interval(draws[0] - draws[1], resampling.confidence)
    return {"difference": difference, "ci_low": low, "ci_high": high, "n_pairs": n_pairs}
