"""`nbs sweep --executor ray` on a real Ray cluster started on 127.0.0.1 for this module: a 2 methods ×
2 seeds smoke study through Ray writes, record for record, what a local sweep of the same file writes;
a Ray worker killed mid-run leaves a run that re-running the sweep resumes (not restarts) to the same
records; the cluster listens on loopback only; a task no node fits waits --node-wait seconds for a node
(one joins here) and is then refused. The cluster is stopped at the end even when a test fails."""

from __future__ import annotations

import importlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SUBPROCESS_ENV
from files_helpers import pids_where
from nasbench_stability.engine.records import TIMING_COLUMNS, read_records, record_path
from nasbench_stability.engine.run_lock import LOCK_FILE
from nasbench_stability.engine.status import read_status

pytestmark = pytest.mark.slow

STUDY = """
name = "ray-smoke"
preset = "smoke"       # C=8, N=1, 2 epochs
device = "cpu"
seeds = 2

[set]                  # 16 + 16 images in batches of 8: two steps an epoch, one eval batch
data_subset = 16
batch_size = 8
eval_batches = 1

[methods.darts-v1]
[methods.single-darts]
"""
RUNS = [f"batch_size=8,data_subset=16,eval_batches=1/{m}-cifar10-seed{s}"
        for m in ("darts-v1", "single-darts") for s in (0, 1)]


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study") / "ray-smoke.toml"
    path.write_text(STUDY)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Processes of session ``sid``: every process of the cluster (workers get process groups of their
    own, but stay in the session of `ray start`)."""
    return pids_where(3, sid)


def _ray_env(nbs_home: Path, temp: Path, single_node: bool) -> dict[str, str]:
    return {**os.environ, **SUBPROCESS_ENV, "NBS_HOME": str(nbs_home), "RAY_TMPDIR": str(temp),
            # the workers import this checkout, as the test process does
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            # no token authentication on a test cluster (Ray turns it on where ~/.ray/auth_token exists);
            # the head and this process, the driver, must agree
            "RAY_AUTH_MODE": "disabled",
            # Ray's single-node mode keeps 127.0.0.1 as the node address: every port on loopback (README)
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0" if single_node else "1"}


def _kill_session(proc: subprocess.Popen) -> None:
    """Every process of ``proc``'s session (by id: `ray stop` would stop every Ray cluster on the machine)."""
    for pid in _session_pids(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


@dataclass(frozen=True)
class RayHead:
    address: str
    process: subprocess.Popen   # `ray start --head --block`, leader of a session holding the whole cluster
    nbs_home: Path


@pytest.fixture(scope="module")
def ray_cluster(nbs_home):
    """A Ray head on 127.0.0.1 with 2 CPUs, started as the README says for a cluster on this machine only.
    Stopped by killing the processes of its session."""
    importlib.import_module("ray")   # in the dev extra: a missing Ray fails these tests, never skips them

    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="nbsray", dir="/tmp"))   # unix socket paths must stay < 108 characters
    with pytest.MonkeyPatch.context() as mp, open(temp / "head.log", "w") as log:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        head = subprocess.Popen(
            [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head", "--block",
             "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}"],
            env=_ray_env(nbs_home, temp, single_node=True), start_new_session=True, stdout=log,
            stderr=subprocess.STDOUT)
        try:
            _wait_for(port, head, temp / "head.log")
            yield RayHead(f"127.0.0.1:{port}", head, nbs_home)
        finally:
            _kill_session(head)
            shutil.rmtree(temp, ignore_errors=True)


