"""`nbs reproduce`: the bundled published numbers (checked against each other and the benchmark), the
experiments' definitions, and one experiment end to end at smoke size, its report recomputed from
the records."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nasbench_stability.bench.table import Benchmark
from nasbench_stability.errors import ConfigError
from nasbench_stability.reproduce.experiments import EXPERIMENTS, get_experiment
from nasbench_stability.reproduce.published import PublishedRef, load_published, published_cell
from nasbench_stability.reproduce.runner import make_plan

from test_engine_runs import assert_one_line_error

TEST_COLUMNS = {"cifar10": "cifar10_test_200", "cifar100": "cifar100_test_200",
                "ImageNet16-120": "ImageNet16-120_test_200"}
# printed rows with std 0 whose numbers no single cell of our table has (NATS-Bench and NB201 v1.0
# differ in the second decimal in places); each was looked at by hand
NO_SINGLE_CELL = {("single-darts", "5", "Single-DARTS", "act=sigmoid*"): "93.76 / 70.71: no cell has both"}


@pytest.fixture(scope="module")
def bench(bench_path) -> Benchmark:
    return Benchmark.load(bench_path)


# ---- the published table -----------------------------------------------------------------------
def test_rows_printed_with_std_zero_are_one_cell_of_the_benchmark(bench):
    """A ±0 row means every seed found one cell: some NB201 cell must have all its test numbers
    (to 0.01) — the all-skip cell for DARTS, 94.36/73.51/46.34 for Single-DARTS. A mistyped or
    shifted number fails here (the shifted '39.77 | 54.30' of Table 5 would)."""
    df = load_published()
    zero = df[(df["kind"] == "mean_std") & (df["std"] == 0) & (df["split"] == "test")]
    frame = bench.frame
    checked = 0
    for key, group in zero.groupby(["paper", "table", "row", "setting"]):
        match = np.ones(len(frame), dtype=bool)
        for r in group.itertuples():
            match &= np.abs(frame[TEST_COLUMNS[r.dataset]].to_numpy() - r.value) <= 0.011
        if key in NO_SINGLE_CELL:
            assert not match.any(), f"{key} now matches a cell: drop it from NO_SINGLE_CELL"
            continue
        assert match.any(), f"no NB201 cell has the test accuracies of {key}: {group[['dataset', 'value']].values}"
        checked += 1
    assert checked >= 12
    all_skip = bench.lookup_one("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    darts = published_cell(PublishedRef("single-darts", "1", "DARTS"), "cifar10", "test")
    assert darts.mean == pytest.approx(all_skip["cifar10_test_200"], abs=0.01) and darts.std == 0


def test_printed_averages_are_the_means_of_the_printed_trials():
    df = load_published()
    trials = df[df["kind"] == "trial"]
    for (row,), group in trials.groupby(["row"]):
        printed = df[(df["row"] == row) & (df["kind"] == "mean") & (df["dataset"] == "cifar10")]["value"]
        assert len(printed) == 1 and len(group) in (2, 3)   # MergeNAS prints three trials, the darts-pt author two
        assert group["value"].mean() == pytest.approx(float(printed.iloc[0]), abs=0.006), row
    cell = published_cell(PublishedRef("mergenas", "2", "MergeNAS-V2 (wd=1e-2)"), "cifar10", "test")
    assert cell.trials == (90.65, 90.65, 94.36) and cell.std_computed
    assert cell.std == pytest.approx(np.std([90.65, 90.65, 94.36], ddof=1))


def test_entries_the_papers_print_twice_agree():
    """Single-DARTS prints one configuration under several names (Table 4 row 1 = Table 5's DARTS
    softmax = lr 0.005 = SGD; Table 4 row 3 = Single-DARTS softmax): the transcription must agree."""
    def value(table, row, setting, dataset):
        return published_cell(PublishedRef("single-darts", table, row, setting), dataset, "test").display()

    for ds in ("cifar10", "cifar100"):
        darts = {value("5", "DARTS", s, ds) for s in ("lr=0.005", "act=softmax", "opt=SGD")}
        darts.add(value("4", "different subsets, different batches", "", ds))
        assert len(darts) == 1
        assert value("5", "Single-DARTS", "act=softmax", ds) == value("4", "same subset, same batch", "", ds)
        single = {value("5", "Single-DARTS", s, ds) for s in ("lr=0.005", "act=sigmoid", "opt=SGD")}
        assert single == {value("1", "Single-DARTS", "", ds)}


def test_what_the_papers_do_not_print_is_marked_and_attributions_say_who_printed_them():
    # Single-DARTS Table 5's DARTS lr=0.025 CIFAR-100 cell is lost in the text: the number is ours
    inferred = published_cell(PublishedRef("single-darts", "5", "DARTS", "lr=0.025"), "cifar100", "test")
    assert inferred.inferred and inferred.display() == "15.61 ± 0.00 (inferred, not printed)"
    printed = published_cell(PublishedRef("single-darts", "5", "DARTS", "lr=0.025"), "cifar10", "test")
    assert not printed.inferred and printed.display() == "54.30 ± 0.00"
    # MergeNAS' baseline rows match no NB201 print: they are MergeNAS' numbers, not NB201's
    df = load_published()
    merge = df[(df["paper"] == "mergenas") & df["row"].isin(["RS", "REA", "REINFORCE", "BOHB", "ENAS", "RSPS"])]
    assert len(merge) and merge["note"].str.startswith("as MergeNAS prints them").all()
    assert not df["note"].str.contains("quoted by MergeNAS from NB201").any()
    # a mean ± std without n gets the interval check, never a Welch test with an invented n
    gdas = published_cell(PublishedRef("single-darts", "1", "GDAS"), "cifar10", "test")
    assert gdas.std == 0.13 and gdas.seeds is None and "no n" in gdas.note


# ---- the experiments -----------------------------------------------------------------------------
def test_every_experiment_row_has_published_numbers_and_every_run_resolves():
    for exp in EXPERIMENTS.values():
        assert exp.rows and exp.seeds >= 3
        for row in exp.rows:
            cells = [published_cell(row.published, d, s) for d, s in exp.columns]
            assert any(c is not None for c in cells), (exp.name, row.label)
            assert (row.kind == "unavailable") == bool(row.unavailable)
        # a mistyped option or value fails here, not after an hour on a GPU
        configs = make_plan(exp, seeds=1, preset="smoke", device="cpu", epochs=None, out=Path("x")).configs()
        for key, row in exp.runs().items():
            options = dict(configs[key][0].method_options)
            assert configs[key][0].method == row.method
            for k, v in row.settings:
                assert str(options[k]) == v or float(options[k]) == float(v), (exp.name, row.label, k)
        labels = [r.label for r in exp.rows]
        assert len(labels) == len(set(labels)), exp.name


def test_rows_with_one_configuration_share_their_runs():
    t5 = get_experiment("single-darts-table5")
    keys = {r.label: r.run_key for r in t5.run_rows()}
    assert keys["DARTS (lr=0.005)"] == keys["DARTS (act=softmax)"] == keys["DARTS (opt=SGD)"]
    assert keys["DARTS (lr=0.005)"] != keys["DARTS (lr=0.001)"]
    assert len(t5.runs()) == 10 and len(t5.run_rows()) == 14


def test_a_row_setting_cannot_be_overridden_by_set():
    plan = make_plan(get_experiment("single-darts-table4"), seeds=1, preset="smoke", device="cpu", epochs=1,
                     out=Path("x"), extra={"mode": "bilevel"})
    with pytest.raises(ConfigError, match="sets mode itself"):
        plan.configs()


# ---- end to end ------------------------------------------------------------------------------------
TINY_SETS = ["--set", "data_subset=16", "--set", "batch_size=8", "--set", "eval_batches=1"]


@pytest.fixture(scope="module")
def reproduced(cli, tmp_path_factory) -> Path:
    """single-darts-table1's Single-DARTS row at a tiny size (in this process: the command is the same and
    a new process would spend seconds importing torch)."""
    out = tmp_path_factory.mktemp("reproduce") / "t1"
    proc = cli("reproduce", "single-darts-table1", "--preset", "smoke", "--seeds", "2", "--epochs", "2",
               "--row", "Single-DARTS", "--out", str(out), "--quiet", *TINY_SETS)
    assert proc.returncode == 0 and "wrote" in proc.stdout, proc.stderr
    return out


@pytest.mark.slow
def test_a_report_from_runs_made_elsewhere_matches_them_by_config(reproduced, cli, tmp_path):
    """--from-runs: the same runs moved into a sweep-like folder give the same numbers; runs of another
    setting are not taken, and the folder cannot be rewritten as if its runs were its own."""
    sweep = tmp_path / "my-sweep"
    shutil.copytree(reproduced / "runs" / "single-darts", sweep / "some=grid-point")
    (sweep / "other").mkdir()
    shutil.copytree(reproduced / "runs" / "single-darts" / "single-darts-cifar10-seed0",
                    sweep / "other" / "stranger")   # the same run again: matched twice would count it twice
    config = json.loads((sweep / "other" / "stranger" / "config.json").read_text())
    config["method_options"]["w_lr"] = 0.5                                   # ... but made with another setting
    (sweep / "other" / "stranger" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "report"
    args = ("reproduce", "single-darts-table1", "--preset", "smoke", "--seeds", "2", "--epochs", "2",
            "--row", "Single-DARTS", "--out", str(out), *TINY_SETS)
    proc = cli(*args, "--from-runs", str(sweep))
    assert proc.returncode == 0, proc.stderr
    mine, theirs = pd.read_csv(out / "comparison.csv"), pd.read_csv(reproduced / "comparison.csv")
    pd.testing.assert_frame_equal(mine, theirs)
    report = (out / "REPORT.md").read_text()
    assert "These runs were made elsewhere (`my-sweep/`, 2 run directories)" in report
    # where the runs lie is named, not its path (the --out the user gave is theirs to show)
    assert str(sweep) not in report and str(sweep) not in (out / "experiment.json").read_text()
    assert json.loads((out / "experiment.json").read_text())["argv"][0] == "nbs"
    from nasbench_stability.reproduce.runner import _shown_argv
    assert _shown_argv(["x", "--from-runs", str(sweep), f"--from-runs={sweep}"]) == [
        "nbs", "x", "--from-runs", "my-sweep", "--from-runs=my-sweep"]
    refused = cli("reproduce", "single-darts-table1", "--report-only", "--out", str(out))
    assert refused.returncode == 2 and "rewrite it with --from-runs DIR" in refused.stderr
    other = cli("reproduce", "single-darts-table1", "--preset", "smoke", "--seeds", "2", "--epochs", "1",
                "--row", "Single-DARTS", "--out", str(tmp_path / "none"), "--from-runs", str(sweep), *TINY_SETS)
    assert other.returncode == 2 and "no run under" in other.stderr and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_runs_from_several_folders_are_one_report_and_a_run_found_twice_is_refused(reproduced, cli, tmp_path):
    """--from-runs is repeatable (one study's DARTS runs, another's stabilizers): seeds split over two folders give
    the numbers of one folder holding both; the same seed's run in both folders would count twice and is refused."""
    runs = reproduced / "runs" / "single-darts"
    for seed, name in ((0, "study-a"), (1, "study-b")):
        shutil.copytree(runs / f"single-darts-cifar10-seed{seed}", tmp_path / name / f"single-darts-cifar10-seed{seed}")
    args = ("reproduce", "single-darts-table1", "--preset", "smoke", "--seeds", "2", "--epochs", "2",
            "--row", "Single-DARTS", *TINY_SETS)
    out = tmp_path / "report"
    proc = cli(*args, "--out", str(out), "--from-runs", str(tmp_path / "study-a"), "--from-runs", str(tmp_path / "study-b"))
    assert proc.returncode == 0, proc.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out / "comparison.csv"), pd.read_csv(reproduced / "comparison.csv"))
    assert "These runs were made elsewhere (`study-a/`, `study-b/`, 2 run directories)" in (out / "REPORT.md").read_text()
    # a folder given twice, or one inside another, is read once
    again = cli(*args, "--out", str(tmp_path / "again"), "--from-runs", str(tmp_path), "--from-runs",
                str(tmp_path / "study-a"))
    assert again.returncode == 0, again.stderr
    shutil.copytree(runs / "single-darts-cifar10-seed0", tmp_path / "study-b" / "copy-of-seed0")
    twice = cli(*args, "--out", str(tmp_path / "twice"), "--from-runs", str(tmp_path / "study-a"), "--from-runs",
                str(tmp_path / "study-b"))
    assert twice.returncode == 2 and twice.stderr.count("\n") == 1, twice.stderr
    assert "are the same run (seed 0 of" in twice.stderr and not (tmp_path / "twice").exists()


