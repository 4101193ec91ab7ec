"""The early-warning analysis on synthetic records with a known answer: one signal (λ_max) rises a known number
of epochs before each collapse, others are noise; the analysis must rank them, recover the lead, see nothing
beyond it, and read no epoch after the one it scores. Plus the report section and `nbs plot warning`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from nasbench_stability.analysis import CollapseCriteria, collapse_events
from nasbench_stability.analysis.warning import (INDICATOR_NAMES, INDICATORS, NOT_ENOUGH_RUNS, NOT_RECORDED, OK,
                                                 WarningOptions, control_threshold, early_warning, indicator_series,
                                                 indicator_values, lead_display, pair_matrix, stop_display,
                                                 warning_display)
from nasbench_stability.errors import ConfigError
from nasbench_stability.plots import NothingToPlotError, make_plot

ACC = "bench_cifar10_test_200"
EPOCHS = 30
LEAD = 6                                   # λ_max rises this many epochs before each collapse
COLLAPSE_AT = tuple(range(14, 26))         # 12 collapsing runs, one event epoch each
CONTROLS = 12
GOOD, COLLAPSED = 93.0, 80.0               # ground truth of the derived cell before / after the collapse


def run_records(name: str, seed: int, collapse_at: int | None, rng: np.random.Generator,
                epochs: int = EPOCHS, lead: int = LEAD) -> pd.DataFrame:
    """One run: collapses at ``collapse_at`` (5 parameter-free edges and a 13-point drop, so both parts of the
    criterion agree on the epoch) or never; λ_max is ~1 and jumps to ~3 from ``lead`` epochs before the
    collapse; gradient correlation and the train − valid gap are noise, the same in every run."""
    e = np.arange(1, epochs + 1)
    down = collapse_at is not None
    collapsed = (e >= collapse_at) if down else np.zeros(epochs, bool)
    warned = (e >= collapse_at - lead) if down else np.zeros(epochs, bool)
    return pd.DataFrame({
        "run": name, "run_dir": f"/runs/{name}", "method": name.rsplit("-", 1)[0], "seed": seed,
        "dataset": "cifar10", "epoch": e, "epochs": epochs, "status": "finished",
        "param_free_count": np.where(collapsed, 5, 2), ACC: np.where(collapsed, COLLAPSED, GOOD),
        "hessian_max": 1.0 + 0.05 * rng.standard_normal(epochs) + np.where(warned, 2.0, 0.0),
        "gc_cos_mean": rng.normal(0.3, 0.1, epochs),
        "train_acc": 60.0 + rng.normal(0, 2, epochs), "valid_acc": 55.0 + rng.normal(0, 2, epochs),
    })


def study(collapse_at=COLLAPSE_AT, controls: int = CONTROLS, seed: int = 0, **kw) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    runs = [run_records(f"bad-{i}", i, t, rng, **kw) for i, t in enumerate(collapse_at)]
    runs += [run_records(f"good-{i}", i, None, rng, **kw) for i in range(controls)]
    return pd.concat(runs, ignore_index=True).sample(frac=1.0, random_state=1)   # row order must not matter


@pytest.fixture(scope="module")
def result():
    return early_warning(study())


def auc(result, indicator: str, k: int) -> pd.Series:
    rows = result.auc[(result.auc["indicator"] == indicator) & (result.auc["k"] == k)]
    assert len(rows) == 1
    return rows.iloc[0]


# ---- the known answer ----------------------------------------------------------------------------------
def test_the_event_is_the_survival_analysis_event(result):
    events = result.events.set_index("run_dir")
    survival = collapse_events(study()).set_index("run_dir")
    pd.testing.assert_series_equal(events["time"], survival["time"])
    for i, t in enumerate(COLLAPSE_AT):
        assert events.loc[f"/runs/bad-{i}", "time"] == t and events.loc[f"/runs/bad-{i}", "role"] == "collapsing"
    assert (events["role"] == "control").sum() == CONTROLS and result.ok


def test_the_leading_signal_is_ranked_first_and_the_noise_is_at_chance(result):
    ranking = result.ranking(k=5)
    assert list(ranking["indicator"]) and set(ranking["indicator"]) == set(INDICATOR_NAMES)   # none dropped
    assert set(ranking["indicator"].iloc[:2]) == {"lambda_max", "lambda_ratio"}
    assert ranking["auc"].iloc[0] == 1.0
    for noise in ("gc_cos", "gc_trend", "gap"):
        row = auc(result, noise, 5)
        assert row["ci_low"] <= 0.5 <= row["ci_high"], (noise, row.to_dict())
        assert abs(row["auc"] - 0.5) < 0.25
    # the parameter-free count is the same (2) in every run until the collapse: all ties, exactly chance
    assert auc(result, "param_free", 5)["auc"] == 0.5 and auc(result, "param_free", 0)["auc"] == 1.0


def test_auc_against_k_recovers_the_lead_and_nothing_beyond_it(result):
    for k in range(0, LEAD + 1):                     # the rise is visible up to LEAD epochs ahead ...
        row = auc(result, "lambda_max", k)
        assert row["auc"] == 1.0 and row["n_cases"] == len(COLLAPSE_AT) and row["n_controls"] == CONTROLS, k
        assert row["n_pairs"] == len(COLLAPSE_AT) * CONTROLS
    for k in range(LEAD + 1, 11):                    # ... and not one epoch more (an off-by-one would show here)
        row = auc(result, "lambda_max", k)
        assert row["auc"] < 0.8 and row["ci_low"] <= 0.5 <= row["ci_high"], (k, row.to_dict())


def test_alarms_at_the_false_alarm_rate_give_the_lead_time(result):
    alarms = result.alarms.set_index("indicator")
    lam = alarms.loc["lambda_max"]
    assert lam["missed"] == 0 and lam["alarmed"] == len(COLLAPSE_AT) and lam["missed_fraction"] == 0.0
    assert lam["lead_median"] == lam["lead_min"] == LEAD
    assert lam["far_achieved"] <= 0.1 and lam["false_alarms"] == 1      # ⌊0.1 · 12⌋ controls may alarm
    assert 1.0 < lam["threshold"] < 2.0                                   # between the controls and the risen signal
    leads = result.leads[result.leads["indicator"] == "lambda_max"].set_index("run_dir")
    # the rise alarms every run exactly LEAD epochs ahead, unless its noise crossed the threshold earlier (as
    # the controls' noise may: a false alarm that happens to precede a collapse)
    for i, t in enumerate(COLLAPSE_AT):
        assert leads.loc[f"/runs/bad-{i}", "alarm_epoch"] <= t - LEAD
    assert (leads["lead"] == LEAD).sum() >= len(COLLAPSE_AT) - 2
    # the parameter-free count crosses the controls' (2) only at the collapse itself: no warning, every one missed
    pf = alarms.loc["param_free"]
    assert pf["threshold"] == 2.0 and pf["alarmed"] == 0 and pf["missed"] == len(COLLAPSE_AT)
    # a noise signal either misses collapses or, where it "warns", at no consistent lead
    gc = alarms.loc["gc_cos"]
    assert gc["missed"] > 0 or gc["lead_max"] - gc["lead_min"] > 2


def test_an_early_stop_on_the_leading_signal_returns_the_cell_before_the_collapse(result):
    stops = result.stops[result.stops["indicator"] == "lambda_max"]
    collapsing = stops[stops["role"] == "collapsing"]
    assert (collapsing["acc_stop"] == GOOD).all() and (collapsing["acc_final"] == COLLAPSED).all()
    assert (collapsing["acc_best"] == GOOD).all()
    summary = result.stop_summary.set_index(["indicator", "role"])
    assert summary.loc[("lambda_max", "collapsing"), "gain_mean"] == pytest.approx(GOOD - COLLAPSED)
    assert summary.loc[("lambda_max", "collapsing"), "regret_mean"] == 0.0
    assert summary.loc[("lambda_max", "control"), "stopped"] == 1      # its false alarm
    shown = stop_display(result)
    assert shown.loc["λ_max of the α-Hessian (last measured)", "collapsing: at stop"] == f"{GOOD:.2f}"


def test_trajectories_are_aligned_on_the_collapse(result):
    lam = result.trajectories[result.trajectories["indicator"] == "lambda_max"].set_index(["role", "offset"])
    assert lam.loc[("collapsing", -LEAD), "mean"] == pytest.approx(3.0, abs=0.1)
    assert lam.loc[("collapsing", -LEAD - 1), "mean"] == pytest.approx(1.0, abs=0.1)
    assert lam.loc[("control", -LEAD), "mean"] == pytest.approx(1.0, abs=0.1)
    assert lam.loc[("collapsing", 0), "n"] == len(COLLAPSE_AT) and lam.loc[("control", 0), "n"] == CONTROLS


# ---- definitions ------------------------------------------------------------------------------------------
def test_auc_is_mann_whitney_u_when_every_collapse_is_at_one_epoch():
    df = study(collapse_at=(20,) * 8, controls=9, seed=3)
    result = early_warning(df, options=WarningOptions(ks=(0, 3, 5)))
    series = {r: indicator_series(run) for r, run in df.groupby("run_dir")}
    for name, sign in (("gap", 1), ("gc_cos", -1)):
        for k in (3, 5):
            at = {r: sign * s.loc[s["epoch"] == 20 - k, name].iloc[0] for r, s in series.items()}
            cases = [v for r, v in at.items() if "bad" in r]
            controls = [v for r, v in at.items() if "good" in r]
            u = stats.mannwhitneyu(cases, controls).statistic
            assert auc(result, name, k)["auc"] == pytest.approx(u / (len(cases) * len(controls)))


def test_controls_censored_before_a_collapse_are_not_compared_with_it():
    rng = np.random.default_rng(0)
    df = pd.concat([run_records("bad-0", 0, 20, rng), run_records("good-0", 0, None, rng, epochs=18),
                    run_records("good-1", 1, None, rng)], ignore_index=True)
    wins, cases, controls = pair_matrix(early_warning_signals(df, "lambda_max"), 3)
    assert cases == ["/runs/bad-0"] and controls == ["/runs/good-0", "/runs/good-1"]
    assert math.isnan(wins[0, 0]) and wins[0, 1] == 1.0     # good-0 stopped at 18 < 20: not in the risk set


def early_warning_signals(df: pd.DataFrame, name: str):
    from nasbench_stability.analysis.warning import _signals

    events = collapse_events(df).assign(role=lambda e: np.where(e["collapsed"], "collapsing", "control"))
    return _signals(df, "run_dir", events, WarningOptions(), INDICATORS)[name]


def test_threshold_lets_at_most_the_false_alarm_rate_of_controls_alarm():
    maxima = np.array([3.0, 1.0, 2.0])
    assert control_threshold(maxima, 0.0) == 3.0              # alarm only above every control
    assert control_threshold(maxima, 0.34) == 2.0             # one of three may alarm (3 > 2)
    assert control_threshold(maxima, 0.99) == 1.0
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        WarningOptions(false_alarm_rate=1.0)
    with pytest.raises(ConfigError, match="ks"):
        WarningOptions(ks=(-1, 2))


def test_hessian_every_few_epochs_is_carried_and_the_darts_es_ratio_uses_trailing_windows():
    run = pd.DataFrame({"epoch": range(1, 16), "param_free_count": 2,
                        "hessian_max": [np.nan] * 4 + [1.0] + [np.nan] * 4 + [2.0] + [np.nan] * 4 + [4.0]})
    s = indicator_series(run).set_index("epoch")
    assert s.loc[1:4, "lambda_max"].isna().all() and (s.loc[5:9, "lambda_max"] == 1.0).all()
    assert s.loc[14, "lambda_max"] == 2.0 and s.loc[15, "lambda_max"] == 4.0
    # λ̄(t) = mean over (t − 5, t]; ratio = λ̄(t) / λ̄(t − 5): 2/1 at 10 and 12, 4/2 at 15, none before 10
    assert s.loc[10, "lambda_ratio"] == 2.0 and s.loc[12, "lambda_ratio"] == 2.0 and s.loc[15, "lambda_ratio"] == 2.0
    assert s.loc[1:9, "lambda_ratio"].isna().all()


def test_skip_share_and_gradient_advantage_read_the_skip_and_conv_columns():
    w = np.full((6, 5), 0.2)
    w[0] = [0.1, 0.6, 0.1, 0.1, 0.1]            # edge 0: skip 0.6; the others 0.2
    g = np.zeros((6, 5))
    g[:, 1], g[:, 2], g[:, 3] = -0.3, 0.1, 0.3   # skip's gradient −0.3, convs' mean 0.2: advantage 0.5
    run = pd.DataFrame({"epoch": [1], "param_free_count": [2], "op_weights": [w.ravel()], "op_grad": [g.ravel()]})
    s = indicator_series(run).iloc[0]
    assert s["skip_max"] == pytest.approx(0.6) and s["skip_mean"] == pytest.approx((0.6 + 5 * 0.2) / 6)
    assert s["skip_grad"] == pytest.approx(0.5)


# ---- no peeking ---------------------------------------------------------------------------------------------
def full_run(seed: int = 0, epochs: int = 20) -> pd.DataFrame:
    """Every signal an indicator reads, random, with the Hessian every 3rd epoch."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({
        "run_dir": "/runs/x", "method": "x", "seed": 0, "epoch": e, "param_free_count": rng.integers(0, 7, epochs),
        ACC: rng.uniform(80, 94, epochs), "hessian_max": np.where(e % 3 == 0, rng.uniform(0.1, 2, epochs), np.nan),
        "gc_cos_mean": rng.uniform(-1, 1, epochs), "train_acc": rng.uniform(0, 100, epochs),
        "valid_acc": rng.uniform(0, 100, epochs),
        "op_weights": list(rng.dirichlet(np.ones(5), size=(epochs, 6)).reshape(epochs, 30)),
        "op_grad": list(rng.normal(size=(epochs, 30))),
    })


