"""End to end through the real CLI on real CIFAR-10 images: records, resume after a kill,
finished runs, and every expected mistake as a one-line error that leaves earlier results alone."""

import json
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasbench_stability.engine.records import TIMING_COLUMNS, read_records
from nasbench_stability.space.genotype import Genotype

SMALL = ["--preset", "smoke", "--quiet", "--set", "data_subset=128", "--set", "eval_batches=1"]


def run_dir(out: Path, method: str, seed: int) -> Path:
    return out / f"{method}-cifar10-seed{seed}"


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=list(TIMING_COLUMNS))


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


@pytest.fixture(scope="module")
def two_seeds(nbs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    nbs("run", "--method", "single-darts", "--seeds", "2", "--out", str(out), *SMALL, check=True)
    return out


def test_smoke_search_two_seeds_writes_readable_records(two_seeds):
    frames = [pd.read_parquet(run_dir(two_seeds, "single-darts", s) / "records") for s in (0, 1)]
    for seed, df in enumerate(frames):
        assert list(df.epoch) == [1, 2]
        assert (df.seed == seed).all() and (df.method == "single-darts").all()
        for arch in df.genotype:
            Genotype.from_str(arch)
        assert df.bench_cifar10_test_200.between(10, 95).all()
        assert ((df.param_free_count >= 0) & (df.param_free_count <= 6)).all()
        weights = np.stack(df.op_weights.to_numpy())
        assert weights.shape == (2, 30) and ((weights > 0) & (weights < 1)).all()  # sigmoid
        assert np.isfinite(df.train_loss).all() and df.valid_acc.between(0, 100).all()
        assert df.lr_w.iloc[0] > df.lr_w.iloc[1]  # cosine schedule
        assert np.isfinite(df.gc_cos_mean).all()
        assert df.data_split.str.contains("class-balanced").all() and df.data_source.str.contains("cifar10").all()
    assert not frames[0].op_weights.iloc[-1].tolist() == frames[1].op_weights.iloc[-1].tolist()
    status = json.loads((run_dir(two_seeds, "single-darts", 0) / "status.json").read_text())
    assert status["state"] == "finished" and status["epochs_done"] == 2


def test_finished_run_is_not_rerun(nbs, two_seeds):
    before = (run_dir(two_seeds, "single-darts", 0) / "records" / "epoch-0002.parquet").stat().st_mtime_ns
    proc = nbs("run", "--method", "single-darts", "--seeds", "1", "--out", str(two_seeds), *SMALL, check=True)
    assert "already finished" in proc.stdout
    assert (run_dir(two_seeds, "single-darts", 0) / "records" / "epoch-0002.parquet").stat().st_mtime_ns == before


def test_different_config_in_same_run_dir_is_refused_and_nothing_changes(nbs, two_seeds):
    rd = run_dir(two_seeds, "single-darts", 0)
    snapshot = {p: p.read_bytes() for p in rd.rglob("*") if p.is_file() and p.name != ".lock"}
    proc = nbs("run", "--method", "single-darts", "--seeds", "1", "--out", str(two_seeds), *SMALL,
               "--set", "w_lr=0.1")
    assert_one_line_error(proc, "different config", "w_lr")
    assert {p: p.read_bytes() for p in rd.rglob("*") if p.is_file() and p.name != ".lock"} == snapshot


def test_resume_after_kill_gives_identical_records(nbs, nbs_popen, tmp_path):
    args = ["run", "--method", "darts-v1", "--seeds", "1", "--epochs", "4", *SMALL]
    reference = tmp_path / "uninterrupted"
    nbs(*args, "--out", str(reference), check=True)

    out = tmp_path / "killed"
    proc = nbs_popen(*args, "--out", str(out))
    status = run_dir(out, "darts-v1", 0) / "status.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if status.exists() and json.loads(status.read_text()).get("epochs_done", 0) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads(status.read_text())
    assert state["state"] == "running" and 1 <= state["epochs_done"] < 4, state

    resumed = nbs(*args, "--out", str(out), check=True)
    assert "resuming after epoch" in resumed.stdout
    a = comparable(read_records(run_dir(reference, "darts-v1", 0)))
    b = comparable(read_records(run_dir(out, "darts-v1", 0)))
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_corrupted_checkpoint_is_a_clear_error_and_is_kept(nbs, tmp_path):
    args = ["run", "--method", "darts-v1", "--seeds", "1", "--epochs", "3", *SMALL, "--out", str(tmp_path)]
    rd = run_dir(tmp_path, "darts-v1", 0)
    nbs(*args, check=True)
    (rd / "status.json").write_text(json.dumps({"state": "running", "epochs_done": 2}))
    ckpt = rd / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    garbled = ckpt.read_bytes()
    proc = nbs(*args)
    assert_one_line_error(proc, "checkpoint", "unreadable")
    assert ckpt.read_bytes() == garbled
    assert len(list((rd / "records").glob("*.parquet"))) == 3


def test_divergence_is_recorded_and_stops_cleanly(nbs, tmp_path):
    proc = nbs("run", "--method", "darts-v1", "--seeds", "1", "--epochs", "3", *SMALL, "--out", str(tmp_path),
               "--set", "w_lr=1e12", "--set", "grad_clip=0")
    assert proc.returncode == 3 and "diverged" in proc.stderr and "Traceback" not in proc.stderr
    df = read_records(run_dir(tmp_path, "darts-v1", 0))
    assert df.diverged.iloc[-1] and not np.isfinite(df.train_loss.iloc[-1])
    assert json.loads((run_dir(tmp_path, "darts-v1", 0) / "status.json").read_text())["state"] == "diverged"


@pytest.mark.parametrize("args,needles", [
    (["run", "--method", "no-such-method"], ["unknown method"]),
    (["run", "--method", "darts-v1", "--dataset", "mnist"], ["unknown dataset"]),
    (["run", "--method", "darts-v1", "--preset", "huge"], ["unknown preset"]),
    (["run", "--method", "darts-v1", "--set", "bogus=1"], ["unknown --set key"]),
    (["run", "--method", "darts-v1", "--set", "w_lr=fast"], ["w_lr"]),
    (["run", "--method", "darts-v1", "--set", "mode=trilevel"], ["mode"]),
    (["query", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"], ["unknown op"]),
    (["query", "|skip_connect~0|"], ["malformed arch string"]),
    (["methods", "--show", "nope"], ["unknown method"]),
])
def test_bad_input_is_one_line_error(nbs, tmp_path, args, needles):
    proc = nbs(*args, "--out", str(tmp_path)) if args[0] == "run" else nbs(*args)
    assert_one_line_error(proc, *needles)
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_benchmark_and_dataset_are_one_line_errors(nbs, tmp_path):
    proc = nbs("query", "1835", "--benchmark", str(tmp_path / "absent.parquet"))
    assert_one_line_error(proc, "nbs bench build")
    proc = nbs("run", "--method", "darts-v1", *SMALL, "--out", str(tmp_path / "o"), "--data-root", str(tmp_path / "nodata"))
    assert_one_line_error(proc, "cifar10 not found")
    assert not (tmp_path / "o").exists()


def test_query_all_skip_cell(nbs):
    proc = nbs("query", "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
               check=True)
    line = next(l for l in proc.stdout.splitlines() if "cifar10 test" in l and "@200" in l)
    assert "54.30" in line and "exact" in line
    valid = [l for l in proc.stdout.splitlines() if "valid" in l and "@200" in l]
    assert len(valid) == 3 and all("approximate" in l for l in valid)


def test_concurrent_runs_under_one_out_match_sequential_runs(nbs_popen, two_seeds, tmp_path):
    """Two processes writing seeds 0 and 1 under the same --out at once: each run's records equal
    the ones the sequential two-seed run wrote."""
    procs = [nbs_popen("run", "--method", "single-darts", "--seed-list", str(s), "--out", str(tmp_path), *SMALL)
             for s in (0, 1)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    for s in (0, 1):
        pd.testing.assert_frame_equal(comparable(read_records(run_dir(tmp_path, "single-darts", s))),
                                      comparable(read_records(run_dir(two_seeds, "single-darts", s))),
                                      check_exact=True)


def test_jobs_run_seeds_in_worker_processes_with_identical_records(nbs, two_seeds, tmp_path):
    proc = nbs("run", "--method", "single-darts", "--seeds", "2", "--jobs", "2", "--out", str(tmp_path), *SMALL,
               check=True)
    assert proc.stdout.count("finished after 2 epochs") == 2
    for s in (0, 1):
        pd.testing.assert_frame_equal(comparable(read_records(run_dir(tmp_path, "single-darts", s))),
                                      comparable(read_records(run_dir(two_seeds, "single-darts", s))),
                                      check_exact=True)


def test_same_run_started_twice_at_once_is_refused(nbs, tmp_path):
    """While one process holds a run directory (its lock), a second `nbs run` of it fails fast."""
    import fcntl

    rd = run_dir(tmp_path, "darts-v1", 0)
    rd.mkdir(parents=True)
    with open(rd / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = nbs("run", "--method", "darts-v1", "--seeds", "1", *SMALL, "--out", str(tmp_path))
    assert_one_line_error(proc, "another process")
    assert not (rd / "records").exists()


def test_first_run_on_a_fresh_machine_builds_the_benchmark_table(nbs_env, nbs_home, cifar_root, tmp_path):
    """No table where nbs looks: `nbs run` builds it from ../shared/nb201 (as `nbs bench build` would)
    and runs; the second run finds it."""
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    (home / "datasets").symlink_to(nbs_home / "datasets")   # the decoded CIFAR-10 cache, not the table
    env = {k: v for k, v in nbs_env.items() if k != "NBS_BENCHMARK"} | {"NBS_HOME": str(home)}
    argv = [sys.executable, "-m", "nasbench_stability.cli.main", "run", "--method", "darts-v1", "--epochs", "1",
            "--data-root", str(cifar_root), "--out", str(tmp_path / "runs"), *SMALL]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    table = home / "benchmark" / "nb201.parquet"
    assert table.is_file() and f"no benchmark table at {table}: building it once" in proc.stdout
    assert read_records(run_dir(tmp_path / "runs", "darts-v1", 0)).bench_cifar10_test_200.notna().all()
    again = subprocess.run([*argv[:-len(SMALL)], "--seed-list", "1", *SMALL], env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "building" not in again.stdout


def test_a_missing_table_is_built_only_where_nbs_looks_by_default(monkeypatch, tmp_path):
    from nasbench_stability.bench import build, locate
    from nasbench_stability.errors import MissingFileError

    monkeypatch.delenv("NBS_BENCHMARK", raising=False)
    monkeypatch.setenv("NBS_HOME", str(tmp_path))
    named = tmp_path / "typo.parquet"
    assert build.ensure_table(named) == named and not named.exists()   # an explicit path is never built
    monkeypatch.setattr(locate, "default_source_dir", lambda: None)
    with pytest.raises(MissingFileError, match="nbs bench build"):
        build.ensure_table(None, log=lambda _: None)
    assert not (tmp_path / "benchmark").exists()