@pytest.mark.slow
def test_smoke_experiment_report_holds_published_numbers_and_ours_from_the_records(reproduced, bench):
    report = (reproduced / "REPORT.md").read_text()
    lines = pd.read_csv(reproduced / "comparison.csv")
    # ours, recomputed from the run records: each seed's last epoch, looked up in the benchmark
    finals = []
    for seed in (0, 1):
        df = pd.read_parquet(reproduced / "runs" / "single-darts" / f"single-darts-cifar10-seed{seed}" / "records")
        last = df.sort_values("epoch").iloc[-1]
        assert last["epoch"] == 2
        finals.append(bench.lookup_one(last["genotype"])["cifar10_test_200"])
    line = lines[(lines["row"] == "Single-DARTS") & (lines["column"] == "cifar10_test_200")].iloc[0]
    assert line["n"] == 2
    assert line["mean"] == pytest.approx(np.mean(finals)) and line["std"] == pytest.approx(np.std(finals, ddof=1))
    assert line["published"] == 94.36 and line["difference"] == pytest.approx(np.mean(finals) - 94.36)
    # "inside" asks the 95% interval of our mean; with two seeds the bootstrap's is [min, max]
    assert (line["ci_low"], line["ci_high"]) == pytest.approx((min(finals), max(finals)))
    # the paper prints 94.36 ± 0.00 over 5 runs: Welch's t from both summaries, not the interval
    assert line["published_seeds"] == 5
    if np.std(finals) > 0:
        expected = stats.ttest_ind_from_stats(np.mean(finals), np.std(finals, ddof=1), 2, 94.36, 0.0, 5,
                                              equal_var=False).pvalue
        assert line["verdict_test"] == "welch" and line["p_differ"] == pytest.approx(expected)
        assert f"Welch p={expected:.2f}" in report or f"Welch p={expected:.3f}" in report
    else:
        assert line["verdict_test"] == "none" and bool(line["published_inside_interval"]) == (finals[0] == 94.36)
    assert f"{np.mean(finals):.2f} ± {np.std(finals, ddof=1):.2f} [{min(finals):.2f}, {max(finals):.2f}] (n=2" in report
    assert "| ours − published | verdict |" in report and "Welch's t from both summaries" in report
    # the benchmark row is the table's best cell; rows not run are listed with the reason, not dropped
    best = lines[(lines["row"] == "Optimal") & (lines["column"] == "cifar10_test_200")].iloc[0]
    assert best["mean"] == pytest.approx(bench.optimum("cifar10_test_200")[0])
    for row in ("RSPS", "DARTS", "GDAS", "SETN", "ENAS", "CDARTS", "DARTS-"):
        assert f"| {row} | not run this time" in report
    assert "| DARTS | not run this time" in report and "87.66 ± 1.69" in report and "94.36 ± 0.00" in report
    assert "This is not the paper's setting" in report and "preset `smoke`" in report
    assert "**Epochs cut**: single-darts: smoke preset: epochs cut to" in report
    assert "BN running statistics on" in report and "device cpu" in report
    assert "nbs run --method single-darts --seeds 2 --preset smoke --device cpu" in report
    assert (reproduced / "figures" / "collapse.png").stat().st_size > 1000
    manifest = json.loads((reproduced / "experiment.json").read_text())
    assert manifest["rows"] == ["Single-DARTS"] and manifest["set"]["batch_size"] == "8"


