"""`--time-budget S`: whole epochs while the next one fits, then a paused, checkpointed run that the same
command continues exactly; runs not started when the budget is spent stay unstarted; bad values are one line.

The budget's clock (engine/budget.py ``now``) is replaced by a fake one that the test moves on by a set
number of seconds per epoch, so the tests say exactly where a run stops without sleeping (and without
depending on how busy the machine is)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from nasbench_stability.analysis.progress import progress_row
from nasbench_stability.engine import budget as budget_module
from nasbench_stability.engine import cost, packed_run
from nasbench_stability.engine import run as run_module
from nasbench_stability.engine.budget import EpochBudget, TimeBudget
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.executor import run_seeds
from nasbench_stability.engine.records import TIMING_COLUMNS, read_records
from nasbench_stability.errors import ConfigError
from nasbench_stability.cli.common import parse_time_budget
from nasbench_stability.sweep.expand import expand, work_units
from nasbench_stability.sweep.local import LocalExecutor
from nasbench_stability.sweep.study import load_study
from nasbench_stability.sweep.worker import RunEnvironment
from test_sweep_local import POINT, STUDY   # the same tiny study



@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for the whole module, its module-scoped reference runs included: the float sums
    depend on the thread count, and the resumed records are compared exactly with the references."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# C=8 (smoke), 16+16 images in batches of 8 (2 steps an epoch), one eval batch
SMALL = {"data_subset": "16", "batch_size": "8", "eval_batches": "1"}
METHOD = "darts-v1"


class FakeClock:
    """The budget's clock: stands still unless a test moves it."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(budget_module, "now", fake)
    monkeypatch.setattr(budget_module, "_MEASURED", {})   # no epochs measured by an earlier test
    return fake


@pytest.fixture
def epochs_take(clock, monkeypatch):
    """``epochs_take(s1, s2, ...)``: the k-th training epoch in this process (solo or packed) moves the clock
    on by s_k seconds (the last one repeats)."""
    def install(*seconds: float) -> None:
        left = list(seconds)

        def wrap(train):
            def timed_train(*args, **kwargs):
                clock.t += left.pop(0) if len(left) > 1 else left[0]
                return train(*args, **kwargs)
            return timed_train

        monkeypatch.setattr(run_module, "train_epoch", wrap(run_module.train_epoch))
        monkeypatch.setattr(packed_run, "train_epoch", wrap(packed_run.train_epoch))

    return install


