"""The verdict against a published mean ± std over n: Welch's t and TOST from summaries, checked against
the same tests on raw samples (scipy, statsmodels), and the fallbacks where the paper prints less."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind

from nasbench_stability.analysis.agreement import (EQUIVALENCE_MARGIN, INTERVAL, NO_TEST, WELCH, verdict,
                                                   welch_from_summaries)


def _summary(x):
    return float(np.mean(x)), float(np.std(x, ddof=1)), len(x)


@pytest.mark.parametrize("shift", [0.0, 0.4, 1.5, -2.0])
def test_welch_and_tost_from_summaries_equal_the_tests_on_the_samples(shift):
    rng = np.random.default_rng(7)
    ours, theirs = 93.5 + 0.3 * rng.standard_normal(5), 93.5 + shift + 0.5 * rng.standard_normal(4)
    p, p_eq = welch_from_summaries(*_summary(ours), *_summary(theirs))
    assert p == pytest.approx(stats.ttest_ind(ours, theirs, equal_var=False).pvalue, rel=1e-9)
    expected_eq = ttost_ind(ours, theirs, -EQUIVALENCE_MARGIN, EQUIVALENCE_MARGIN, usevar="unequal")[0]
    assert p_eq == pytest.approx(expected_eq, rel=1e-9)


def test_a_published_row_without_spread_still_gets_welch_from_our_side():
    # Single-DARTS prints 94.36 ± 0.00 over 5 runs: the standard error is ours alone
    p, p_eq = welch_from_summaries(93.6, 0.2, 5, 94.36, 0.0, 5)
    t = (93.6 - 94.36) / (0.2 / math.sqrt(5))
    assert p == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert p_eq == pytest.approx(stats.t.sf((93.6 - 94.36 + 1) / (0.2 / math.sqrt(5)), 4))


def test_the_verdicts_read_as_the_numbers_say():
    far = verdict(54.3, 0.5, 5, 53.7, 54.9, 93.76, 0.2, 5)
    assert far.test == WELCH and far.p_differ < 1e-6 and far.p_equivalent > 0.5 and far.text.startswith("differ")
    close = verdict(93.70, 0.10, 5, 93.58, 93.82, 93.75, 0.12, 5)
    assert close.p_differ > 0.05 and close.p_equivalent < 0.001 and close.text.startswith("within ±1")
    noisy = verdict(85.0, 8.0, 3, 65.1, 104.9, 86.0, 7.0, 3)
    assert noisy.text.startswith("inconclusive") and noisy.p_differ > 0.05 and noisy.p_equivalent > 0.05
    # a large n shows a small but real difference that is still inside the margin
    both = verdict(93.0, 0.1, 50, 92.97, 93.03, 93.3, 0.1, 50)
    assert both.text.startswith("differ") and "by less than ±1" in both.text


def test_where_the_paper_prints_less_the_interval_check_is_used_and_says_why():
    no_n = verdict(87.0, 1.0, 5, 85.8, 88.2, 87.66, 1.69, None)  # NB201's std, quoted without its n
    assert no_n.test == INTERVAL and no_n.inside and "n not printed" in no_n.text and math.isnan(no_n.p_differ)
    single = verdict(93.0, 0.1, 5, 92.9, 93.1, 94.36, None, None)
    assert single.test == INTERVAL and single.inside is False and "outside" in single.text
    # within the papers' rounding counts as inside
    assert verdict(93.0, 0.1, 5, 92.9, 93.1, 93.109, None, None).inside


def test_no_spread_on_either_side_and_one_seed_are_not_tests():
    same = verdict(54.30, 0.0, 5, 54.30, 54.30, 54.30, 0.0, 5)
    assert same.test == NO_TEST and same.inside and same.text == "same cell every run"
    other = verdict(93.76, 0.0, 5, 93.76, 93.76, 94.36, 0.0, 5)
    assert other.inside is False and "differ" in other.text
    one = verdict(93.0, math.nan, 1, math.nan, math.nan, 94.36, 0.0, 5)
    assert one.test == NO_TEST and one.text == "one seed: no test"