@pytest.mark.slow
def test_rerunning_resumes_and_report_only_rewrites_from_the_records(reproduced, cli):
    before = pd.read_csv(reproduced / "comparison.csv")
    stamps = {p: p.stat().st_mtime_ns for p in (reproduced / "runs").rglob("*.parquet")}
    proc = cli("reproduce", "single-darts-table1", "--preset", "smoke", "--seeds", "2", "--epochs", "2",
               "--row", "Single-DARTS", "--out", str(reproduced), "--quiet", *TINY_SETS)
    assert proc.returncode == 0 and "already" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in (reproduced / "runs").rglob("*.parquet")} == stamps
    (reproduced / "REPORT.md").unlink()
    assert cli("reproduce", "single-darts-table1", "--report-only", "--out", str(reproduced)).returncode == 0
    after = pd.read_csv(reproduced / "comparison.csv")
    pd.testing.assert_frame_equal(before, after)
    assert "Single-DARTS" in (reproduced / "REPORT.md").read_text()


def test_reproduce_list_names_every_experiment_with_runs_and_cost(cli):
    proc = cli("reproduce", "--list")
    assert proc.returncode == 0
    for name in ("single-darts-table1", "single-darts-table4", "single-darts-table5", "mergenas-table2",
                 "darts-collapse"):
        assert f"{name}: " in proc.stdout
    assert "darts-v2 --set w_weight_decay=0.02" in proc.stdout
    assert proc.stdout.count("  paper on one GPU: expected wall time") == len(EXPERIMENTS)
    assert proc.stdout.count("on this machine (cpu): expected wall time") == len(EXPERIMENTS)
    lines = proc.stdout.splitlines()
    collapse = lines[next(i for i, line in enumerate(lines) if line.startswith("darts-collapse: ")):]
    gpu = next(line for line in collapse if line.startswith("  paper on one GPU"))
    # darts-v1's rate is measured on the H100, darts-v2's scaled from it by their CPU ratio; 3 seeds × 50 epochs each
    assert "≈" in gpu and "6 runs, 300 epochs" in gpu and "darts-v2 scaled from darts-v1's rate" in gpu
    cpu = next(line for line in collapse if "on this machine (cpu)" in line)
    assert "≈" in cpu and "6 runs, 300 epochs (darts-v1 24 s, darts-v2 59 s per epoch)" in cpu


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown experiment 'nope'"),
    (["darts-collapse", "--row", "GDAS"], "darts-collapse has no run row 'GDAS'"),
    (["darts-collapse", "--seeds", "0"], "--seeds must be between 1 and 1000"),
    (["darts-collapse", "--preset", "huge"], "unknown preset"),
    (["single-darts-table4", "--set", "mode=bilevel", "--preset", "smoke"], "sets mode itself"),
    ([], "name an experiment"),
])
def test_bad_reproduce_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    out = tmp_path / "out"
    proc = cli("reproduce", *args, *(["--out", str(out)] if args else []))
    assert_one_line_error(proc, message)
    assert not out.exists()