@pytest.fixture(scope="module")
def data(bench_path, cifar_root, nbs_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBS_HOME", str(nbs_home))
        yield {"benchmark_path": bench_path, "data_root": cifar_root}


def search(data, out: Path, *, epochs: int, budget: TimeBudget | None = None, seeds=(0,), pack: bool = False,
           **overrides: str):
    return run_seeds(METHOD, list(seeds), preset="smoke", epochs=epochs, device="cpu", out=out,
                     overrides={**SMALL, **overrides}, data_root=data["data_root"],
                     benchmark_path=data["benchmark_path"], progress=False, pack=pack, log=lambda line: None,
                     budget=budget)


def budget_of(clock: FakeClock, seconds: float) -> TimeBudget:
    return TimeBudget(seconds, clock.t + seconds)


def run_dir(out: Path, seed: int = 0) -> Path:
    return out / f"{METHOD}-cifar10-seed{seed}"


def status(rd: Path) -> dict:
    return json.loads((rd / "status.json").read_text())


def records(rd: Path) -> pd.DataFrame:
    return read_records(rd).drop(columns=list(TIMING_COLUMNS))


def record_names(rd: Path) -> list[str]:
    return sorted(p.name for p in (rd / "records").glob("*.parquet"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """Uninterrupted runs (no budget): darts-v1 seed 0 solo for 3 epochs, seeds 0-1 packed for 2."""
    root = tmp_path_factory.mktemp("uninterrupted")
    search(data, root / "solo", epochs=3)
    search(data, root / "packed", epochs=2, seeds=(0, 1), pack=True)
    return root


# ---- stop, and resume exactly --------------------------------------------------------------------------
def test_a_run_stops_before_an_epoch_that_would_not_fit_and_resumes_exactly(data, reference, clock, epochs_take,
                                                                              tmp_path):
    """Epochs take 10 s on the budget's clock and the budget is 25 s: epoch 1 fits by the method's measured
    rate, epoch 2 by epoch 1 (10 s ≤ 15 s left), epoch 3 does not (10 s > 5 s left)."""
    epochs_take(10)
    out = tmp_path / "cut"
    [result] = search(data, out, epochs=3, budget=budget_of(clock, 25))
    rd = run_dir(out)
    assert (result.state, result.epochs_done, result.message) == ("paused", 2, "2 of 3 epochs done; re-run to continue")
    assert status(rd)["state"] == "paused" and status(rd)["epochs_done"] == 2
    assert "would not finish" in status(rd)["message"]
    assert record_names(rd) == ["epoch-0001.parquet", "epoch-0002.parquet"] and (rd / "checkpoint.pt").exists()
    row = progress_row(rd)   # what `nbs status` shows: paused, not failed and not a killed run
    assert (row["state"], row["epochs_done"], row["epochs"]) == ("paused", 2, 3)

    [again] = search(data, out, epochs=3)   # the same command, without a budget: it continues
    assert (again.state, again.epochs_done) == ("finished", 3)
    pd.testing.assert_frame_equal(records(run_dir(reference / "solo")), records(rd), check_exact=True)


def test_packed_seeds_stop_together_and_resume_exactly(data, reference, clock, epochs_take, tmp_path):
    epochs_take(10)
    out = tmp_path / "packed"
    results = search(data, out, epochs=2, seeds=(0, 1), pack=True, budget=budget_of(clock, 15))
    assert [(r.state, r.epochs_done) for r in results] == [("paused", 1)] * 2
    for seed in (0, 1):
        assert status(run_dir(out, seed))["state"] == "paused"
        assert record_names(run_dir(out, seed)) == ["epoch-0001.parquet"]
    again = search(data, out, epochs=2, seeds=(0, 1), pack=True)
    assert [(r.state, r.epochs_done) for r in again] == [("finished", 2)] * 2
    for seed in (0, 1):
        pd.testing.assert_frame_equal(records(run_dir(reference / "packed", seed)), records(run_dir(out, seed)),
                                      check_exact=True)


# ---- what the estimate goes by -------------------------------------------------------------------------
def test_before_any_epoch_the_measured_rate_decides(data, clock, epochs_take, monkeypatch, tmp_path):
    """No epoch measured in this process: epoch_costs.csv's rate. A rate longer than the budget starts no
    epoch (nothing is trained, the run is paused at 0); without a rate one epoch runs to measure one."""
    epochs_take(10)
    slow = cost.Rate(epoch_s=50.0, hessian_row_s=None, hessian_rows=24, measured="test", source="test")
    monkeypatch.setattr(cost, "rate_of", lambda method, preset, device: slow)
    [result] = search(data, tmp_path / "slow", epochs=3, budget=budget_of(clock, 30))
    rd = run_dir(tmp_path / "slow")
    assert (result.state, result.epochs_done) == ("paused", 0)
    assert status(rd)["state"] == "paused" and record_names(rd) == [] and not (rd / "checkpoint.pt").exists()

    monkeypatch.setattr(cost, "rate_of", lambda method, preset, device: None)
    monkeypatch.setattr(budget_module, "_MEASURED", {})
    [result] = search(data, tmp_path / "unknown", epochs=3, budget=budget_of(clock, 1))
    assert (result.state, result.epochs_done) == ("paused", 1)


def test_the_longest_epoch_so_far_decides(clock):
    """Epochs of 10 s then 2 s: 8 s left is not enough (the longest, 10 s, would not fit), 10 s is."""
    config = resolve_config(METHOD, preset="smoke", device="cpu", epochs=5, overrides=SMALL)
    estimate = EpochBudget(budget_of(clock, 8), config)
    estimate.took(10.0)
    estimate.took(2.0)
    assert estimate.expected(hessian=False)[0] == 10.0
    assert not estimate.fits(hessian=False)[0]
    assert EpochBudget(budget_of(clock, 10), config).fits(hessian=False)[0]   # another seed: same measurements
    assert EpochBudget(budget_of(clock, 100), config, pack_size=2).expected(hessian=False)[0] != 10.0


def test_an_epoch_that_measures_the_hessian_counts_it(data, clock, epochs_take, monkeypatch, tmp_path):
    """hessian_every=2: epochs 2 and 4 measure the α-Hessian, which takes 20 s here on top of 10 s of
    training. With 70 s: epochs 1-3 run (10 + 30 + 10 s); epoch 4 would fit without its Hessian (10 s ≤ 20 s
    left) but not with it (30 s)."""
    epochs_take(10)
    spectrum = run_module.arch_hessian_spectrum

    def slow_spectrum(*args, **kwargs):
        clock.t += 20
        return spectrum(*args, **kwargs)

    monkeypatch.setattr(run_module, "arch_hessian_spectrum", slow_spectrum)
    [result] = search(data, tmp_path / "h", epochs=4, budget=budget_of(clock, 70), hessian_every="2",
                      hessian_batches="1")
    assert (result.state, result.epochs_done) == ("paused", 3)
    assert "α-Hessian" in status(run_dir(tmp_path / "h"))["message"]


def test_a_spent_budget_starts_nothing(data, clock, tmp_path):
    out = tmp_path / "late"
    spent = TimeBudget(5, clock.t - 1)
    results = search(data, out, epochs=3, seeds=(0, 1), budget=spent)
    assert [(r.state, r.epochs_done) for r in results] == [("paused", 0)] * 2
    assert all("not started" in r.message for r in results)
    assert not out.exists()   # nothing written: no config, no status, no lock


def test_nbs_run_with_a_budget_spent_before_its_first_run_exits_0(nbs, tmp_path):
    """A real `nbs run` process: 1 ms is spent before the first run can start (imports, the table)."""
    proc = nbs("run", "--method", METHOD, "--seeds", "2", "--preset", "smoke", "--device", "cpu", "--quiet",
               "--out", str(tmp_path / "runs"), *(a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")),
               "--time-budget", "0.001")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for seed in (0, 1):
        assert f"{run_dir(tmp_path / 'runs', seed)}: 0 of 2 epochs done; re-run to continue" in proc.stdout
    assert not (tmp_path / "runs").exists()


# ---- sweeps --------------------------------------------------------------------------------------------


def test_a_sweep_stops_at_its_budget_leaves_the_rest_unstarted_and_exits_0(cli, clock, epochs_take, tmp_path):
    """One run at a time; an epoch takes 100 s of the sweep's 100: seed 0 pauses after its first epoch and
    seed 1 is never started. Re-running without the budget finishes both."""
    epochs_take(100)
    study, out = tmp_path / "study.toml", tmp_path / "out"
    study.write_text(STUDY)
    result = cli("sweep", str(study), "--out", str(out), "--quiet", "--time-budget", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = out / POINT / "single-darts-cifar10-seed0", out / POINT / "single-darts-cifar10-seed1"
    assert f"{first}: 1 of 2 epochs done; re-run to continue" in result.stdout
    assert f"{second}: 0 of 2 epochs done; re-run to continue (not started" in result.stdout
    assert "2 runs: 0 finished, 0 skipped (ended before), 0 diverged, 0 failed, 2 unfinished (time budget)" \
        in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("time budget: 2 of 2 runs unfinished, 1 of 4 epochs done; re-run `nbs sweep ")
    assert "--time-budget 100" in last and last.endswith("to continue")
    assert status(first)["state"] == "paused" and not second.exists()

    again = cli("sweep", str(study), "--out", str(out), "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 runs: 2 finished" in again.stdout
    assert status(first)["epochs_done"] == status(second)["epochs_done"] == 2


def test_worker_processes_are_not_started_once_the_budget_is_spent(tmp_path):
    """--jobs 2: a spent budget gives no unit to a worker (this task would report every run finished)."""
    study = tmp_path / "four.toml"
    study.write_text('preset = "smoke"\ndevice = "cpu"\nseeds = 4\nmethods = ["single-darts"]\n')
    units = work_units(expand(load_study(study), tmp_path / "out"), None)
    spent = TimeBudget(1.0, budget_module.now() - 1.0)
    env = RunEnvironment(benchmark_path=tmp_path, data_roots=(), nbs_home=tmp_path, budget=spent)
    from sweep_tasks import finish_but_seed_1_dies

    outcomes = LocalExecutor(jobs=2, task=finish_but_seed_1_dies).run(units, env, lambda u, o: None)
    assert [(o.state, o.epochs_done) for unit in outcomes for o in unit] == [("paused", 0)] * 4
    assert all("not started" in o.message for unit in outcomes for o in unit)


def test_a_ray_task_that_starts_after_the_deadline_starts_nothing(tmp_path, monkeypatch):
    """--executor ray hands each task the deadline (in its RunEnvironment): a task that a busy cluster starts
    late leaves its runs as they are (the task body, without a cluster)."""
    from nasbench_stability import paths
    from nasbench_stability.sweep.ray_executor import _ray_task

    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))   # the task sets it: put back after the test
    study = tmp_path / "two.toml"
    study.write_text('preset = "smoke"\ndevice = "cpu"\nseeds = 2\nmethods = ["single-darts"]\n')
    [unit, _] = work_units(expand(load_study(study), tmp_path / "out"), None)
    env = RunEnvironment(benchmark_path=tmp_path / "no-table.parquet", data_roots=(), nbs_home=tmp_path,
                         budget=TimeBudget(1.0, budget_module.now() - 1.0))
    [outcome] = _ray_task(unit, env)
    assert (outcome.state, outcome.epochs_done) == ("paused", 0) and "not started" in outcome.message
    assert not (tmp_path / "out").exists()


def test_reproduce_stops_at_its_budget_without_a_report_and_exits_0(cli, clock, epochs_take, tmp_path):
    """darts-collapse, one seed: DARTS-V1's first epoch spends the budget, so it pauses after it and DARTS-V2
    is not started; no REPORT.md (its numbers would not be final). Re-running finishes and reports."""
    epochs_take(100)
    args = ("reproduce", "darts-collapse", "--preset", "smoke", "--device", "cpu", "--seeds", "1", "--quiet",
            "--out", str(tmp_path), *(a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")))
    result = cli(*args, "--time-budget", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("time budget: 2 of 2 seed runs unfinished, 1 of 4 epochs done; re-run to continue"), last
    assert status(tmp_path / "runs" / "darts-v1" / "darts-v1-cifar10-seed0")["state"] == "paused"
    assert not (tmp_path / "runs" / "darts-v2").exists() and not (tmp_path / "REPORT.md").exists()

    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "REPORT.md").exists()


# ---- bad values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [("3600", 3600.0), ("90m", 5400.0), ("2h", 7200.0), ("45s", 45.0),
                                           ("0.5", 0.5), (" 1.5H ", 5400.0)])
def test_seconds_minutes_and_hours(text, seconds):
    assert parse_time_budget(text) == seconds


BAD = ["-5", "0", "nan", "inf", "-inf", "1e400", "abc", "", "m", "90min", "NaNh"]


@pytest.mark.parametrize("text", BAD)
def test_bad_values_are_refused(text):
    with pytest.raises(ConfigError, match="--time-budget"):
        parse_time_budget(text)


@pytest.mark.parametrize("command", [
    ("run", "--method", METHOD, "--preset", "smoke", "--device", "cpu"),
    ("sweep", "no-such-study.toml"),
    ("reproduce", "darts-collapse", "--preset", "smoke", "--device", "cpu"),
], ids=["run", "sweep", "reproduce"])
@pytest.mark.parametrize("text", ["-5", "nan", "inf", "soon"])
def test_bad_values_exit_2_with_one_line(cli, command, text, tmp_path):
    result = cli(*command, "--out", str(tmp_path / "out"), "--time-budget", text)
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nbs: error: --time-budget"), err
    assert not (tmp_path / "out").exists()


def test_the_help_says_wall_clock_and_not_the_methods_option(cli):
    text = " ".join(cli("run", "--help").stdout.split())
    assert "--time-budget" in text and "Wall-clock" in text and "unlike the multi-trial methods' time_budget" in text


def test_reproduce_refuses_a_budget_where_it_runs_nothing(cli, tmp_path):
    result = cli("reproduce", "darts-collapse", "--report-only", "--out", str(tmp_path), "--time-budget", "60")
    assert result.returncode == 2 and "--time-budget" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_budget_counts_from_its_start(clock):
    budget = TimeBudget.start(60)
    clock.t += 59.5
    assert math.isclose(budget.left(), 0.5) and not budget.spent()
    clock.t += 0.5
    assert budget.spent()
