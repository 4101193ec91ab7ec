"""Suite-wide fixtures: the reference data beside the checkout, a benchmark table built once, and a
helper to run the real `nbs` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasbench_stability import paths

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared() -> Path:
    found = paths.shared_dir()
    if found is None:
        pytest.skip("../shared (reference data) is not beside this checkout")
    return found


@pytest.fixture(scope="session")
def cifar_root(shared) -> Path:
    return shared / "datasets"


@pytest.fixture(scope="session")
def bench_path(shared, tmp_path_factory) -> Path:
    """The benchmark table, built once per session from shared/nb201 (about a second)."""
    from nasbench_stability.bench.build import build_and_write

    return build_and_write(out=tmp_path_factory.mktemp("bench") / "nb201.parquet", source_dir=shared / "nb201")


@pytest.fixture(scope="session")
def nbs_env(bench_path, cifar_root) -> dict[str, str]:
    """The environment of a user who built the benchmark and has CIFAR-10 where nbs looks."""
    return {**os.environ, "NBS_BENCHMARK": str(bench_path), "NBS_DATA": str(cifar_root), "PYTHONUNBUFFERED": "1"}


NBS = [sys.executable, "-m", "nasbench_stability.cli.main"]


@pytest.fixture(scope="session")
def nbs_popen(nbs_env):
    """Start ``nbs ARGS...`` in the background (for kill-and-resume tests)."""
    return lambda *args: subprocess.Popen([*NBS, *args], cwd=REPO, env=nbs_env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def nbs(nbs_env):
    """Run ``nbs ARGS...`` as a user would (a new process); returns CompletedProcess."""

    def call(*args: str, check: bool = False, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run([*NBS, *args], cwd=kw.pop("cwd", REPO),
                              env=nbs_env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"nbs {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return call


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