SIGNALS = ("param_free_count", ACC, "hessian_max", "gc_cos_mean", "train_acc", "valid_acc")


def perturbed_after(run: pd.DataFrame, t: int, seed: int, columns=SIGNALS) -> pd.DataFrame:
    """The same run with ``columns`` (and the α matrices, where present) replaced at every epoch after t,
    and those rows shuffled."""
    rng = np.random.default_rng(seed)
    later = run["epoch"] > t
    out = run.copy()
    n = int(later.sum())
    for column in columns:
        out[column] = out[column].astype(float)
        out.loc[later, column] = rng.uniform(-50, 50, n)
    for column, scale in (("op_weights", 1.0), ("op_grad", 10.0)):
        if column in out:
            out.loc[later, column] = pd.Series(list(rng.uniform(0, scale, (n, 30))), index=out.index[later])
    return pd.concat([out[~later], out[later].sample(frac=1.0, random_state=seed)])


@pytest.mark.parametrize("t", [1, 4, 9, 15])
def test_no_epoch_after_t_changes_any_indicator_at_or_before_t(t):
    run = full_run()
    before = indicator_series(run)
    assert set(INDICATOR_NAMES) <= set(before.columns)
    assert before.drop(columns="epoch").notna().any().all()      # every indicator has values to compare
    for seed in range(3):
        after = indicator_series(perturbed_after(run, t, seed))
        pd.testing.assert_frame_equal(before[before["epoch"] <= t], after[after["epoch"] <= t])
        assert not after[after["epoch"] > t].equals(before[before["epoch"] > t])   # the perturbation bites


