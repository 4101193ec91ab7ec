"""Suite-wide fixtures: the reference data beside the checkout, a benchmark table built once, and a
helper to run the real `nbs` CLI in a subprocess.

`make test` runs the suite in parallel (pytest-xdist, one process per worker). The expensive session
fixtures (benchmark table, decoded CIFAR-10, the study, the reference runs) are then built once by
whichever worker needs them first and reused by the others (`built_once`); their files are read-only to
tests, which copy what they change. Each test file runs in one worker (`--dist loadfile`), so that
module fixtures (often real runs) are built once, too."""

from __future__ import annotations

import os
from dataclasses import dataclass
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nasbench_stability import paths
from nasbench_stability.bench.table import Benchmark
from nasbench_stability.cli.main import main
from nasbench_stability.data.cache import load_arrays

from shared_build import XDIST_WORKER, built_once

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    if XDIST_WORKER is not None:
        import torch

        # workers share the cores: one torch thread each (as the `nbs` subprocesses run, SUBPROCESS_ENV)
        torch.set_num_threads(1)


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
    """The benchmark table, built once per session from shared/nb201 (a few seconds)."""
    from nasbench_stability.bench.build import build_and_write

    folder = built_once(tmp_path_factory, "bench",
                        lambda out: build_and_write(out=out / "nb201.parquet", source_dir=shared / "nb201"))
    return folder / "nb201.parquet"


@pytest.fixture(scope="session")
def nbs_home(tmp_path_factory, cifar_root) -> Path:
    """One NBS_HOME per session where CIFAR-10 is decoded once, before any run starts (runs started
    concurrently would each decode it)."""
    def decode(home: Path) -> None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NBS_HOME", str(home))
            load_arrays("cifar10", cifar_root, progress=False)

    return built_once(tmp_path_factory, "nbs-home", decode)


# one thread per process: tests run several nbs processes at once on 2 cores, and oversubscribed
# BLAS/OpenMP threads crawl
SUBPROCESS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def nbs_env(bench_path, cifar_root, nbs_home) -> dict[str, str]:
    """The environment of a user who built the benchmark and has CIFAR-10 where nbs looks."""
    return {**os.environ, "NBS_BENCHMARK": str(bench_path), "NBS_DATA": str(cifar_root), "NBS_HOME": str(nbs_home),
            **SUBPROCESS_ENV}


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


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def cli(bench_path, cifar_root, nbs_home):
    """``nbs ARGS...`` in this process (CliRunner): these errors come before any work, and a new
    process per case would spend seconds importing torch. A case that wrongly passes runs for real."""
    runner = CliRunner()
    env = {"NBS_BENCHMARK": str(bench_path), "NBS_DATA": str(cifar_root), "NBS_HOME": str(nbs_home)}

    def call(*args: str) -> Outcome:
        result = runner.invoke(main, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback in a real process
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return call


@pytest.fixture
def float64():
    """Methods built inside this fixture hold float64 parameters; the default dtype is put back."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (as the `nbs` subprocesses run): on the 2 shared cores oversubscribed
    OpenMP threads crawl. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# C=8 (smoke), 16+16 images in batches of 8 (2 steps an epoch), one eval batch
METHOD_RUN_ARGS = ("--preset", "smoke", "--quiet", "--set", "data_subset=16", "--set", "batch_size=8",
         "--set", "eval_batches=1")


@pytest.fixture(scope="session")
def method_cli(bench_path, cifar_root, nbs_home):
    """(argv builder, env) for `nbs run` with explicit --benchmark and --data-root."""
    env = {**os.environ, "NBS_HOME": str(nbs_home), **SUBPROCESS_ENV}

    def argv(method: str, out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "nasbench_stability.cli.main", "run", "--method", method, "--out", str(out),
                "--benchmark", str(bench_path), "--data-root", str(cifar_root), *METHOD_RUN_ARGS, *extra]

    return argv, env



# ---- a small real study for the analysis / plot / report tests ------------------------------------
METHODS = ("darts-v1", "single-darts")
SEEDS = 2
EPOCHS = 4
HESSIAN_EVERY = 2      # the Hessian costs more than the 2 training steps of an epoch here
RUN_SETTINGS = ("--preset", "smoke", "--epochs", str(EPOCHS), "--set", "data_subset=128", "--set", "eval_batches=1",
                "--hessian-every", str(HESSIAN_EVERY), "--set", "hessian_batches=1")


@dataclass(frozen=True)
class Study:
    root: Path
    runs: Path                 # the --out folder holding one run directory per (method, seed)
    benchmark_path: Path
    data_root: Path
    home: Path

    @property
    def benchmark(self) -> Benchmark:
        return Benchmark.load(self.benchmark_path)

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs.iterdir() if p.is_dir())


def _run_study(study: Study) -> None:
    env = {**os.environ, "NBS_HOME": str(study.home), **SUBPROCESS_ENV}
    # the methods at once, one process each (one thread each: the machine's 2 cores; runs under one --out
    # may run concurrently, test_engine_runs checks that)
    procs = [subprocess.Popen([sys.executable, "-m", "nasbench_stability.cli.main", "run", "--method", method,
                               "--seeds", str(SEEDS), "--out", str(study.runs), "--data-root", str(study.data_root),
                               "--benchmark", str(study.benchmark_path), "--device", "cpu", "--quiet", *RUN_SETTINGS],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for method in METHODS]
    for proc in procs:
        output, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, output


@pytest.fixture(scope="session")
def study(tmp_path_factory, bench_path, cifar_root, nbs_home) -> Study:
    """Real smoke runs (2 methods × 2 seeds, Hessian recorded) shared by the analysis, plot and report tests."""
    def study_in(root: Path) -> Study:
        return Study(root, root / "runs", bench_path, cifar_root, nbs_home)

    made = study_in(built_once(tmp_path_factory, "nbs-analysis-study", lambda root: _run_study(study_in(root))))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBS_HOME", str(made.home))
        yield made


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# ---- run directories for the file-safety tests (copied, never changed) -----------------------------
class _StopAfter(Exception):
    pass


@pytest.fixture(scope="session")
def reference_run(nbs_env, tmp_path_factory) -> Path:
    """A finished 3-epoch smoke run of darts-v1 made by `nbs run` (see files_helpers.RUN_ARGS)."""
    from files_helpers import RUN_ARGS, RUN_NAME, nbs_call

    def make(out: Path) -> None:
        proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    return built_once(tmp_path_factory, "reference-run", make) / RUN_NAME


@pytest.fixture(scope="session")
def interrupted_run(bench_path, cifar_root, nbs_home, tmp_path_factory) -> Path:
    """The same run stopped right after epoch 2 was checkpointed (what a kill there leaves), made in
    this process: stopping from the log callback is exact where a timed kill is not."""
    from nasbench_stability.engine.config import resolve_config
    from nasbench_stability.engine.run import Run

    config = resolve_config("darts-v1", preset="smoke", epochs=3,
                            overrides={"data_subset": "16", "batch_size": "8", "eval_batches": "1"})

    def log(line: str) -> None:
        if "epoch 2/3" in line:
            raise _StopAfter

    def make(out: Path) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the `nbs` subprocesses (SUBPROCESS_ENV): same float sums, same records
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("NBS_HOME", str(nbs_home))
                with pytest.raises(_StopAfter):
                    Run(config, out, benchmark=Benchmark.load(bench_path), data_root=cifar_root, progress=False,
                        log=log).execute()
        finally:
            torch.set_num_threads(threads)

    return built_once(tmp_path_factory, "interrupted-run", make) / config.run_name
