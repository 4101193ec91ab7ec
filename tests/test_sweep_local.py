"""`nbs sweep` with the local executor's worker processes: a run that cannot go on is reported failed
and left as it was, the other runs go on, and the exit status says the study is not finished; a worker
killed with `kill -9` fails its own run only, and workers die with the sweep's process."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO, SUBPROCESS_ENV
from files_helpers import nbs_call, pids_where, read_only
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.records import read_records
from nasbench_stability.engine.run_lock import LOCK_FILE
from nasbench_stability.engine.status import read_status
from nasbench_stability.sweep.expand import expand, work_units
from nasbench_stability.sweep.local import LocalExecutor
from nasbench_stability.sweep.study import load_study
from nasbench_stability.sweep.worker import RunEnvironment

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
    # a re-run meets the same config clash: no advice to re-run, but what to do
    assert "re-run `nbs sweep" not in result.stderr
    assert "failed for a reason a re-run meets again (above); fix that first" in result.stderr
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


# ---- a dead worker ----------------------------------------------------------------------------------
def _children(parent: int) -> list[int]:
    return pids_where(1, parent)


def _workers(parent: int) -> list[int]:
    """The pool's worker processes among ``parent``'s children, alive."""
    def spawned(pid: int) -> bool:
        try:
            return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    return [pid for pid in _children(parent) if spawned(pid) and _alive(pid)]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_dead_worker_fails_its_own_unit_and_the_queued_ones_run(tmp_path):
    """A real pool of 2 spawned workers over 5 units; the worker that gets seed 1 SIGKILLs itself."""
    study = tmp_path / "five.toml"
    study.write_text('preset = "smoke"\ndevice = "cpu"\nseeds = 5\nmethods = ["single-darts"]\n')
    units = work_units(expand(load_study(study), tmp_path / "out"), None)
    env = RunEnvironment(benchmark_path=tmp_path, data_roots=(), nbs_home=tmp_path)
    reported = []
    from sweep_tasks import finish_but_seed_1_dies

    outcomes = LocalExecutor(jobs=2, task=finish_but_seed_1_dies).run(units, env, lambda u, o: reported.extend(o))
    states = {o.run_dir.name: o.state for unit in outcomes for o in unit}
    assert states == {f"single-darts-cifar10-seed{s}": "failed" if s == 1 else "finished" for s in range(5)}
    dead = next(o for unit in outcomes for o in unit if o.state == "failed")
    assert dead.message.startswith("its worker process was killed (SIGKILL) before the run ended"), dead.message
    assert dead.retry and sorted(o.run_dir.name for o in reported) == sorted(states)
    assert not _workers(os.getpid())   # every worker exited or was stopped


def _kill_a_worker_between_epochs(out: Path, stop: threading.Event, killed: dict) -> None:
    """SIGKILL the worker process (a child of this process) of the first run caught with epoch 1 checkpointed
    and epoch 2 under way; note the run."""
    while not stop.is_set():
        for child in _children(os.getpid()):
            for fd in Path(f"/proc/{child}/fd").glob("*"):
                try:
                    target = Path(os.readlink(fd))
                except OSError:
                    continue
                if target.name == LOCK_FILE and out in target.parents:
                    status, _ = read_status(target.parent)
                    if status.get("state") == "running" and status.get("epochs_done") == 1:
                        os.kill(child, signal.SIGKILL)
                        killed["run"] = target.parent
                        return
        time.sleep(0.02)


def test_kill_9_of_one_worker_fails_that_run_only(cli, nbs_env, tmp_path):
    folder = tmp_path / "my study"   # a space: the re-run advice must quote it
    folder.mkdir()
    study = folder / "local.toml"
    study.write_text(STUDY.replace("seeds = 2", "seeds = 4"))
    out = tmp_path / "out"
    killed: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_worker_between_epochs, args=(out, stop, killed), daemon=True)
    killer.start()
    try:
        result = cli("sweep", str(study), "--out", str(out), "--jobs", "2", "--quiet")
    finally:
        stop.set()
        killer.join()
    assert killed, f"no run was caught between its epochs:\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 3, result.stdout + result.stderr
    # exactly the killed run failed; the other worker's run and the queued runs finished
    assert "local: 4 runs: 3 finished, 0 skipped (ended before), 0 diverged, 1 failed" in result.stdout, result.stdout
    assert f"{killed['run']}: its worker process was killed (SIGKILL) before the run ended" in result.stderr
    assert result.stderr.count("its worker process") == 1, result.stderr
    for run in (out / POINT).iterdir():
        if run != killed["run"]:
            assert list(read_records(run).epoch) == [1, 2], run
    # the advice is the command as given, quoted for a shell
    again = shlex.join(["nbs", "sweep", str(study), "--out", str(out), "--jobs", "2", "--quiet"])
    assert f"re-run `{again}` to resume them" in result.stderr, result.stderr
    assert f"'{study}'" in again

    # re-running resumes the killed run (in this process: --jobs 1), the others are skipped
    rerun = cli("sweep", str(study), "--out", str(out), "--quiet")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "4 runs: 1 finished, 3 skipped (ended before)" in rerun.stdout, rerun.stdout
    assert list(read_records(killed["run"]).epoch) == [1, 2]

    # an ended sweep on storage that has become read-only still answers (nothing to write)
    with read_only(out) as prefix:
        proc = nbs_call(nbs_env, "sweep", study, "--out", out, "--quiet", prefix=prefix)
    assert proc.returncode == 0 and "4 runs: 0 finished, 4 skipped" in proc.stdout, proc.stdout + proc.stderr


def test_workers_exit_when_the_sweep_process_is_killed(tmp_path):
    """A driver (a new process) whose two workers are mid-unit (sleeping ten minutes) is SIGKILLed: its
    workers exit within seconds instead of running on, unseen."""
    units = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from pathlib import Path\n"
              "from nasbench_stability.sweep.local import LocalExecutor\n"
              "from nasbench_stability.sweep.worker import RunEnvironment\n"
              "from sweep_tasks import note_pid_and_sleep\n"
              "env = RunEnvironment(benchmark_path=Path('/'), data_roots=(), nbs_home=Path('/'))\n"
              f"LocalExecutor(jobs=2, task=note_pid_and_sleep).run({[str(u) for u in units]!r}, env, print)\n")
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, **SUBPROCESS_ENV})
    try:
        deadline = time.monotonic() + 300
        while not (units[0].exists() and units[1].exists()):
            assert driver.poll() is None and time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        workers = [int(u.read_text()) for u in units[:2]]
        assert all(_alive(pid) for pid in workers)
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:   # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, "workers outlived the sweep's process"
    assert not units[2].exists()   # the queued unit never started
