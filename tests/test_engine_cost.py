"""The CPU presets and the cost line: `cpu` keeps every method's own schedule, `cpu-small` says it cuts it,
and the expected wall time is seeds × epochs × the measured rate (+ the Hessians), less what is done, shared
out over --jobs up to the cores."""

from __future__ import annotations

import json

import pytest

from nasbench_stability.engine import cost
from nasbench_stability.engine.config import default_preset, resolve_config
from nasbench_stability.engine.cost import RunPlan, estimate
from nasbench_stability.engine.presets import PRESETS, cut_schedule
from nasbench_stability.methods.registry import get_method, list_methods

SUPERNETS = [m.name for m in list_methods() if not m.table_search]


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------
def test_the_cpu_default_is_the_cpu_preset_and_cuda_keeps_the_paper():
    assert default_preset("cpu") == "cpu" and default_preset("cuda") == "paper" and default_preset("cuda:1") == "paper"


@pytest.mark.parametrize("name", SUPERNETS)
def test_the_cpu_preset_runs_each_methods_own_schedule_on_the_small_network(name):
    own = get_method(name).default_options()
    cpu = resolve_config(name, device="cpu")
    paper = resolve_config(name, preset="paper", device="cpu")
    assert cpu.preset == "cpu" and cpu.epochs == own.epochs == paper.epochs
    # the schedule (lr, its annealing, warm-up, temperatures...) is the method's: every option as at paper scale
    assert cpu.method_options == paper.method_options
    assert (cpu.channels, cpu.cells_per_stage, cpu.data_subset, cpu.eval_batches) == (8, 2, 2048, 8)
    small = resolve_config(name, preset="cpu-small", device="cpu")
    assert (small.channels, small.cells_per_stage, small.data_subset, small.eval_batches) == (8, 2, 2048, 8)
    assert small.epochs == 10


def test_known_own_epochs_at_the_cpu_preset():
    """The issue's examples: 50 for DARTS, 100 for the Chen-style stabilizers, 250 for the sampling methods."""
    epochs = {m: resolve_config(m, device="cpu").epochs for m in ("darts-v1", "darts-v2", "single-darts",
                                                                   "sdarts-rs", "drnas", "gdas", "setn", "rsps", "enas")}
    assert epochs == {"darts-v1": 50, "darts-v2": 50, "single-darts": 50, "sdarts-rs": 100, "drnas": 100,
                      "gdas": 250, "setn": 250, "rsps": 250, "enas": 250}


def test_cut_presets_say_so_and_the_others_do_not():
    assert PRESETS["cpu"].epochs is None and PRESETS["paper"].epochs is None
    assert "cut" in PRESETS["cpu-small"].description and "cut" in PRESETS["smoke"].description
    assert cut_schedule("cpu-small", 10, 50) == ("cpu-small preset: epochs cut to 10, not the method's own 50: "
                                                 "a look at the pipeline, not a study")
    assert cut_schedule("cpu", 50, 50) is None


def test_run_help_names_every_preset_and_what_cpu_small_cuts(nbs):
    text = " ".join(nbs("run", "--help").stdout.split())
    for name in PRESETS:
        assert name in text
    assert "cpu-small: the same with epochs cut to 10" in text and "default: paper on CUDA, cpu on CPU" in text


# ---------------------------------------------------------------------------------------------
# the cost line
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def rates(tmp_path, monkeypatch):
    """A rates file of our own: darts-v1 3 s/epoch and 0.5 s per Hessian row on cpu, 2 s on cuda (no rows)."""
    path = tmp_path / "epoch_costs.csv"
    path.write_text("preset,device,method,epoch_s,hessian_row_s,hessian_rows,measured,source\n"
                    "cpu,cpu,darts-v1,3.0,0.5,30,2026-12-05,test\n"
                    "cpu,cpu,single-darts,1.5,0.25,30,2026-12-05,test\n"
                    "paper,cuda,darts-v1,2.0,,30,2026-11-23,test\n")
    monkeypatch.setattr(cost, "COSTS_FILE", path)
    cost.measured_rates.cache_clear()
    yield
    cost.measured_rates.cache_clear()


def plan(method="darts-v1", **kw):
    return RunPlan(**{"method": method, "preset": "cpu", "device": "cpu", "epochs": 10, **kw})


def test_seconds_are_epochs_times_the_rate_plus_the_hessians(rates):
    # 10 epochs × 3 s + 2 Hessians (epochs 5, 10) × 30 rows × 2 batches × 0.5 s
    e = estimate([plan(hessian_every=5)])
    assert e.seconds == pytest.approx(10 * 3 + 2 * 30 * 2 * 0.5)
    assert "1 run, 10 epochs (darts-v1 3.0 s per epoch) + 2 α-Hessians (30 s each), one at a time" in e.line
    assert e.line.startswith("expected wall time ≈ 2 min: ")


