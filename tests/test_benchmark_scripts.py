"""The benchmark scripts run end to end: benchmarks/gpu_epoch.py at its CPU smoke size (C=8, N=1, one
timed step and evaluation batch per row), and benchmarks/epoch_breakdown.py at the smoke preset (C=4, one
Hessian batch), in a subprocess as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_gpu_epoch_cpu_smoke(tmp_path):
    out = tmp_path / "rows.json"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_epoch.py"), "--device", "cpu", "--small", "--threads", "1",
         "--steps", "1", "--eval-batches", "1", "--packs", "1,2", "--methods", "darts-v1,edas-inv",
         "--time-limit", "0", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "EXTRAPOLATED from 1 timed steps" in text
    table = {tuple(line.split()[:3]): line for line in text.splitlines() if line.startswith(("darts-v1", "edas-inv"))}
    for key in [("darts-v1", "solo-eager", "1"), ("darts-v1", "packed", "1"), ("darts-v1", "packed", "2"),
                ("edas-inv", "solo-eager", "1")]:
        assert key in table, text
        assert "n/a" not in table[key] and "error" not in table[key], table[key]
    assert "n/a (eager fallback: no CUDA graphs on cpu)" in table[("darts-v1", "solo-graph", "1")]
    assert "n/a (runs solo:" in table[("edas-inv", "packed", "2")]
    for line in ("darts-v1: packed-5 / solo-eager epoch wall: n/a (no K=5 row)",
                 "darts-v1: best amortised s per seed-epoch =",
                 "edas-inv: packed-5 / solo-eager epoch wall: n/a (runs solo",
                 "edas-inv: best amortised s per seed-epoch =", "torch "):
        assert line in text, text
    rows = json.loads(out.read_text())["rows"]
    ok = {(r["method"], r["label"]): r for r in rows if r["status"] == "ok"}
    packed2 = ok[("darts-v1", "packed 2")]
    assert packed2["epoch_s"] > 0 and packed2["seed_epoch_s"] == packed2["epoch_s"] / 2
    assert packed2["peak_mib"] is None   # no GPU memory on CPU
    xautodl = next(r for r in rows if r["mode"] == "xautodl")
    if xautodl["status"] == "ok":   # xautodl is installed --no-deps by `make venv`; elsewhere the row says n/a
        assert "nbs solo-eager darts-v1 vs xautodl DARTS-V1:" in text
    else:
        assert xautodl["status"] == "n/a", xautodl


def test_epoch_breakdown_smoke(tmp_path, nbs_env):
    out = tmp_path / "breakdown.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "epoch_breakdown.py"), "--presets", "smoke", "--steps", "1",
         "--repeats", "1", "--set", "channels=4", "--set", "hessian_batches=1", "--json", str(out)],
        cwd=REPO, env={**nbs_env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row, = json.loads(out.read_text())["rows"]
    parts = row["parts_s"]
    assert set(parts) == {"steps", "gc steps", "evaluation", "records+lookups", "checkpoint"}
    assert row["steps_per_epoch"] == 4 and parts["steps"] == pytest.approx(4 * row["step_s"])
    assert all(v >= 0 for v in parts.values()) and row["hessian_plain_s"] > 0 and row["hessian_lean_s"] > 0
    assert row["hessian_size"] == 30 and row["spectra_max_abs_difference"] < 1e-5
    for line in ("darts-v1 at smoke (C=4, N=1, 4 steps/epoch", "epoch without Hessian", "Hessian, PyTorch's",
                 "Hessian, lean", "Hessian speed-up, PyTorch's / lean:"):
        assert line in proc.stdout, proc.stdout


def test_cache_reload_runs_on_a_small_dataset(tmp_path):
    from nasbench_stability.data.synthetic import random_images, write_cifar_python

    arrays = random_images(20, 32, 10)
    write_cifar_python(tmp_path / "data", "cifar10", arrays, arrays)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cache_reload.py"), "--root",
                           str(tmp_path / "data"), "--repeats", "1"],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CIFAR-10 decode and cache:" in proc.stdout and "target reload < 1 s:" in proc.stdout
