"""Do our seeds agree with a published number? A verdict that weighs the paper's own spread.

Where the paper prints mean ± std over n runs and we have ≥ 2 seeds, both sides are samples: the test is
Welch's t from the two summaries (``scipy.stats.ttest_ind_from_stats``, unequal variances), two-sided, for
"the means differ", and the two one-sided tests (TOST, Schuirmann 1987) on the same Welch statistic for
"the means lie within ± margin of each other". ``margin`` is our choice: one accuracy point, about the
run-to-run spread of the stable NB201 searches (GDAS 93.51 ± 0.13, DARTS- 93.80 ± 0.40) and well under
the gaps the papers argue from (a collapse costs 40 points).

Where the paper prints one number (the best cell, a mean without spread, or a spread without n), the
only check left is whether that number lies in the 95% interval of our mean (:mod:`.intervals`), widened
by the papers' rounding.

Both sides with no spread (every run found the same cell) is not a test: the means are equal or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

WELCH, INTERVAL, NO_TEST = "welch", "interval", "none"
ALPHA = 0.05  # our choice: the usual level; printed with every verdict
EQUIVALENCE_MARGIN = 1.0  # our choice, in accuracy points (see the module docstring)
ROUNDING = 0.01  # the papers print two decimals


@dataclass(frozen=True)
class Verdict:
    """``test``: welch / interval / none. ``p_differ``: Welch's two-sided p; ``p_equivalent``: the TOST p
    for |difference| < margin (both NaN unless Welch ran). ``inside``: the interval check's answer (None
    unless it ran, or when no spread on either side). ``text``: one short phrase for a table."""

    test: str
    p_differ: float
    p_equivalent: float
    inside: bool | None
    text: str
    margin: float = EQUIVALENCE_MARGIN


def welch_from_summaries(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int,
                         margin: float = EQUIVALENCE_MARGIN) -> tuple[float, float]:
    """(two-sided Welch p for mean1 ≠ mean2, TOST p for |mean1 − mean2| < margin). NaN when both stds
    are 0 (no standard error)."""
    v1, v2 = std1 ** 2 / n1, std2 ** 2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return math.nan, math.nan
    p_differ = float(stats.ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2, equal_var=False).pvalue)
    # Welch–Satterthwaite degrees of freedom (a side with no spread contributes no variance term)
    df = (v1 + v2) ** 2 / sum(v ** 2 / (n - 1) for v, n in ((v1, n1), (v2, n2)) if v > 0)
    d = mean1 - mean2
    p_above_low = stats.t.sf((d + margin) / se, df)  # H0: d ≤ −margin
    p_below_high = stats.t.cdf((d - margin) / se, df)  # H0: d ≥ +margin
    return p_differ, float(max(p_above_low, p_below_high))


def verdict(ours_mean: float, ours_std: float, ours_n: int, ci_low: float, ci_high: float,
            pub_mean: float, pub_std: float | None, pub_n: int | None,
            margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA) -> Verdict:
    """Our seeds (mean, sample std, n, 95% interval of the mean) against one published cell."""
    if ours_n < 2:
        return Verdict(NO_TEST, math.nan, math.nan, None, "one seed: no test" if ours_n == 1 else "", margin)
    if pub_std is not None and pub_n is not None and pub_n >= 2:
        if ours_std == 0 and pub_std == 0:
            same = abs(ours_mean - pub_mean) <= ROUNDING
            return Verdict(NO_TEST, math.nan, math.nan, same,
                           "same cell every run" if same else "no spread on either side: differ", margin)
        p, p_eq = welch_from_summaries(ours_mean, ours_std, ours_n, pub_mean, pub_std, pub_n, margin)
        if p < alpha:
            word = f"differ (Welch p={p:.3f})"
            if p_eq < alpha:
                word += f", by less than ±{margin:g} (TOST p={p_eq:.3f})"
        elif p_eq < alpha:
            word = f"within ±{margin:g} (TOST p={p_eq:.3f}; Welch p={p:.2f})"
        else:
            word = f"inconclusive (Welch p={p:.2f}, TOST p={p_eq:.2f})"
        return Verdict(WELCH, p, p_eq, None, word, margin)
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return Verdict(NO_TEST, math.nan, math.nan, None, "", margin)
    inside = bool(ci_low - ROUNDING <= pub_mean <= ci_high + ROUNDING)
    why = "n not printed" if pub_std is not None else "no spread printed"
    return Verdict(INTERVAL, math.nan, math.nan, inside,
                   f"{'inside' if inside else 'outside'} our 95% interval ({why})", margin)


def describe(margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA) -> str:
    """The rule, for a table's notes."""
    return (f"verdict: where the paper prints mean ± std over n runs, Welch's t from both summaries "
            f"(two-sided; 'differ' at p < {alpha:g}) and the two one-sided tests for a difference within "
            f"±{margin:g} points ('within ±{margin:g}', our choice of margin); where it prints one number, or "
            f"a spread without n, whether that number lies in our 95% interval ± {ROUNDING} (the papers' "
            f"rounding); 'inconclusive' means neither a difference nor an equivalence is shown at these n.")