def test_jobs_share_the_runs_out_up_to_the_cores(rates):
    runs = [plan(), plan(), plan(), plan("single-darts")]
    serial = 3 * 30 + 15
    assert estimate(runs, jobs=1, cores=2).seconds == pytest.approx(serial)
    assert estimate(runs, jobs=2, cores=2).seconds == pytest.approx(serial / 2)
    assert estimate(runs, jobs=4, cores=2).seconds == pytest.approx(serial / 2)      # no more cores than 2
    assert estimate(runs, jobs=4, cores=8).seconds == pytest.approx(30)              # the longest run bounds it
    assert "2 at a time (--jobs 4, 2 cores)" in estimate(runs, jobs=4, cores=2).line


def test_a_resumed_run_is_charged_only_its_epochs_left_and_an_ended_one_nothing(rates, tmp_path):
    config = resolve_config("darts-v1", device="cpu", epochs=10, overrides={"hessian_every": "5"})
    run_dir = tmp_path / config.run_name
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "epochs_done": 4}))
    resumed = RunPlan.of(config, run_dir)
    assert resumed.epochs_done == 4 and resumed.hessians() == 2           # epochs 5 and 10 are still ahead
    assert estimate([resumed]).seconds == pytest.approx(6 * 3 + 2 * 30)
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "epochs_done": 6}))
    assert RunPlan.of(config, run_dir).hessians() == 1
    (run_dir / "status.json").write_text(json.dumps({"state": "finished", "epochs_done": 10}))
    assert estimate([RunPlan.of(config, run_dir)]).line == "expected wall time: nothing left to run"
    (run_dir / "status.json").write_text("garbage")                        # damaged: charged in full
    assert RunPlan.of(config, run_dir).epochs_done == 0


def test_darts_es_is_charged_its_own_measurements(rates):
    code = RunPlan.of(resolve_config("darts-es", device="cpu", epochs=10))
    assert code.own_hessian_epochs == (0, 2, 4, 6, 8, 9) and code.hessians() == 6     # every 2 epochs and the last
    paper = RunPlan.of(resolve_config("darts-es", device="cpu", epochs=10, overrides={"es_rule": "paper"}))
    assert paper.hessians() == 10
    both = RunPlan.of(resolve_config("darts-es", device="cpu", epochs=10, overrides={"hessian_every": "3"}))
    assert both.hessians() == 7           # --hessian-every 3 asks after 0-based 2, 5, 8: only 5 is not the rule's
    assert plan(hessian_every=3).hessians() == 3


def test_no_rate_is_no_number_and_an_unmeasured_method_is_scaled_from_darts_v1(rates):
    missing = estimate([plan("gdas")])
    assert missing.seconds is None
    assert missing.line == ("expected wall time: no estimate, no measured rate for gdas at cpu on cpu "
                            "(benchmarks/epoch_costs.py measures one)")
    # single-darts on cuda: darts-v1's 2 s scaled by their cpu ratio 1.5 / 3; its Hessian rows are not measured there
    scaled = estimate([plan("single-darts", preset="paper", device="cuda", hessian_every=5)])
    assert scaled.seconds == pytest.approx(10 * 2.0 * 0.5)
    assert "2 α-Hessians (2 not measured, not counted)" in scaled.line
    assert "single-darts scaled from darts-v1's rate by their cost ratio on a CPU" in scaled.line


def test_cpu_small_takes_the_rates_of_the_cpu_size(rates):
    assert estimate([plan(preset="cpu-small")]).seconds == pytest.approx(30)


def test_a_table_search_costs_a_second(rates):
    config = resolve_config("rs", seed=0)
    assert estimate([RunPlan.of(config)]).seconds == pytest.approx(1.0)


def test_every_supernet_method_has_a_measured_rate_at_the_cpu_size():
    """Adding a method means measuring it (benchmarks/epoch_costs.py --methods NAME --write)."""
    cost.measured_rates.cache_clear()
    missing = [m for m in SUPERNETS if ("cpu", "cpu", m) not in cost.measured_rates()]
    assert not missing, f"no measured cpu rate for {missing}"
    for m in SUPERNETS:
        rate = cost.measured_rates()[("cpu", "cpu", m)]
        assert rate.epoch_s > 0 and rate.measured and rate.source
        assert (rate.hessian_row_s > 0) == (rate.hessian_rows > 0)


def test_nbs_run_prints_the_cost_line_before_it_starts(nbs, tmp_path, cifar_root, nbs_home):
    out = tmp_path / "runs"
    args = ("run", "--method", "darts-v1", "--seeds", "2", "--preset", "smoke", "--device", "cpu", "--quiet",
            "--set", "channels=4", "--set", "cells_per_stage=1", "--set", "data_subset=32",
            "--set", "batch_size=16", "--set", "eval_batches=1", "--out", str(out))
    lines = nbs(*args).stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("expected wall time"))
    assert "2 runs, 4 epochs (darts-v1" in lines[first]
    assert lines[first + 1] == "note: smoke preset: epochs cut to 2, not the method's own 50: a look at the pipeline, not a study"
    assert all("finished after" not in line for line in lines[:first])
    again = nbs(*args).stdout
    assert "expected wall time: nothing left to run" in again
