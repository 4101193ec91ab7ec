"""95% intervals over seeds: of a mean (bootstrap or t), and of a fraction (Wilson).

The rule (:class:`IntervalRule`, printed in every table's notes by :meth:`IntervalRule.describe`):

* n ≥ ``t_from_seeds`` (5) seeds: the t interval, mean ± t(0.975, n−1) · s/√n (scipy.stats.t).
* 2 ≤ n < 5: the percentile bootstrap over seeds (scipy.stats.bootstrap, ``n_resamples`` resamples
  drawn with the fixed ``random_state``, so a report is the same every time it is rebuilt). With so
  few seeds it cannot reach beyond the seeds' own range and covers less than its nominal 95%: it
  shows where these seeds lie, not where the method's mean lies.
* one seed: no interval (NaN).

A fraction k/n (seeds collapsed) gets the Wilson score interval (statsmodels), which stays inside
[0, 1] and is not empty at k = 0 or k = n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

T, BOOTSTRAP, NONE = "t", "bootstrap", "none"
# Bootstrap batches of at most this many groups: one call holds groups × n_resamples means.
_BATCH = 256


@dataclass(frozen=True)
class IntervalRule:
    """Which interval a mean over seeds gets (see the module docstring).

    * ``confidence = 0.95``: the intervals' nominal coverage.
    * ``t_from_seeds = 5``: from this many seeds on, the t interval; below, the bootstrap.
    * ``n_resamples = 9999`` (scipy's default) and ``random_state = 0``: the bootstrap's resamples.
    """

    confidence: float = 0.95
    t_from_seeds: int = 5
    n_resamples: int = 9999
    random_state: int = 0

    def method_for(self, n: int) -> str:
        return NONE if n < 2 else T if n >= self.t_from_seeds else BOOTSTRAP

    def describe(self) -> str:
        return (f"[a, b]: {self.confidence:.0%} interval of the mean over seeds — t-based (scipy.stats.t) with "
                f"≥ {self.t_from_seeds} seeds, otherwise a percentile bootstrap over seeds ({self.n_resamples} "
                f"resamples, random_state={self.random_state}), which with so few seeds cannot reach beyond "
                f"the seeds' range and covers less than {self.confidence:.0%}; none for one seed.")


DEFAULT_RULE = IntervalRule()


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str      # t, bootstrap or none
    n: int


def mean_interval(values: Sequence[float], rule: IntervalRule = DEFAULT_RULE, method: str | None = None) -> Interval:
    """The interval of the mean of the finite ``values`` under ``rule`` (``method`` forces t or bootstrap)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    low, high, used = mean_intervals([x], rule, method)
    return Interval(float(low[0]), float(high[0]), used[0], len(x))


def mean_intervals(groups: Sequence[np.ndarray], rule: IntervalRule = DEFAULT_RULE,
                   method: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:func:`mean_interval` of many groups at once (groups of one size share one bootstrap call, so
    each group gets the interval it would get alone). Values must be finite."""
    low, high = np.full(len(groups), np.nan), np.full(len(groups), np.nan)
    used = [rule.method_for(len(g)) if len(g) < 2 or method is None else method for g in groups]
    for kind in (T, BOOTSTRAP):
        by_size: dict[int, list[int]] = {}
        for i, (g, m) in enumerate(zip(groups, used)):
            if m == kind:
                by_size.setdefault(len(g), []).append(i)
        for n, members in by_size.items():
            for start in range(0, len(members), _BATCH):
                idx = members[start:start + _BATCH]
                data = np.stack([np.asarray(groups[i], dtype=float) for i in idx])
                low[idx], high[idx] = (_t(data, rule.confidence) if kind == T else _bootstrap(data, rule))
    return low, high, used


def _t(data: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    n = data.shape[1]
    mean, sem = data.mean(axis=1), data.std(axis=1, ddof=1) / math.sqrt(n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sem
    return mean - half, mean + half


def _bootstrap(data: np.ndarray, rule: IntervalRule) -> tuple[np.ndarray, np.ndarray]:
    ci = stats.bootstrap((data,), np.mean, axis=-1, confidence_level=rule.confidence, method="percentile",
                         n_resamples=rule.n_resamples, rng=rule.random_state).confidence_interval
    return np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the fraction ``successes / n``; (NaN, NaN) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def format_interval(low: float, high: float, digits: int = 2, percent: bool = False) -> str:
    """``[92.60, 93.60]`` (``[9%, 91%]`` for fractions); empty when there is no interval."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    if percent:
        return f"[{low:.0%}, {high:.0%}]"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def with_interval(text: str, low: float, high: float, digits: int = 2) -> str:
    """``93.10 ± 0.40 [92.60, 93.60]``: a shown mean followed by its interval (if any)."""
    shown = format_interval(low, high, digits)
    return f"{text} {shown}" if shown and text != "–" else text