def _wait_for(port: int, head: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if head.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the Ray head did not start:\n{log.read_text()}") from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def local_sweep(cli, study_file, tmp_path_factory) -> Path:
    """The undisturbed local sweep of the study (in this process, one torch thread as a Ray task has)."""
    import torch

    out = tmp_path_factory.mktemp("local") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = cli("sweep", str(study_file), "--out", str(out), "--quiet")
    finally:
        torch.set_num_threads(threads)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 runs: 4 finished, 0 skipped" in result.stdout, result.stdout
    return out


def comparable(run_dir: Path) -> pd.DataFrame:
    records = read_records(run_dir)
    assert list(records.epoch) == [1, 2], run_dir
    return records.drop(columns=list(TIMING_COLUMNS))


def assert_same_records(out: Path, reference: Path) -> None:
    for run in RUNS:
        pd.testing.assert_frame_equal(comparable(out / run), comparable(reference / run), check_exact=True)


def test_a_ray_sweep_writes_the_local_sweeps_records(cli, ray_cluster, study_file, local_sweep, tmp_path):
    out = tmp_path / "ray"
    result = cli("sweep", str(study_file), "--executor", "ray", "--address", ray_cluster.address, "--out", str(out),
                 "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ray-smoke: 4 runs: 4 finished, 0 skipped (ended before), 0 diverged, 0 failed" in result.stdout
    assert sorted(str(p.parent.relative_to(out)) for p in out.rglob("config.json")) == sorted(RUNS)
    assert_same_records(out, local_sweep)
    # idempotent: the ended runs are answered from their run directories (the cluster is not needed)
    again = cli("sweep", str(study_file), "--executor", "ray", "--address", "127.0.0.1:1", "--out", str(out))
    assert again.returncode == 0 and "4 runs: 0 finished, 4 skipped" in again.stdout, again.stdout + again.stderr


def _lock_holder(lock: Path) -> int | None:
    """The process that has ``lock`` open (the run's worker), from /proc."""
    target = str(lock.resolve())
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == target:
                return int(fd.parent.parent.name)
        except OSError:
            continue
    return None


def _kill_between_epochs(out: Path, stop: threading.Event, killed: dict) -> None:
    """Watch the runs; SIGKILL the worker of the first one caught with epoch 1 checkpointed and epoch 2
    under way (what it says in ``killed``: the run and its epoch-1 record's file identity)."""
    def between(run: str) -> bool:
        status, _ = read_status(out / run)
        return status.get("state") == "running" and status.get("epochs_done") == 1

    while not stop.is_set():
        for run in RUNS:
            if between(run):
                pid = _lock_holder(out / run / LOCK_FILE)
                # again, just before the kill: the search through /proc takes long on a loaded machine, and a
                # smoke epoch is short (the run may have finished meanwhile, its lock still open)
                if pid is not None and between(run):
                    first = record_path(out / run, 1).stat()
                    os.kill(pid, signal.SIGKILL)
                    killed.update(run=run, first=(first.st_ino, first.st_mtime_ns))
                    return
        time.sleep(0.02)


def test_a_killed_ray_worker_is_resumed_by_rerunning_the_sweep(cli, ray_cluster, study_file, local_sweep, tmp_path):
    out = tmp_path / "ray"
    killed: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_between_epochs, args=(out, stop, killed), daemon=True)
    killer.start()
    try:
        # no Ray retry: the sweep reports the killed run failed, as a user sees it past the retries
        first = cli("sweep", str(study_file), "--executor", "ray", "--address", ray_cluster.address, "--out", str(out),
                    "--max-retries", "0", "--quiet")
    finally:
        stop.set()
        killer.join()
    assert killed, f"no run was caught between its epochs:\n{first.stdout}\n{first.stderr}"
    run = out / killed["run"]
    assert first.returncode == 3, first.stdout + first.stderr
    assert "4 runs: 3 finished, 0 skipped (ended before), 0 diverged, 1 failed" in first.stdout, first.stdout
    assert f"{run}: WorkerCrashedError" in first.stderr and "re-run `nbs sweep" in first.stderr, first.stderr
    assert read_status(run)[0] == {**read_status(run)[0], "state": "running", "epochs_done": 1}

    again = cli("sweep", str(study_file), "--executor", "ray", "--address", ray_cluster.address, "--out", str(out),
                "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 runs: 1 finished, 3 skipped" in again.stdout, again.stdout
    # resumed from the checkpoint, not restarted: epoch 1's record is the one written before the kill
    after = record_path(run, 1).stat()
    assert (after.st_ino, after.st_mtime_ns) == killed["first"]
    assert_same_records(out, local_sweep)


def test_a_relative_out_means_the_users_folder_on_the_ray_workers(cli, ray_cluster, tmp_path, monkeypatch):
    """--out relative to the folder the sweep is started in, not to a Ray worker's own folder (on another node,
    another machine's): the driver makes it absolute. A table search (no dataset, under a second) keeps this light."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rs.toml").write_text('methods = ["rs"]\nseeds = 2\n[set]\nmax_queries = 10\n')
    rel = f"relout-{os.getpid()}-{tmp_path.name}"   # a name nothing else has: what a wrong worker folder gets
    try:
        result = cli("sweep", "rs.toml", "--executor", "ray", "--address", ray_cluster.address, "--out", rel, "--quiet")
        assert not (REPO / rel).exists()   # the workers' folder (the cluster's), where the runs used to land
    finally:
        shutil.rmtree(REPO / rel, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs: 2 finished" in result.stdout, result.stdout
    for seed in (0, 1):
        run = tmp_path / rel / "max_queries=10" / f"rs-cifar10-seed{seed}"
        assert read_status(run)[0].get("state") == "finished", run
        assert f"{run}: finished" in result.stdout   # the progress lines name where the runs are


def test_a_cluster_started_as_the_readme_says_listens_on_loopback_only(cli, ray_cluster, tmp_path):
    """The hand-started head (single-node mode, 127.0.0.1) and a sweep joined to it by `--address 127.0.0.1:PORT`
    (nbs puts its driver in the same mode for a loopback address: in cluster mode it would look for its node at
    the network address): every socket of the cluster's processes and the driver is on loopback, as `ss` sees it
    while the sweep's tasks run."""
    result, seen = _sweep_watching_sockets(cli, tmp_path, lambda: set(_session_pids(ray_cluster.process.pid)),
                                           "--address", ray_cluster.address)
    assert result.returncode == 0 and "2 runs: 2 finished" in result.stdout, result.stdout + result.stderr
    names = " ".join(seen)
    assert "gcs_server" in names and "raylet" in names, seen
    assert {k: v for k, v in seen.items() if not _is_loopback(v)} == {}, seen


def test_a_task_no_node_fits_waits_node_wait_seconds_then_is_one_line(cli, ray_cluster, tmp_path):
    """A cluster given by --address may grow (an autoscaler): a task no node fits (3 CPUs; the head has 2) is
    waited for --node-wait seconds, saying so on stderr, then refused in one line, before any run starts."""
    study = tmp_path / "rs.toml"
    study.write_text(RS_STUDY)
    start = time.monotonic()
    result = cli("sweep", str(study), "--executor", "ray", "--address", ray_cluster.address, "--out",
                 str(tmp_path / "out"), "--cpus-per-task", "3", "--node-wait", "4", "--quiet")
    assert time.monotonic() - start >= 4
    assert result.returncode == 2, result.stdout + result.stderr
    waiting, refused = result.stderr.splitlines()
    where = f"of the Ray cluster at {ray_cluster.address}"
    assert waiting.startswith(f"nbs: waiting up to 4 s before the tasks start for a node {where} that can take "
                              "a task of 3 CPUs and 0 GPUs (its largest node has 2 CPUs"), waiting
    assert refused.startswith(f"nbs: error: no node {where} can take a task of 3 CPUs and 0 GPUs after 4 s"), refused
    assert not list((tmp_path / "out").rglob("status.json"))


JOIN_NODE = """
# A second node on this machine, on loopback. Ray's start command refuses to join in single-node mode, and in
# cluster mode turns 127.0.0.1 into the machine's network address; here: cluster mode, the address as given.
import ray._private.ray_constants as constants
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
services.node_ip_address_from_perspective = lambda address=None: "127.0.0.1"
constants.ENABLE_RAY_CLUSTER = True
from ray.scripts.scripts import main
main()
"""


def test_a_node_that_joins_while_the_sweep_waits_takes_its_tasks(cli, ray_cluster, tmp_path, monkeypatch):
    """The wait is for a node: one with 4 CPUs joins once the sweep says it waits, and the 3-CPU tasks run on it.
    (Last of the module cluster's tests: the cluster has two nodes after it.)"""
    from nasbench_stability.sweep import ray_executor

    waiting = threading.Event()
    announce = ray_executor._announce_wait
    monkeypatch.setattr(ray_executor, "_announce_wait", lambda *a: (announce(*a), waiting.set()))
    study = tmp_path / "rs.toml"
    study.write_text(RS_STUDY)
    temp = Path(tempfile.mkdtemp(prefix="nbsray", dir="/tmp"))
    node: list[subprocess.Popen] = []

    def join() -> None:
        if waiting.wait(timeout=300):
            with open(temp / "node.log", "w") as log:
                node.append(subprocess.Popen(
                    [sys.executable, "-c", JOIN_NODE, "start", f"--address={ray_cluster.address}", "--block",
                     "--node-ip-address=127.0.0.1", "--num-cpus=4", "--disable-usage-stats"],
                    env=_ray_env(ray_cluster.nbs_home, temp, single_node=False), start_new_session=True,
                    stdout=log, stderr=subprocess.STDOUT))

    joiner = threading.Thread(target=join, daemon=True)
    joiner.start()
    try:
        result = cli("sweep", str(study), "--executor", "ray", "--address", ray_cluster.address, "--out",
                     str(tmp_path / "out"), "--cpus-per-task", "3", "--node-wait", "300", "--quiet")
        assert node, "the sweep never said it waits"
        log = (temp / "node.log").read_text()
        assert result.returncode == 0, result.stdout + result.stderr + log
        assert "2 runs: 2 finished" in result.stdout, result.stdout
        assert result.stderr.startswith("nbs: waiting up to 300 s before the tasks start"), result.stderr
        assert "error" not in result.stderr, result.stderr
    finally:
        waiting.set()
        joiner.join()
        for proc in node:
            _kill_session(proc)
        shutil.rmtree(temp, ignore_errors=True)


# --- a local Ray (no --address): loopback only, and requests it cannot meet refused --------------------------

RS_STUDY = 'methods = ["rs"]\nseeds = 2\n[set]\nmax_queries = 10\n'   # a table search: no dataset, seconds


@pytest.fixture
def local_ray(monkeypatch, tmp_path_factory):
    """For a sweep that starts Ray in this process: its own short temp dir (unix socket paths < 108
    characters), no token authentication; afterwards no process it started may be left."""
    temp = Path(tempfile.mkdtemp(prefix="nbsray", dir="/tmp"))
    monkeypatch.setenv("RAY_TMPDIR", str(temp))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    try:
        yield
    finally:
        left = _ray_descendants()
        for pid in left:   # a leak is a failure below, but never a cluster left running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def _ray_descendants() -> list[int]:
    """Processes below this one in its session: what a Ray started in this process runs (the module's
    cluster, started in a session of its own, is not among them)."""
    me, sid = os.getpid(), os.getsid(0)
    found, grown = {me}, True
    while grown:
        grown = False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            if pid not in found and int(fields[1]) in found and int(fields[3]) == sid:
                found.add(pid)
                grown = True
    return sorted(found - {me})


def _listening(pids: set[int]) -> dict[str, str]:
    """The TCP and UDP sockets ``pids`` listen on, from `ss` (what the kernel says, not what flags asked
    for): "process pid=N" -> local address."""
    lines = subprocess.run(["ss", "-ltunpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    found = {}
    for line in lines:
        fields = line.split()
        for pid in pids:
            if f"pid={pid}," in line:
                name = line.split('(("', 1)[1].split('"', 1)[0] if '(("' in line else "?"
                found[f"{fields[0]} {name} pid={pid}"] = fields[4]
    return found


def _is_loopback(local: str) -> bool:
    host = local.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:   # "*", "0.0.0.0" written as a name: every interface
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip   # a dual-stack socket bound to ::ffff:127.0.0.1
    return ip.is_loopback


def _sweep_watching_sockets(cli, tmp_path: Path, cluster_pids, *options: str):
    """(result, seen): a table-search sweep through Ray, with the sockets that the processes ``cluster_pids()``
    names and this one (the driver) listen on, as `ss` sees them every 0.1 s while it runs."""
    study = tmp_path / "rs.toml"
    study.write_text(RS_STUDY)
    seen: dict[str, str] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(_listening(cluster_pids() | {os.getpid()}))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = cli("sweep", str(study), "--executor", "ray", *options, "--out", str(tmp_path / "out"), "--quiet")
    finally:
        stop.set()
        watcher.join()
    return result, seen


def test_a_local_ray_listens_on_loopback_only(cli, local_ray, tmp_path):
    """Every socket of every process of the Ray that `--executor ray` without --address starts (GCS, raylet,
    object manager, runtime-env agent, workers, the driver's own) is bound to loopback, as `ss` sees it
    while the sweep runs; and there is no dashboard."""
    result, seen = _sweep_watching_sockets(cli, tmp_path, lambda: set(_ray_descendants()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs: 2 finished" in result.stdout, result.stdout
    names = " ".join(seen)
    assert "gcs_server" in names and "raylet" in names, seen   # the watch saw the cluster, not nothing
    assert "dashboard" not in names.lower(), seen
    assert {k: v for k, v in seen.items() if not _is_loopback(v)} == {}, seen


@pytest.mark.parametrize("option, value", [("--gpus-per-task", "1"), ("--cpus-per-task", "64")])
def test_a_task_the_local_ray_cannot_take_is_one_line(cli, local_ray, tmp_path, option, value):
    """No GPU here, 2 CPUs: such a task used to wait forever (silently with --quiet)."""
    study = tmp_path / "rs.toml"
    study.write_text(RS_STUDY)
    start = time.monotonic()
    result = cli("sweep", str(study), "--executor", "ray", "--out", str(tmp_path / "out"), "--quiet", option, value)
    assert time.monotonic() - start < 240   # Ray's start on the loaded test machine; the check itself is at once
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "no node of the local Ray cluster can take a task of" in result.stderr, \
        result.stderr
    assert not (tmp_path / "out" / "max_queries=10" / "rs-cifar10-seed0" / "status.json").exists()


@pytest.mark.parametrize("option, value", [("--cpus-per-task", v) for v in ("inf", "nan", "1e-9", "0", "-1")]
                         + [("--gpus-per-task", v) for v in ("nan", "inf", "1.5", "-1", "1e-9")])
def test_a_task_request_ray_cannot_schedule_is_one_line_before_any_work(cli, tmp_path, option, value):
    """Before the study is even read (a missing benchmark table would be built, a dataset decoded): one line,
    exit 2, never Ray's traceback at submit time."""
    study = tmp_path / "rs.toml"
    study.write_text(RS_STUDY)
    result = cli("sweep", str(study), "--executor", "ray", "--benchmark", str(tmp_path / "missing.parquet"),
                 "--out", str(tmp_path / "out"), option, value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"nbs: error: {option} must be"), result.stderr
    assert not (tmp_path / "out").exists() and result.stdout == ""
