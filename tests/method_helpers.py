"""Helpers shared by the method tests: tiny methods on random batches, and `nbs run` in subprocesses
(several at once, kill midway, resume) checked against uninterrupted runs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.records import TIMING_COLUMNS
from nasbench_stability.engine.run import build_method
from nasbench_stability.space.genotype import Genotype


#: supernet methods without architecture parameters, hence without α options (the generic option tests skip those)
ALPHA_FREE = {"rsps"}


def tiny(method: str, channels: int = 4, cells_per_stage: int = 1, **overrides):
    cfg = resolve_config(method, preset="smoke", device="cpu",
                         overrides={"channels": str(channels), "cells_per_stage": str(cells_per_stage),
                                    **{k: str(v) for k, v in overrides.items()}})
    return build_method(cfg, num_classes=10, steps_per_epoch=4)


def batch(seed: int, n: int = 8, size: int = 32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


# ---------------------------------------------------------------------------------------------
# end to end: `nbs run` in subprocesses on real CIFAR-10 (the `method_cli` fixture is in conftest.py)
# ---------------------------------------------------------------------------------------------
def run_all(method_cli, jobs: list[tuple[str, Path, tuple[str, ...]]]) -> list[str]:
    """Run several `nbs run` commands concurrently; each must succeed. Returns their output."""
    argv, env = method_cli
    procs = [subprocess.Popen(argv(m, out, *extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for m, out, extra in jobs]
    outputs = []
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output
        outputs.append(output)
    return outputs


def records(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "records").sort_values("epoch").reset_index(drop=True)


def check_records(run_dir: Path, epochs: int) -> pd.DataFrame:
    """Every epoch recorded, with a valid NB201 genotype and a benchmark accuracy."""
    df = records(run_dir)
    assert df.epoch.tolist() == list(range(1, epochs + 1))
    for arch in df.genotype:
        Genotype.from_str(arch)
    assert df.bench_cifar10_test_200.notna().all() and np.isfinite(df.train_loss).all()
    return df


def kill_midway(method_cli, method: str, out: Path, run_name: str, *extra: str) -> dict:
    """Start a run, SIGKILL it once status.json shows a checkpointed epoch; return that status."""
    argv, env = method_cli
    proc = subprocess.Popen(argv(method, out, *extra), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    status_file = out / run_name / "status.json"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = json.loads(status_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                status = {}
            if status.get("state") == "running" and status.get("epochs_done", 0) >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return json.loads(status_file.read_text())


def assert_resume_reproduces(method_cli, method: str, reference_run: Path, tmp_path: Path, epochs: int,
                             *extra: str) -> None:
    """Kill a run of the same config as ``reference_run`` midway, re-run the same command: the
    records, timing columns aside, equal the uninterrupted ones."""
    extra = ("--epochs", str(epochs), *extra)
    killed_at = kill_midway(method_cli, method, tmp_path, reference_run.name, *extra)
    assert killed_at["state"] == "running" and 1 <= killed_at["epochs_done"] < epochs, killed_at
    (output,) = run_all(method_cli, [(method, tmp_path, extra)])
    assert f"resuming after epoch {killed_at['epochs_done']}/{epochs}" in output
    resumed, straight = check_records(tmp_path / reference_run.name, epochs), records(reference_run)
    assert list(resumed.columns) == list(straight.columns)
    for col in resumed.columns.drop(list(TIMING_COLUMNS)):
        for a, b in zip(resumed[col], straight[col]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=col)