def test_the_auc_at_k_reads_nothing_after_k_epochs_before_each_collapse():
    """At k, a collapsing run is read at its event − k and the controls at the events − k of the collapsing runs:
    the signals after those epochs (not the event itself) may change at will."""
    df, k = study(seed=5), 5
    events = collapse_events(df).set_index("run_dir")["time"]
    last_read = max(COLLAPSE_AT) - k
    signals = ("hessian_max", "gc_cos_mean", "train_acc", "valid_acc")
    perturbed = pd.concat([perturbed_after(run, events[r] - k if "bad" in r else last_read, seed=i, columns=signals)
                           for i, (r, run) in enumerate(df.groupby("run_dir"))], ignore_index=True)
    assert (collapse_events(perturbed).set_index("run_dir")["time"] == events).all()
    options = WarningOptions(ks=tuple(range(k, 11)), report_k=k)
    a, b = early_warning(df, options=options), early_warning(perturbed, options=options)
    pd.testing.assert_frame_equal(a.auc, b.auc)
    assert not a.alarms.equals(b.alarms)          # what the alarms read (whole runs) did change


def test_indicator_values_is_long_and_tidy():
    long = indicator_values(study(collapse_at=(20,), controls=1))
    assert list(long.columns) == ["run_dir", "method", "seed", "epoch", "indicator", "value"]
    assert len(long) == 2 * EPOCHS * len(INDICATORS)


