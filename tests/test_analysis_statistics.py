"""Statistics across seeds against known answers: interval coverage, Wilson, Holm, Welch, Kaplan–Meier,
log-rank, the first-collapse event and its censoring, and the "too few seeds" rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nasbench_stability.analysis import (IntervalRule, PairwiseOptions, collapse_events, collapse_per_run, holm,
                                         kaplan_meier, logrank_tests, mean_interval, pairwise_display, pairwise_tests,
                                         survival_summary, wilson_interval)
from nasbench_stability.analysis.intervals import mean_intervals
from nasbench_stability.errors import ConfigError

ACC = "bench_cifar10_test_200"


def _coverage(n: int, draws: int, method: str, rule: IntervalRule) -> float:
    rng = np.random.default_rng(1)
    low, high, used = mean_intervals(list(rng.normal(5.0, 2.0, (draws, n))), rule, method)
    assert set(used) == {method}
    return float(np.mean((low <= 5.0) & (5.0 <= high)))


def test_bootstrap_interval_covers_the_mean_at_about_its_rate():
    draws = 1000
    covered = _coverage(30, draws, "bootstrap", IntervalRule(n_resamples=999))
    # the percentile bootstrap of a normal mean is the z interval with the ddof=0 spread: its coverage is
    # P(|t_29| ≤ 1.96·√(29/30)), a little under 95%
    expected = 2 * stats.t.cdf(stats.norm.ppf(0.975) * math.sqrt(29 / 30), 29) - 1
    assert 0.92 < expected < 0.95
    assert abs(covered - expected) <= 3 * math.sqrt(expected * (1 - expected) / draws)


def test_t_interval_covers_the_mean_at_its_stated_rate():
    draws = 1000
    covered = _coverage(10, draws, "t", IntervalRule())   # exact for normal data
    assert abs(covered - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / draws)


def test_interval_rule_t_from_five_seeds_bootstrap_below_none_for_one():
    values = [92.0, 93.0, 94.0, 95.0, 96.0]
    five = mean_interval(values)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert five.method == "t" and five.low == pytest.approx(94 - half) and five.high == pytest.approx(94 + half)
    two = mean_interval([92.0, 93.0])       # resampled means 92, 92.5, 93: the percentile interval is their range
    assert two.method == "bootstrap" and (two.low, two.high) == (92.0, 93.0)
    assert mean_interval([92.0, 93.0]) == two                       # the fixed random_state: the same every time
    assert mean_interval([93.0, 93.0, 93.0]).low == 93.0           # no spread, no width
    one = mean_interval([92.0, float("nan")])
    assert one.method == "none" and math.isnan(one.low) and one.n == 1
    batched_low, _, _ = mean_intervals([np.array([1.0, 4.0, 2.0]), np.array([7.0, 3.0, 9.0])])
    assert batched_low[1] == mean_interval([7.0, 3.0, 9.0]).low    # a group's interval does not depend on its batch


def test_wilson_interval_known_values():
    z = stats.norm.ppf(0.975)
    for k, n in ((1, 2), (0, 5), (3, 3)):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 5)[0] == pytest.approx(0.0) and wilson_interval(0, 5)[1] > 0.4   # not empty at 0/n
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_holm_on_a_fixed_list():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → 0.06 (step-down stays monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.02, float("nan"), 0.04])        # an untested pair is neither corrected nor counted
    assert math.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.04, 0.04])


def _finals(values: dict[str, list[float]]) -> pd.DataFrame:
    """One-epoch runs whose final cells score ``values`` (CIFAR-10 test)."""
    rows = [{"method": m, "seed": s, "run_dir": f"/runs/{m}-{s}", "epoch": 1, "epochs": 1, "status": "finished",
             "genotype": "g", "param_free_count": 0, ACC: v}
            for m, vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_pairwise_welch_difference_interval_and_too_few_seeds():
    a, b = [93.0, 93.5, 94.1, 93.2], [91.0, 92.4, 91.7]
    tests = pairwise_tests(_finals({"a": a, "b": b, "c": [90.0, 95.0]}), datasets=("cifar10",))
    ab = tests.set_index(["method_a", "method_b"]).loc[("a", "b")]
    # Welch by hand: t = Δ / √(s²a/na + s²b/nb) with Welch–Satterthwaite degrees of freedom
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    assert ab["difference"] == pytest.approx(np.mean(a) - np.mean(b)) and ab["statistic"] == pytest.approx(t)
    assert ab["p_value"] == pytest.approx(2 * stats.t.sf(t, dof))
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert (ab["ci_low"], ab["ci_high"]) == pytest.approx((ab["difference"] - half, ab["difference"] + half))
    assert ab["p_holm"] == pytest.approx(ab["p_value"])            # the only tested pair: Holm changes nothing
    assert (ab["n_a"], ab["n_b"], ab["test"]) == (4, 3, "Welch's t")
    shown = pairwise_display(tests, "cifar10")
    for pair in ("a − c", "b − c"):                                 # c has 2 seeds: words, not numbers
        assert set(shown.loc[pair].drop("seeds (A / B)")) == {"too few seeds"}
    assert shown.loc["a − c", "seeds (A / B)"] == "4 / 2"
    assert shown.loc["a − b", "difference (A − B)"] == f"{np.mean(a) - np.mean(b):+.2f}"


def test_pairwise_mann_whitney_and_bad_test_name():
    a, b = [93.0, 93.5, 94.1, 93.2], [91.0, 92.4, 91.7]
    tests = pairwise_tests(_finals({"a": a, "b": b}), datasets=("cifar10",), options=PairwiseOptions(test="mannwhitney"))
    row = tests.iloc[0]
    assert row["test"] == "Mann–Whitney U" and row["statistic"] == 12.0        # every a above every b
    assert row["p_value"] == pytest.approx(2 / math.comb(7, 3))                 # exact: 2 of 35 orderings as extreme
    assert row["ci_low"] > 0                                                    # bootstrap of the difference
    with pytest.raises(ConfigError, match="unknown test"):
        PairwiseOptions(test="anova")


def test_kaplan_meier_equals_the_hand_computed_estimate():
    # events at 2, 3, 3, 5; censored at 3, 4, 6 (one censored at 3 is still at risk at 3)
    events = pd.DataFrame({"method": "m", "time": [2, 3, 3, 5, 3, 4, 6],
                           "collapsed": [True, True, True, True, False, False, False]})
    curve = kaplan_meier(events)
    s2 = 6 / 7
    s3 = s2 * (1 - 2 / 6)
    s5 = s3 * (1 - 1 / 2)
    assert curve["epoch"].tolist() == [0, 2, 3, 4, 5, 6]
    assert curve["survival"].tolist() == pytest.approx([1, s2, s3, s3, s5, s5])
    assert curve["at_risk"].tolist() == [7, 7, 6, 3, 2, 1]
    assert curve["collapses"].tolist() == [0, 1, 2, 0, 1, 0] and curve["censored"].tolist() == [0, 0, 1, 1, 0, 1]
    summary = survival_summary(events).loc["m"]
    assert summary["median_epochs"] == 5 and summary["collapses"] == 4 and summary["censored"] == 3
    never = survival_summary(events.assign(collapsed=False)).loc["m"]
    assert math.isnan(never["median_epochs"]) and never["survival_end"] == 1.0


def test_logrank_equals_the_hand_computed_statistic():
    events = pd.DataFrame({"method": ["x", "x", "y", "y"], "time": [1, 2, 3, 3], "collapsed": [True, True, False, False]})
    # epoch 1: 4 at risk (2 of x), 1 event: E_x = 1/2, V = 1/4; epoch 2: 3 at risk (1 of x): E_x = 1/3, V = 2/9
    chi2 = (2 - 1 / 2 - 1 / 3) ** 2 / (1 / 4 + 2 / 9)
    row = logrank_tests(events, min_seeds=2).iloc[0]
    assert row["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1))
    assert logrank_tests(events).iloc[0]["note"] == "too few seeds"               # 2 runs each, default 3


def _run(method: str, seed: int, acc: list[float], pf: list[int], status: str = "finished", epochs: int | None = None):
    return pd.DataFrame({"method": method, "seed": seed, "run_dir": f"/runs/{method}-{seed}", "status": status,
                         "epochs": epochs or len(acc), "epoch": range(1, len(acc) + 1), ACC: acc,
                         "param_free_count": pf, "genotype": "g"})


def test_first_collapse_is_the_event_and_unfinished_runs_are_censored():
    df = pd.concat([
        _run("m", 0, [92.0, 93.0, 87.9, 88.0], [2, 2, 3, 3]),            # 5.1 below the best so far at epoch 3
        _run("m", 1, [92.0, 92.0, 92.0], [2, 5, 2]),                       # 5 param-free at 2, recovers after
        _run("m", 2, [92.0, 90.0, 89.0], [2, 3, 4], "running", 10),       # 3 of 10 epochs so far, no collapse
        _run("m", 3, [92.0, 91.0], [2, 2], "diverged", 10),               # stopped early, no collapse
    ], ignore_index=True)
    events = collapse_events(df).set_index("seed")
    assert events["time"].tolist() == [3, 2, 3, 2]
    assert events["collapsed"].tolist() == [True, True, False, False]
    assert events.loc[2, "censored_because"] == "running after 3 of 10 epochs"
    assert events.loc[3, "censored_because"] == "diverged after 2 of 10 epochs"
    # seed 1 recovered: not collapsed at its end, yet its first collapse is an event at epoch 2
    assert not collapse_per_run(df).set_index("seed").loc[1, "collapsed"]
    curve = kaplan_meier(collapse_events(df))
    assert curve.set_index("epoch")["survival"].tolist() == pytest.approx([1, 3 / 4, 3 / 4 * 1 / 2])


def test_epoch_curves_carry_each_epochs_interval_and_bands_draw_it():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from nasbench_stability.analysis import epoch_curves
    from nasbench_stability.plots.common import band

    df = pd.concat([_run("m", s, [90.0 + s, 91.0 + 2 * s], [2, 2]) for s in range(3)], ignore_index=True)
    curves = epoch_curves(df, ACC)
    for epoch, values in ((1, [90.0, 91.0, 92.0]), (2, [91.0, 93.0, 95.0])):
        row = curves[curves["epoch"] == epoch].iloc[0]
        ci = mean_interval(values)
        assert (row["ci_low"], row["ci_high"]) == (ci.low, ci.high) and ci.low < row["mean"] < ci.high
    for kind, low, high in (("ci", curves["ci_low"], curves["ci_high"]),
                            ("std", curves["mean"] - curves["std"], curves["mean"] + curves["std"])):
        ax = Figure().subplots()
        band(ax, curves, color="C0", kind=kind)
        ys = ax.collections[0].get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(low.min()) and ys.max() == pytest.approx(high.max())
    with pytest.raises(ConfigError, match="unknown band"):
        band(Figure().subplots(), curves, color="C0", kind="iqr")


def test_survival_figure_steps_down_at_collapses_and_ticks_censored_runs():
    from nasbench_stability.plots import make_plot

    df = pd.concat([
        _run("a", 0, [92.0, 93.0, 87.9, 88.0], [2, 2, 3, 3]),   # collapses at 3
        _run("a", 1, [92.0, 92.0, 92.0, 92.0], [2, 5, 5, 5]),   # collapses at 2
        _run("b", 0, [92.0, 92.0, 92.0, 92.0], [2, 2, 2, 2]),   # censored at 4
    ], ignore_index=True)
    ax = make_plot("survival", df).axes[0]
    lines = {tuple(line.get_xdata()): line.get_ydata() for line in ax.get_lines() if len(line.get_xdata())}
    assert list(lines[(0.0, 2.0, 3.0, 3.0)]) == pytest.approx([1, 0.5, 0, 0])      # method a: 1 → ½ → 0
    assert list(lines[(0.0, 4.0, 4.0)]) == pytest.approx([1, 1, 1])                # method b never collapses
    assert list(lines[(4.0,)]) == [1.0]                                             # its censoring tick
