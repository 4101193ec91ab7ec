"""The Ray executor's bounded wait for a node, against a scripted cluster (the nodes Ray reports, call by call):
a node that leaves while tasks wait is waited for `node_wait` seconds, then the sweep ends in one line; a node
that comes back within the wait lets the tasks finish; the local cluster never waits. A real cluster is in
test_sweep_ray.py (a node joins there); leaving is scripted here, where its timing is exact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nasbench_stability.errors import ConfigError
from nasbench_stability.sweep import ray_executor
from nasbench_stability.sweep.ray_executor import RayExecutor, on_loopback
from nasbench_stability.sweep.worker import RunEnvironment

BIG = {"Alive": True, "Resources": {"CPU": 4.0}}
SMALL = {"Alive": True, "Resources": {"CPU": 2.0}}


class Ref:
    """A task's object reference: hashable by identity, as Ray's are used (dictionary keys)."""

    def __init__(self, unit):
        self.unit = unit


class ScriptedRay:
    """Just what RayExecutor calls. ``nodes_at(t)`` gives the alive nodes t seconds after init; a task ends
    ``finish_after`` seconds after init (never, if None)."""

    def __init__(self, nodes_at, finish_after: float | None):
        self.nodes_at, self.finish_after, self.t0 = nodes_at, finish_after, None
        self.submitted = 0

    def init(self, **_):
        self.t0 = time.monotonic()

    def shutdown(self):
        pass

    def nodes(self):
        return self.nodes_at(time.monotonic() - self.t0)

    def remote(self, _fn):
        ray = self

        class Task:
            def options(self, **_):
                return self

            def remote(self, unit, _env):
                ray.submitted += 1
                return Ref(unit)

        return Task()

    def wait(self, pending, num_returns, timeout):
        if self.finish_after is not None and time.monotonic() - self.t0 >= self.finish_after:
            return pending[:1], pending[1:]
        time.sleep(timeout)
        return [], pending

    def get(self, ref):
        return [("outcome", ref.unit)]


def _run(monkeypatch, ray, node_wait: float, address: str | None = "10.0.0.9:6379"):
    monkeypatch.setattr(ray_executor, "import_ray", lambda: ray)
    monkeypatch.setattr(ray_executor, "check_reachable", lambda address: None)
    executor = RayExecutor(address=address, cpus_per_task=3, gpus_per_task=0, node_wait=node_wait, poll=0.05)
    env = RunEnvironment(benchmark_path=Path("unused"), data_roots=(), nbs_home=Path("unused"))
    done = []
    start = time.monotonic()
    try:
        outcomes = executor.run(["unit"], env, lambda unit, outcome: done.append(unit))
    finally:
        elapsed = time.monotonic() - start
    return outcomes, done, elapsed


def test_a_node_that_leaves_while_tasks_wait_ends_the_sweep_after_node_wait(monkeypatch, capsys):
    ray = ScriptedRay(lambda t: [BIG] if t < 0.3 else [SMALL], finish_after=None)
    with pytest.raises(ConfigError) as err:
        _run(monkeypatch, ray, node_wait=0.5)
    assert ray.submitted == 1   # the node fitted at the start: the task was sent
    assert str(err.value) == ("no node of the Ray cluster at 10.0.0.9:6379 can take a task of 3 CPUs and 0 GPUs "
                              "after 0.5 s (its largest node has 2 CPUs and 0 GPUs); lower "
                              "--cpus-per-task/--gpus-per-task or add such a node")
    assert capsys.readouterr().err == ("nbs: waiting up to 0.5 s while tasks wait for a node of the Ray cluster at "
                                       "10.0.0.9:6379 that can take a task of 3 CPUs and 0 GPUs (its largest node "
                                       "has 2 CPUs and 0 GPUs)\n")


def test_a_node_back_within_the_wait_lets_the_tasks_finish(monkeypatch, capsys):
    # gone twice for 0.4 s, each under the 1 s wait, the two 1.1 s apart: the wait is counted from each leaving
    ray = ScriptedRay(lambda t: [SMALL] if 0.2 <= t < 0.6 or 0.9 <= t < 1.3 else [BIG], finish_after=1.5)
    outcomes, done, elapsed = _run(monkeypatch, ray, node_wait=1.0)
    assert outcomes == [[("outcome", "unit")]] and done == ["unit"]
    assert elapsed >= 1.5
    assert capsys.readouterr().err.startswith("nbs: waiting up to 1 s while tasks wait")


def test_no_node_at_the_start_is_waited_for_then_refused(monkeypatch, capsys):
    ray = ScriptedRay(lambda t: [SMALL], finish_after=0.0)
    with pytest.raises(ConfigError, match=r"after 0\.4 s \(its largest node has 2 CPUs"):
        _run(monkeypatch, ray, node_wait=0.4)
    assert ray.submitted == 0
    assert capsys.readouterr().err.startswith("nbs: waiting up to 0.4 s before the tasks start")


def test_a_node_that_joins_within_the_wait_gets_the_task(monkeypatch):
    ray = ScriptedRay(lambda t: [SMALL] if t < 0.3 else [SMALL, BIG], finish_after=0.0)
    outcomes, done, elapsed = _run(monkeypatch, ray, node_wait=5.0)
    assert ray.submitted == 1 and done == ["unit"]
    assert 0.3 <= elapsed < 5.0


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1:6379", True), ("127.0.1.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True),
    ("10.0.0.9:6379", False), ("head.cluster:6379", False), ("auto", False), ("ray://127.0.0.2:10001", False)])
def test_which_addresses_are_this_machines_loopback(address, loopback):
    assert on_loopback(address) is loopback


@pytest.mark.parametrize("args, message", [
    (("--executor", "ray", "--address", "10.0.0.9:6379", "--node-wait", "-1"), "--node-wait must be a number of seconds"),
    (("--executor", "ray", "--address", "10.0.0.9:6379", "--node-wait", "nan"), "--node-wait must be a number of seconds"),
    (("--executor", "ray", "--address", "10.0.0.9:6379", "--node-wait", "inf"), "--node-wait must be a number of seconds"),
    (("--executor", "ray", "--node-wait", "30"), "--node-wait is for a cluster given by --address"),
    (("--node-wait", "30",), "--node-wait is for --executor ray")])
def test_a_node_wait_that_means_nothing_is_one_line_before_any_work(cli, tmp_path, args, message):
    study = tmp_path / "rs.toml"
    study.write_text('methods = ["rs"]\nseeds = 1\n')
    result = cli("sweep", str(study), "--benchmark", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "out"),
                 *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"nbs: error: {message}"), result.stderr
    assert not (tmp_path / "out").exists() and result.stdout == ""