# ---- missing signals, too few runs -------------------------------------------------------------------------
def test_signals_not_recorded_are_listed_not_dropped(result):
    table = result.indicators.set_index("indicator")
    assert set(table.index) == set(INDICATOR_NAMES)
    for name in ("skip_max", "skip_mean", "skip_grad"):           # no op_weights / op_grad in these records
        assert table.loc[name, "status"] == NOT_RECORDED and table.loc[name, "runs_recorded"] == 0
        assert (result.auc.loc[result.auc["indicator"] == name, "status"] == NOT_RECORDED).all()
    ranking = result.ranking()
    assert list(ranking["indicator"].iloc[-3:]) == ["skip_max", "skip_mean", "skip_grad"]
    shown = warning_display(result)
    assert len(shown) == len(INDICATORS)
    assert shown.loc["skip's softmax share, max over edges", "AUC at k = 5 [95% CI]"] == NOT_RECORDED
    assert shown.loc["λ_max of the α-Hessian (last measured)", "AUC at k = 5 [95% CI]"].startswith("1.00")
    assert "skip's softmax share, max over edges" not in lead_display(result).index
    no_hessian = early_warning(study().drop(columns="hessian_max"))
    assert no_hessian.ok
    lam = no_hessian.indicators.set_index("indicator").loc[["lambda_max", "lambda_ratio"], "status"]
    assert (lam == NOT_RECORDED).all()
    assert no_hessian.ranking()["indicator"].iloc[0] not in ("lambda_max", "lambda_ratio")


