"""`nbs sweep` with the local executor's worker processes: a run that cannot go on is reported failed
and left as it was, the other runs go on, and the exit status says the study is not finished."""

from __future__ import annotations

import json

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.records import read_records

STUDY = """
preset = "smoke"
device = "cpu"
seeds = 2

[set]
data_subset = 16
batch_size = 8
eval_batches = 1

[methods.single-darts]
"""
POINT = "batch_size=8,data_subset=16,eval_batches=1"


def files(run_dir):
    """The run directory's files and contents (the engine's empty lock file aside)."""
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != ".lock"}


def test_a_failing_run_is_reported_and_the_others_finish(cli, tmp_path):
    study = tmp_path / "local.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    # seed 0's directory holds a started run of another config (eval_batches=2): never to be touched
    other = resolve_config("single-darts", preset="smoke", seed=0, device="cpu",
                           overrides={"data_subset": "16", "batch_size": "8", "eval_batches": "2"})
    taken = out / POINT / "single-darts-cifar10-seed0"
    taken.mkdir(parents=True)
    (taken / "config.json").write_text(json.dumps(other.to_dict()))
    (taken / "checkpoint.pt").write_bytes(b"another run's checkpoint")
    before = files(taken)

    result = cli("sweep", str(study), "--out", str(out), "--jobs", "2", "--quiet", "--log", "tensorboard")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "local: 2 runs: 1 finished, 0 skipped (ended before), 0 diverged, 1 failed" in result.stdout, result.stdout
    assert f"{taken}: holds a run with a different config (differs in: eval_batches)" in result.stderr
    assert "re-run `nbs sweep" in result.stderr
    assert files(taken) == before
    finished = read_records(out / POINT / "single-darts-cifar10-seed1")
    assert list(finished.epoch) == [1, 2] and finished.seed.eq(1).all() and finished.genotype.notna().all()
    # --log reaches the worker processes' runs
    assert list((out / POINT / "single-darts-cifar10-seed1" / "tensorboard").glob("events.out.tfevents.*"))

    # the finished run is skipped on a re-run; the refused one is refused again, untouched
    again = cli("sweep", str(study), "--out", str(out), "--quiet")
    assert again.returncode == 3, again.stdout + again.stderr
    assert "2 runs: 0 finished, 1 skipped (ended before), 0 diverged, 1 failed" in again.stdout
    assert files(taken) == before
