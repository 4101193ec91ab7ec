"""Bad input, end to end: every out-of-range setting is one line on stderr and exit 2 before anything
is written; earlier results are left alone and stay usable; messages say what is actually wrong."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from nasbench_stability.bench.table import Benchmark
from nasbench_stability.engine.config import RunConfig, resolve_config
from nasbench_stability.engine.run import Run
from nasbench_stability.errors import ConfigError, NbsError, quote
from nasbench_stability.methods.describe import describe_method
from nasbench_stability.methods.options import apply_overrides, check_options, describe
from nasbench_stability.methods.registry import list_methods
from nasbench_stability.ranges import BELOW_ONE, FRACTION, POSITIVE, SEED

from method_helpers import ALPHA_FREE
from test_engine_runs import assert_one_line_error, run_dir

# 16+16 images in batches of 8 (2 steps an epoch), one eval batch: a run takes seconds
TINY = ["--preset", "smoke", "--quiet", "--set", "data_subset=16", "--set", "batch_size=8", "--set", "eval_batches=1"]
LONG = "x" * 10_000


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(nbs, tmp_path_factory) -> Path:
    """An --out holding one finished darts-v1 run (seed 0) that bad commands must leave alone."""
    out = tmp_path_factory.mktemp("finished")
    nbs("run", "--method", "darts-v1", "--out", str(out), *TINY, check=True)
    return out


# ---- bad run settings: refused before anything is written --------------------------------------
BAD_RUNS = [
    (["--set", "batch_size=0"], ["batch_size=0", "1 ≤ batch_size ≤ 65,536"]),
    (["--set", "batch_size=100000000"], ["batch_size=100000000", "≤ 65,536"]),
    (["--set", "data_subset=-5"], ["data_subset=-5", "1 ≤ data_subset"]),
    (["--set", "data_subset=4"], ["batch_size=8 is larger than data_subset=4"]),
    (["--set", "channels=0"], ["channels=0", "1 ≤ channels ≤ 1024"]),
    (["--set", "channels=100000"], ["channels=100000", "≤ 1024"]),
    (["--set", "cells_per_stage=0"], ["cells_per_stage=0", "1 ≤ cells_per_stage"]),
    (["--set", "eval_batches=0"], ["eval_batches=0"]),
    (["--set", "hessian_batches=0"], ["hessian_batches=0"]),
    (["--seed-list", str(2**70)], ["seed=1180591620717411303424", "0 ≤ seed < 2**32"]),
    (["--seed-list", "-1"], ["seed=-1", "0 ≤ seed < 2**32"]),
    (["--seed-list", "7" * 10_000], ["seed=", "(10,000 characters)", "0 ≤ seed < 2**32"]),
    (["--seed-list", ",,,"], ["--seed-list has no seeds"]),
    (["--seed-list", ""], ["--seed-list has no seeds"]),
    (["--seed-list", "1,x"], ["'x' is not one"]),
    (["--seeds", "0"], ["--seeds must be between 1 and 10,000"]),
    (["--jobs", "0"], ["--jobs must be at least 1"]),
    (["--epochs", "0"], ["epochs=0", "1 ≤ epochs"]),
    (["--epochs", "-1"], ["epochs=-1", "1 ≤ epochs"]),
    (["--hessian-every", "-1"], ["hessian_every=-1", "0 ≤ hessian_every"]),
    (["--set", "w_lr=-1"], ["option w_lr=-1.0", "w_lr > 0"]),
    (["--set", "w_lr=nan"], ["w_lr=nan is not a finite number"]),
    (["--set", "w_momentum=1"], ["w_momentum=1.0", "0 ≤ w_momentum < 1"]),
    (["--set", "split_policy=random"], ["split_policy='random'"]),
    (["--set", f"{LONG}=1"], ["unknown --set key", "(10,000 characters)"]),
    (["--set", f"w_lr={LONG}"], ["option w_lr: expected float", "(10,000 characters)"]),
]


@pytest.mark.parametrize("args,needles", BAD_RUNS, ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else None)
def test_bad_run_setting_is_one_line_and_writes_nothing(cli, finished, args, needles):
    before = snapshot(finished)
    proc = cli("run", "--method", "darts-v1", "--out", str(finished), *TINY, *args)
    assert_one_line_error(proc, *needles)
    assert len(proc.stderr) < 400, proc.stderr  # long input is quoted shortened
    assert snapshot(finished) == before
    assert sorted(p.name for p in finished.iterdir()) == ["darts-v1-cifar10-seed0"]


def test_earlier_run_is_still_usable_after_bad_commands(nbs, finished):
    proc = nbs("run", "--method", "darts-v1", "--out", str(finished), *TINY, "--set", "batch_size=0")
    assert_one_line_error(proc, "batch_size")
    proc = nbs("run", "--method", "darts-v1", "--out", str(finished), *TINY, check=True)
    assert "already finished" in proc.stdout


def test_option_combination_torch_refuses_is_one_line_and_leaves_no_run(nbs, tmp_path):
    """Each value in range, the pair not (Nesterov needs momentum): caught when the method is built,
    before the config is written; the directory made for the run is removed again."""
    proc = nbs("run", "--method", "darts-v1", "--out", str(tmp_path), *TINY, "--set", "w_momentum=0")
    assert_one_line_error(proc, "do not go together", "Nesterov")
    assert not run_dir(tmp_path, "darts-v1", 0).exists()
    nbs("run", "--method", "darts-v1", "--out", str(tmp_path), *TINY, "--epochs", "1", check=True)


# ---- a directory that holds only a config from a run that never started ------------------------
@pytest.mark.parametrize("stale", [{"batch_size": 0, "data_subset": -5}, {"w_lr": 0.5}], ids=["invalid", "other"])
def test_config_of_a_run_that_never_started_is_replaced_by_the_corrected_command(nbs, tmp_path, stale):
    """What earlier versions left after a refused value: config.json alone. The corrected command
    re-initialises the directory instead of refusing it as "a run with a different config"."""
    cfg = resolve_config("darts-v1", preset="smoke", device="cpu", epochs=1,
                         overrides={"data_subset": "16", "batch_size": "8", "eval_batches": "1"}).to_dict()
    for key, value in stale.items():
        (cfg["method_options"] if key in cfg["method_options"] else cfg)[key] = value
    rd = run_dir(tmp_path, "darts-v1", 0)
    rd.mkdir(parents=True)
    (rd / "config.json").write_text(json.dumps(cfg))
    nbs("run", "--method", "darts-v1", "--out", str(tmp_path), *TINY, "--epochs", "1", check=True)
    assert json.loads((rd / "status.json").read_text())["state"] == "finished"
    saved = json.loads((rd / "config.json").read_text())
    assert saved["batch_size"] == 8 and saved["channels"] == 8 and saved["method_options"]["w_lr"] == 0.025


@pytest.mark.parametrize("progress", ["checkpoint.pt", "records/epoch-0001.parquet"])
def test_config_mismatch_is_still_refused_once_a_run_has_results(nbs, tmp_path, progress):
    cfg = resolve_config("darts-v1", preset="smoke", device="cpu", epochs=1,
                         overrides={"data_subset": "16", "batch_size": "8", "eval_batches": "1", "w_lr": "0.5"})
    rd = run_dir(tmp_path, "darts-v1", 0)
    (rd / progress).parent.mkdir(parents=True, exist_ok=True)
    (rd / "config.json").write_text(json.dumps(cfg.to_dict()))
    (rd / progress).write_bytes(b"results")
    before = snapshot(tmp_path)
    proc = nbs("run", "--method", "darts-v1", "--out", str(tmp_path), *TINY, "--epochs", "1")
    assert_one_line_error(proc, "different config", "w_lr")
    assert snapshot(tmp_path) == before


# ---- out of memory -----------------------------------------------------------------------------
CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate memory)")
CUDA_OOM = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture
def small_run(bench_path, cifar_root, nbs_home, monkeypatch, tmp_path):
    monkeypatch.setenv("NBS_HOME", str(nbs_home))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the `nbs` subprocesses run: the 2 shared cores crawl when oversubscribed
    benchmark = Benchmark.load(bench_path)

    def make(epochs: int = 1) -> Run:
        cfg = resolve_config("darts-v1", preset="smoke", device="cpu", epochs=epochs,
                             overrides={"data_subset": "16", "batch_size": "8", "eval_batches": "1"})
        return Run(cfg, tmp_path / "out", benchmark=benchmark, data_root=cifar_root, progress=False,
                   log=lambda _: None)

    yield make
    torch.set_num_threads(threads)


# ids without "cuda": conftest skips tests with that keyword on machines without a GPU
@pytest.mark.parametrize("error", [CPU_OOM, CUDA_OOM, MemoryError()], ids=["cpu-alloc", "gpu-alloc", "python"])
def test_out_of_memory_while_building_is_one_error_and_leaves_nothing(small_run, monkeypatch, error):
    def build(*_, **__):
        raise error

    monkeypatch.setattr("nasbench_stability.engine.run.build_method", build)
    run = small_run()
    with pytest.raises(NbsError, match="does not fit in memory") as info:
        run.execute()
    assert "\n" not in str(info.value) and "channels=8" in str(info.value)
    assert not run.run_dir.exists()


def test_out_of_memory_in_the_first_epoch_removes_the_unstarted_run(small_run, monkeypatch):
    def step(*_, **__):
        raise CUDA_OOM

    monkeypatch.setattr("nasbench_stability.engine.run.train_epoch", step)
    run = small_run()
    with pytest.raises(NbsError, match="does not fit in memory .* training epoch 1"):
        run.execute()
    assert not run.run_dir.exists()


def test_out_of_memory_after_a_finished_epoch_keeps_it_and_resumes(small_run, monkeypatch):
    from nasbench_stability.engine import run as run_module
    original = run_module.train_epoch

    def step(method, step_fn, next_batches, epoch, *rest):
        if epoch == 1:
            raise CPU_OOM
        return original(method, step_fn, next_batches, epoch, *rest)

    monkeypatch.setattr(run_module, "train_epoch", step)
    run = small_run(epochs=2)
    with pytest.raises(NbsError, match="does not fit in memory"):
        run.execute()
    assert (run.run_dir / "checkpoint.pt").exists()
    assert [p.name for p in (run.run_dir / "records").glob("*.parquet")] == ["epoch-0001.parquet"]
    assert json.loads((run.run_dir / "status.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(run_module, "train_epoch", original)
    assert small_run(epochs=2).execute().state == "finished"


def test_other_runtime_errors_are_not_reported_as_memory(small_run, monkeypatch):
    def build(*_, **__):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr("nasbench_stability.engine.run.build_method", build)
    with pytest.raises(RuntimeError, match="shapes") as info:
        small_run().execute()
    assert not isinstance(info.value, NbsError)


# ---- messages that tell the truth --------------------------------------------------------------
@pytest.mark.parametrize("arch,needles", [
    ("-1", ["NB201 index -1 is out of range 0..15624"]),
    ("15625", ["NB201 index 15625 is out of range 0..15624"]),
    ("9" * 10_000, ["is out of range 0..15624", "(10,000 characters)"]),
    (LONG, ["malformed arch string", "(10,000 characters)"]),
    ("|none~" + "9" * 5_000 + "|+|none~0|none~1|+|none~0|none~1|none~2|", ["bad token"]),
])
def test_query_errors_name_the_problem_and_stay_short(nbs, arch, needles):
    proc = nbs("query", arch)
    assert_one_line_error(proc, *needles)
    assert len(proc.stderr) < 400, proc.stderr


def test_partial_benchmark_table_is_refused_on_load(nbs, bench_path, tmp_path):
    partial = tmp_path / "partial.parquet"
    table = pq.read_table(bench_path)
    pq.write_table(table.slice(0, 100).replace_schema_metadata(table.schema.metadata), partial)
    assert_one_line_error(nbs("query", "3", "--benchmark", str(partial)), "has 100 rows, expected 15,625")
    proc = nbs("run", "--method", "darts-v1", "--out", str(tmp_path / "out"), *TINY, "--benchmark", str(partial))
    assert_one_line_error(proc, "has 100 rows, expected 15,625")
    assert not (tmp_path / "out").exists()


def test_rerun_of_a_diverged_run_fails_like_the_run(nbs, tmp_path):
    args = ["run", "--method", "darts-v1", "--out", str(tmp_path), *TINY, "--epochs", "2",
            "--set", "w_lr=1e12", "--set", "grad_clip=0"]
    first = nbs(*args)
    assert first.returncode == 3 and "diverged at epoch" in first.stderr
    rd = run_dir(tmp_path, "darts-v1", 0)
    epoch = json.loads((rd / "status.json").read_text())["epochs_done"]
    before = snapshot(tmp_path)
    again = nbs(*args)
    assert again.returncode == 3, (again.stdout, again.stderr)
    assert again.stderr.strip().splitlines() == [f"nbs: {rd} already diverged at epoch {epoch}; not re-run"]
    assert snapshot(tmp_path) == before


# ---- declared ranges (unit) --------------------------------------------------------------------
def _numeric_fields(options_cls: type):
    hints = typing.get_type_hints(options_cls)
    return [f for f in dataclasses.fields(options_cls) if hints[f.name] in (int, float)]


@pytest.mark.parametrize("info", list_methods(), ids=lambda m: m.name)
def test_every_numeric_method_option_has_a_range_that_holds_its_default(info):
    for f in _numeric_fields(info.options_cls):
        assert f.metadata.get("bounds") is not None or f.metadata.get("choices"), f"{info.name}.{f.name}"
    check_options(info.default_options())
    if info.table_search:   # no weights, no α: their own options are checked in test_method_multitrial.py
        return
    rows = {r["name"]: r for r in describe(info.options_cls)}
    alpha = info.name not in ALPHA_FREE
    assert rows["w_lr"]["bounds"] == POSITIVE and ("a_beta1" in rows) == alpha
    assert not alpha or rows["a_beta1"]["bounds"] == BELOW_ONE
    shown = describe_method(info.name)
    assert "w_lr > 0" in shown and ("0 ≤ a_beta2 < 1" in shown) == alpha and "1 ≤ epochs ≤ 100,000" in shown


#: settings of the DARTS family that a supernet method with other optimizers lacks (ENAS' controller; CDARTS,
#: whose rates are constant and which measures no gradient correlation)
DARTS_OWN = {"gc_every", "alpha_init_std", "unrolled_eps", "w_lr_min"}


@pytest.mark.parametrize("key,value,allowed", [
    ("w_lr", "0", "w_lr > 0"), ("a_lr", "-0.1", "a_lr > 0"), ("w_momentum", "1", "0 ≤ w_momentum < 1"),
    ("a_beta1", "-0.5", "0 ≤ a_beta1 < 1"), ("a_beta2", "1.0", "0 ≤ a_beta2 < 1"),
    ("w_weight_decay", "-1e-4", "w_weight_decay ≥ 0"), ("a_weight_decay", "-1", "a_weight_decay ≥ 0"),
    ("grad_clip", "-1", "grad_clip ≥ 0"), ("gc_every", "-1", "gc_every ≥ 0"), ("epochs", "0", "1 ≤ epochs"),
    ("batch_size", "0", "1 ≤ batch_size"), ("alpha_init_std", "-1", "alpha_init_std ≥ 0"),
    ("unrolled_eps", "0", "unrolled_eps > 0"), ("w_lr_min", "-0.001", "w_lr_min ≥ 0"),
])
def test_out_of_range_override_is_refused_naming_option_and_range(key, value, allowed):
    for info in (m for m in list_methods() if not m.table_search):
        has = key in {r["name"] for r in describe(info.options_cls)}
        if not has and (info.name in ALPHA_FREE or key in DARTS_OWN):
            continue   # an α option (or gradient correlation, which needs an α batch) it does not have
        with pytest.raises(ConfigError, match=f"option {key}=") as err:
            apply_overrides(info.default_options(), {key: value})
        assert allowed in str(err.value), (info.name, str(err.value))


@pytest.mark.parametrize("method,key,value", [
    ("edas-inv", "warmup_fraction", "1.5"), ("edas", "warmup_fraction", "-0.1"),
    ("edas", "warmup_a_weight_decay", "-1"), ("dnas", "zero_one_weight", "-1"), ("dnas", "partial_channels", "0"),
    ("pc-darts", "partial_channels", "0"), ("fair-darts", "op_threshold", "1.5"), ("sdarts-rs", "epsilon_max", "-0.1"),
    ("sdarts-adv", "attack_steps", "0"), ("drnas", "prior_concentration", "0"),
])
def test_method_specific_option_ranges(method, key, value):
    info = next(m for m in list_methods() if m.name == method)
    with pytest.raises(ConfigError, match=key):
        apply_overrides(info.default_options(), {key: value})


def test_range_ends_are_inclusive_or_exclusive_as_declared():
    assert BELOW_ONE.contains(0.0) and not BELOW_ONE.contains(1.0) and BELOW_ONE.contains(0.999)
    assert not POSITIVE.contains(0.0) and POSITIVE.contains(1e-12) and not POSITIVE.contains(float("inf"))
    assert FRACTION.contains(0.0) and FRACTION.contains(1.0) and not FRACTION.contains(1.0001)
    assert SEED.contains(0) and SEED.contains(2**32 - 1) and not SEED.contains(2**32) and not SEED.contains(-1)
    assert not POSITIVE.contains(True) and not POSITIVE.contains("1")


def test_options_object_is_checked_as_a_whole():
    info = next(m for m in list_methods() if m.name == "darts-v1")
    bad = dataclasses.replace(info.default_options(), a_beta1=1.0)
    with pytest.raises(ConfigError, match="a_beta1"):
        check_options(bad)
    with pytest.raises(ConfigError, match="a_beta1"):
        apply_overrides(bad, {"w_lr": "0.1"})   # an untouched field is checked too


def test_run_config_checks_its_ranges_however_it_is_made():
    with pytest.raises(ConfigError, match="seed"):
        RunConfig(method="darts-v1", seed=2**32)
    RunConfig(method="darts-v1", seed=2**32 - 1)
    good = RunConfig(method="darts-v1").to_dict()
    for key, value in [("epochs", 0), ("hessian_every", -1), ("channels", 0), ("data_subset", 0)]:
        with pytest.raises(ConfigError, match=key):
            RunConfig.from_dict({**good, key: value})
    RunConfig.from_dict({**good, "data_subset": None, "eval_batches": None})


def test_settings_are_checked_together_after_the_preset():
    """batch 512 with 1024 examples is fine although the smoke preset alone has 256 examples."""
    cfg = resolve_config("darts-v1", preset="smoke", device="cpu",
                         overrides={"batch_size": "512", "data_subset": "1024"})
    assert (cfg.batch_size, cfg.data_subset) == (512, 1024)
    with pytest.raises(ConfigError, match="larger than data_subset"):
        resolve_config("darts-v1", preset="smoke", device="cpu", overrides={"batch_size": "512"})


def test_quote_shortens_long_input():
    assert quote("abc") == "'abc'"
    shown = quote("y" * 10_000)
    assert len(shown) < 100 and "(10,000 characters)" in shown


@pytest.mark.parametrize("args, message", [
    (("run", "--method", "darts-v1", "--log", "wandb"), "Invalid value for '--log'"),
    (("sweep", "study.toml", "--executor", "slurm"), "Invalid value for '--executor'"),
    (("run", "--method", "darts-v1", "--seeds", "two"), "'two' is not a valid integer"),
    (("status",), "Missing argument 'RUN_DIRS...'"),
    (("run", "--method", "darts-v1", "--lr", "0.1"), "No such option '--lr'"),
    (("bench", "build", "--bogus"), "No such option '--bogus'"),
    (("nosuch",), "No such command 'nosuch'"),
])
def test_click_usage_errors_are_one_line_naming_the_help(cli, args, message):
    """What click itself refuses (a bad choice or type, a missing argument, an unknown option or command)
    is one line too, not click's usage block, and names the --help to read."""
    out = cli(*args)
    assert_one_line_error(out, "nbs: error:", message, "--help`")
    assert out.stdout == ""