@pytest.mark.parametrize("collapse_at, controls, counts", [((), 4, "0 collapsing and 4 control runs"),
                                                           ((10, 12), 0, "2 collapsing and 0 control runs")])
def test_too_few_runs_give_a_not_enough_runs_result(collapse_at, controls, counts):
    result = early_warning(study(collapse_at=collapse_at, controls=controls))
    assert not result.ok and result.status.startswith(NOT_ENOUGH_RUNS) and counts in result.status
    ranking = result.ranking()
    assert len(ranking) == len(INDICATORS) and ranking["auc"].isna().all()
    assert set(ranking["auc_status"]) == {NOT_ENOUGH_RUNS, NOT_RECORDED}
    shown = warning_display(result)
    assert set(shown["AUC at k = 5 [95% CI]"]) == {NOT_ENOUGH_RUNS, NOT_RECORDED}
    with pytest.raises(NothingToPlotError, match="not enough runs"):
        make_plot("warning", study(collapse_at=collapse_at, controls=controls))


def test_the_collapse_criteria_are_the_ones_passed():
    lenient = CollapseCriteria(collapsed_param_free_edges=6, drop_points=20.0)   # 5 edges and a 13-point drop pass
    result = early_warning(study(), lenient)
    assert not result.ok and "0 collapsing" in result.status


# ---- figure, report, CLI ---------------------------------------------------------------------------------
def test_figure_has_the_auc_panel_and_one_trajectory_panel_per_recorded_indicator(result):
    fig = make_plot("warning", study())
    recorded = int((result.indicators["status"] == OK).sum())
    assert len(fig.axes) == 1 + recorded
    auc_axis = fig.axes[0]
    assert len([line for line in auc_axis.get_lines() if len(line.get_xdata()) > 2]) == recorded
    assert "not recorded" in auc_axis.get_title() and "skip share, max" in auc_axis.get_title()