def test_report_only_without_an_experiment_folder_and_out_in_a_file(cli, tmp_path):
    assert_one_line_error(cli("reproduce", "darts-collapse", "--report-only", "--out", str(tmp_path)),
                          "not an `nbs reproduce` folder")
    (tmp_path / "experiment.json").write_text("{not json")
    assert_one_line_error(cli("reproduce", "darts-collapse", "--report-only", "--out", str(tmp_path)), "is damaged")
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    assert_one_line_error(cli("reproduce", "darts-collapse", "--preset", "smoke", "--out", str(blocker / "x")),
                          "file")
    assert blocker.read_text() == "mine"


def test_report_only_refuses_another_experiments_folder(reproduced, cli):
    proc = cli("reproduce", "darts-collapse", "--report-only", "--out", str(reproduced))
    assert_one_line_error(proc, "holds experiment single-darts-table1")
    assert math.isfinite(pd.read_csv(reproduced / "comparison.csv")["published"].iloc[0])


@pytest.mark.slow
@pytest.mark.parametrize("change", [["--epochs", "3"], ["--epochs", "2", "--set", "w_lr=0.5"],
                                    ["--epochs", "2", "--preset", "cpu"]], ids=["epochs", "set", "preset"])
def test_a_refused_rerun_changes_nothing_and_report_only_still_describes_the_runs(reproduced, cli, tmp_path, change):
    """Re-running into the folder with another setting is refused by the runs' configs; the manifest that
    --report-only reports from must still say what the runs were made with, not what was refused."""
    out = tmp_path / "t1"
    shutil.copytree(reproduced, out)
    manifest = (out / "experiment.json").read_bytes()
    proc = cli("reproduce", "single-darts-table1", "--preset", "smoke", "--seeds", "2", "--row", "Single-DARTS",
               "--out", str(out), "--quiet", *TINY_SETS, *change)
    assert_one_line_error(proc, "holds a run with a different config")
    assert (out / "experiment.json").read_bytes() == manifest
    assert cli("reproduce", "single-darts-table1", "--report-only", "--out", str(out)).returncode == 0
    report = (out / "REPORT.md").read_text()
    assert "--epochs 2" in report and "--epochs 3" not in report and "w_lr" not in report
    assert "preset `smoke`" in report and "--preset cpu" not in report


