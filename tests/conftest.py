"""Suite-wide fixtures: the reference data beside the checkout, a benchmark table built once, and a
helper to run the real `nbs` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasbench_stability import paths
from nasbench_stability.data.cache import load_arrays

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


# C=8 (smoke), 16+16 images in batches of 8 (2 steps an epoch), one eval batch
METHOD_RUN_ARGS = ("--preset", "smoke", "--quiet", "--set", "data_subset=16", "--set", "batch_size=8",
         "--set", "eval_batches=1")


@pytest.fixture(scope="session")
def method_cli(bench_path, cifar_root, tmp_path_factory):
    """(argv builder, env) for `nbs run`. NBS_HOME is one directory per pytest session where CIFAR-10 is
    decoded once, here, before any run starts (concurrent runs would each decode it); one thread per
    process so concurrent runs share the 2 cores."""
    home = tmp_path_factory.getbasetemp() / "nbs-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBS_HOME", str(home))
        load_arrays("cifar10", cifar_root, progress=False)
    env = {**os.environ, "NBS_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def argv(method: str, out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "nasbench_stability.cli.main", "run", "--method", method, "--out", str(out),
                "--benchmark", str(bench_path), "--data-root", str(cifar_root), *METHOD_RUN_ARGS, *extra]

    return argv, env



def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