def write_runs(root: Path, collapse_at=(8, 9, 10), controls: int = 3, epochs: int = 12) -> Path:
    """Run directories as `nbs run` leaves them (config, status, one Parquet record per epoch)."""
    from nasbench_stability.engine.records import write_record

    df = study(collapse_at=collapse_at, controls=controls, epochs=epochs)
    for name, run in df.groupby("run"):
        run_dir = root / name
        run_dir.mkdir(parents=True)
        method = str(run["method"].iloc[0])
        (run_dir / "config.json").write_text(json.dumps({"method": method, "dataset": "cifar10", "preset": "smoke",
                                                         "seed": int(run["seed"].iloc[0]), "epochs": epochs}))
        (run_dir / "status.json").write_text(json.dumps({"state": "finished", "epochs_done": epochs}))
        for row in run.sort_values("epoch").to_dict("records"):
            row.pop("run_dir"), row.pop("status")
            row["genotype"] = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
            row["gc_mean"] = row["gc_cos_mean"] / 100          # the gradient-correlation figure draws both
            write_record(run_dir, int(row["epoch"]), row)
    return root


def test_the_report_has_an_early_warning_section(tmp_path):
    from nasbench_stability.report import build_report

    files = build_report(write_runs(tmp_path / "runs"), tmp_path / "report", figure_formats=("png",))
    page = files.html.read_text(encoding="utf-8")
    assert '<section id="warning"><h2>Early warning</h2>' in page and 'href="#warning"' in page
    assert 'id="table-warning"' in page and 'id="table-warning-leads"' in page and 'id="figure-warning"' in page
    assert page.count("data:image/png;base64,") == len(files.figures)
    assert "warning" in [f.key for f in files.figures] and (tmp_path / "report" / "figures" / "warning.png").exists()
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "### Early warning: indicators ranked by AUC 5 epochs before the collapse" in markdown
    assert "| λ_max of the α-Hessian (last measured) | higher values | 1.00" in markdown
    assert "| skip's softmax share, max over edges | higher values | not recorded |" in markdown
    assert r"$\lambda$\_max of the $\alpha$-Hessian" in files.latex.read_text(encoding="utf-8")


@pytest.fixture
def cli():
    from nasbench_stability.cli.analysis_commands import plot, report
    from nasbench_stability.cli.main import NbsGroup

    group = NbsGroup(name="nbs")
    group.add_command(report)
    group.add_command(plot)
    return group