def test_a_refusal_before_the_first_run_writes_no_experiment_folder(cli, tmp_path):
    """A missing dataset is found before the manifest is written (it was written first, then refused)."""
    out = tmp_path / "out"
    proc = cli("reproduce", "darts-collapse", "--preset", "smoke", "--seeds", "1", "--out", str(out),
               "--data-root", str(tmp_path / "no-such-data"))
    assert_one_line_error(proc, "not found")
    assert not out.exists()


GOOD_MANIFEST = {"experiment": "darts-collapse", "seeds": [0, 1], "preset": "smoke", "device": "cpu", "epochs": 2,
                 "rows": [], "set": {"data_subset": "16", "batch_size": "8"}}


@pytest.mark.parametrize("manifest, says", [
    ([GOOD_MANIFEST], "an array where a JSON object belongs"),
    (None, "null where a JSON object belongs"),
    ({**GOOD_MANIFEST, "epochs": "abc"}, "epochs 'abc' is neither null nor a whole number"),
    ({**GOOD_MANIFEST, "epochs": True}, "epochs True"),
    ({**GOOD_MANIFEST, "epochs": 10**9}, "epochs 1000000000"),
    ({**GOOD_MANIFEST, "seeds": [-1]}, "seeds [-1] are not 0..K-1"),
    ({**GOOD_MANIFEST, "seeds": "01"}, "seeds '01' are not 0..K-1"),
    ({**GOOD_MANIFEST, "seeds": []}, "seeds [] are not 0..K-1"),
    ({**GOOD_MANIFEST, "preset": "huge"}, "preset 'huge' is not one of"),
    ({**GOOD_MANIFEST, "preset": 3}, "preset 3 is not one of"),
    ({**GOOD_MANIFEST, "device": "tpu"}, "device 'tpu' is not cpu or cuda"),
    ({**GOOD_MANIFEST, "rows": "DARTS-V1"}, "rows 'DARTS-V1' is not a list"),
    ({**GOOD_MANIFEST, "rows": ["GDAS"]}, "darts-collapse has no run row 'GDAS'"),
    ({**GOOD_MANIFEST, "set": ["data_subset=16"]}, "is not an object of KEY: VALUE"),
    ({**GOOD_MANIFEST, "set": {"no_such_option": "1"}}, "unknown --set key 'no_such_option'"),
    ({**GOOD_MANIFEST, "experiment": 7}, "experiment 7 is not a name"),
    ({**GOOD_MANIFEST, "runs_from": 7}, "runs_from 7"),
    ({k: v for k, v in GOOD_MANIFEST.items() if k not in ("seeds", "set")}, "no 'seeds', 'set'"),
])
def test_report_only_refuses_a_wrong_typed_manifest_in_one_line(cli, tmp_path, manifest, says):
    """Each of these used to give a traceback or a report (and commands) that say nothing true of the runs."""
    (tmp_path / "experiment.json").write_text(json.dumps(manifest))
    proc = cli("reproduce", "darts-collapse", "--report-only", "--out", str(tmp_path))
    assert_one_line_error(proc, "experiment.json is damaged", says, "re-run the experiment")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.json"]