def test_nbs_plot_warning_writes_the_figure_or_says_why_not(cli, tmp_path):
    runs = write_runs(tmp_path / "runs", collapse_at=(6, 8), controls=2, epochs=10)
    out = tmp_path / "w.png"
    result = CliRunner().invoke(cli, ["plot", "warning", str(runs), "--out", str(out), "--band", "std"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
    calm = write_runs(tmp_path / "calm", collapse_at=(), controls=2, epochs=6)
    result = CliRunner().invoke(cli, ["plot", "warning", str(calm), "--out", str(tmp_path / "x.png")])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("nbs: error:") and "not enough runs: 0 collapsing and 2 control runs" in lines[0]
    assert not (tmp_path / "x.png").exists()


# ---- pooled and within-method AUC ----------------------------------------------------------------------
def within(result, indicator: str, k: int) -> pd.Series:
    rows = result.auc_within[(result.auc_within["indicator"] == indicator) & (result.auc_within["k"] == k)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_no_pairs_within_a_method_when_no_method_has_both_kinds(result):
    # the synthetic study's collapsing runs are all "bad", its controls all "good": pooled, λ_max ranks first;
    # within a method there is nothing to compare
    assert auc(result, "lambda_max", 5)["auc"] > 0.95
    row = within(result, "lambda_max", 5)
    assert row["status"] != OK and row["n_pairs"] == 0


def test_a_signal_that_only_tells_methods_apart_scores_pooled_but_not_within_a_method():
    """Method "a" has collapsing runs and controls, method "b" only controls whose gradient correlation is high
    from the start (as single-level methods' is): pooled, low correlation looks like a warning; within "a" it is
    noise, while λ_max, which leads every collapse, still scores 1."""
    rng = np.random.default_rng(3)
    runs = [run_records(f"a-{i}", i, t, rng) for i, t in enumerate(range(14, 22))]
    runs += [run_records(f"a-{i}", i, None, rng) for i in range(8, 14)]
    runs += [run_records(f"b-{i}", i, None, rng).assign(gc_cos_mean=lambda d: d["gc_cos_mean"] + 0.6)
             for i in range(8)]
    res = early_warning(pd.concat(runs, ignore_index=True))
    assert auc(res, "gc_cos", 5)["auc"] > 0.7                    # flattered by the pooled controls of "b"
    gc = within(res, "gc_cos", 5)
    assert gc["status"] == OK and gc["n_pairs"] == 8 * 6 and 0.25 < gc["auc"] < 0.75
    lam = within(res, "lambda_max", 5)
    assert lam["auc"] == 1.0 and lam["n_pairs"] == 8 * 6
    shown = warning_display(res)
    column = "AUC within a method [95% CI] (pairs)"
    assert shown.loc[res.indicators.set_index("indicator").loc["lambda_max", "label"], column].startswith("1.00 [")
    assert shown[column].str.endswith("(48)").sum() >= 2


# ---- against the naive baseline, pair for pair -----------------------------------------------------------
def versus(result, indicator: str, k: int) -> pd.Series:
    rows = result.versus_baseline[(result.versus_baseline["indicator"] == indicator)
                                  & (result.versus_baseline["k"] == k)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_leading_signal_beats_the_baseline_and_noise_does_not(result):
    """At k = 5 the parameter-free count is all ties (AUC ½) and λ_max orders every pair (AUC 1): +0.5, with an
    interval above 0; noise's interval covers 0; at k = 0 the count defines the event and nothing beats it."""
    lam = versus(result, "lambda_max", 5)
    assert lam["baseline"] == "param_free" and lam["difference"] == pytest.approx(0.5)
    assert lam["ci_low"] > 0 and lam["n_pairs"] == len(COLLAPSE_AT) * CONTROLS
    for noise in ("gc_cos", "gap"):
        row = versus(result, noise, 5)
        assert row["ci_low"] <= 0 <= row["ci_high"], (noise, row.to_dict())
    assert versus(result, "lambda_max", 0)["difference"] == 0.0          # both 1 at the event itself
    assert versus(result, "gap", 0)["ci_high"] < 0                        # noise loses to the definition
    base = versus(result, "param_free", 5)
    assert base["difference"] == 0.0 and base["ci_low"] == base["ci_high"] == 0.0


def test_the_difference_is_paired_the_same_runs_resampled_for_both():
    """Two indicators that order the pairs the same way differ by exactly 0 in every resample: the interval is
    [0, 0]. Resampling each on its own would give an interval as wide as the AUC's own."""
    from nasbench_stability.analysis.pair_auc import Resampling, bootstrap_auc, paired_difference

    rng = np.random.default_rng(0)
    wins = rng.choice([0.0, 0.5, 1.0], size=(8, 7))
    wins[0, 0] = np.nan                                        # a pair that is not comparable stays out
    same = paired_difference(wins, wins.copy(), Resampling(500, 0.95, 0))
    assert same == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n_pairs": 55}
    low, high = bootstrap_auc(wins, Resampling(500, 0.95, 0))
    assert high - low > 0.1
    # only the pairs comparable for both count: a baseline missing row 1 drops that row from both
    partial = wins.copy()
    partial[1, :] = np.nan
    flipped = paired_difference(wins, np.where(np.isnan(partial), np.nan, 1.0 - wins), Resampling(500, 0.95, 0))
    keep = np.isfinite(partial)
    assert flipped["n_pairs"] == int(keep.sum())
    assert flipped["difference"] == pytest.approx(2 * wins[keep].mean() - 1)


def test_the_report_column_names_the_baseline_and_an_unknown_baseline_is_one_line(result):
    shown = warning_display(result)
    column = "AUC − param-free edges [95% CI]"
    labels = result.indicators.set_index("indicator")["label"]
    assert shown.loc[labels["param_free"], column] == "(baseline)"
    assert shown.loc[labels["lambda_max"], column].startswith("+0.50 [+")
    with pytest.raises(ConfigError, match="baseline 'nope' is not one of the indicators"):
        early_warning(study(), options=WarningOptions(baseline="nope"))
    other = early_warning(study(), options=WarningOptions(baseline="lambda_max"))
    assert versus(other, "param_free", 5)["difference"] == pytest.approx(-0.5)