def test_report_only_of_runs_made_on_a_gpu_works_on_any_machine(cli, tmp_path):
    """The manifest's device is the one the runs were made on: rewriting the report needs no such device."""
    (tmp_path / "experiment.json").write_text(json.dumps({**GOOD_MANIFEST, "device": "cuda:1"}))
    proc = cli("reproduce", "darts-collapse", "--report-only", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "--device cuda:1" in report and "| DARTS-V1 | CIFAR-10 test | not run yet |" in report


def _final_record(run_dir: Path) -> Path:
    return max((run_dir / "records").glob("epoch-*.parquet"))


@pytest.mark.slow
@pytest.mark.parametrize("damage, says", [(lambda p: p.write_bytes(b"half a file"), "is damaged (not a Parquet file"),
                                          (Path.unlink, "is missing")], ids=["damaged", "missing"])
def test_a_damaged_final_record_is_named_in_the_report_not_compared_at_an_earlier_epoch(reproduced, cli, tmp_path,
                                                                                         damage, says):
    out = tmp_path / "t1"
    shutil.copytree(reproduced, out)
    runs = out / "runs" / "single-darts"
    final = _final_record(runs / "single-darts-cifar10-seed1")
    damage(final)
    proc = cli("reproduce", "single-darts-table1", "--report-only", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = (out / "REPORT.md").read_text()
    shown = final.relative_to(out).as_posix()
    assert "**Left out of ours**: 1 seed run(s) whose final record is damaged or missing" in report
    assert f"Single-DARTS seed 1: `{shown}` {says}" in report and str(final) not in report
    # ours is seed 0 alone: seed 1's epoch-1 cell is not its search's result
    seed0 = pd.read_parquet(_final_record(runs / "single-darts-cifar10-seed0")).iloc[0]
    line = pd.read_csv(out / "comparison.csv").set_index(["row", "column"]).loc[("Single-DARTS", "cifar10_test_200")]
    assert line["n"] == 1 and line["mean"] == pytest.approx(seed0["bench_cifar10_test_200"])
    assert list(pd.read_csv(out / "seeds.csv")["seed"]) == [0]


@pytest.mark.slow
def test_table_search_rows_run_without_a_preset_beside_the_quoted_numbers(cli, tmp_path, bench):
    out = tmp_path / "t2"
    proc = cli("reproduce", "mergenas-table2", "--row", "RS", "--row", "REA", "--seeds", "3", "--preset", "smoke",
               "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = pd.read_csv(out / "comparison.csv")
    rs = lines[(lines["row"] == "RS") & (lines["column"] == "cifar10_test_200")].iloc[0]
    assert rs["n"] == 3 and rs["published"] == 93.19 and rs["published_std"] == 0.72
    finals = [pd.read_parquet(out / "runs" / "rs" / f"rs-cifar10-seed{s}" / "records").sort_values("epoch")
              .iloc[-1]["bench_cifar10_test_200"] for s in range(3)]
    assert rs["mean"] == pytest.approx(np.mean(finals))
    report = (out / "REPORT.md").read_text()
    assert "Only table searches ran" in report and "not the paper's setting" not in report
    assert "nbs run --method rea --seeds 3 --out" in report   # no --preset: it does not apply
    assert "| DARTS-V2 (wd=1e-2) | not run this time" in report and "| GDAS | not run this time" in report


COMMITTED = Path(__file__).resolve().parents[1] / "reports"


@pytest.mark.slow
@pytest.mark.parametrize("committed", sorted(p.parent for p in COMMITTED.rglob("REPORT.md")), ids=lambda p: p.name)
def test_a_committed_reproduction_has_the_columns_the_code_writes_now(committed, reproduced):
    for name in ("comparison.csv", "seeds.csv"):
        theirs, mine = pd.read_csv(committed / name), pd.read_csv(reproduced / name)
        assert list(theirs.columns) == list(mine.columns), f"{committed / name} has other columns than nbs writes now"
    text = "".join((committed / n).read_text() for n in ("REPORT.md", "experiment.json"))
    assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, "a path of the machine"
