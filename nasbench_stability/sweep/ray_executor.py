"""The Ray executor: one Ray task per work unit (a run, or the packed seeds of one grid point).

Each task asks for ``cpus_per_task`` CPUs and ``gpus_per_task`` of a GPU, and writes its run
directories itself, so ``--out`` must be a file system that every node sees (NFS, Lustre, ...), as
must the benchmark table, the datasets and ``NBS_HOME`` (the decoded dataset cache); nbs itself must be
installed on every node. Ray is optional (``pip install -e '.[ray]'``) and imported only here.

A worker killed mid-run leaves its run's last checkpoint and a lock that died with the process: Ray
re-runs the task up to ``max_retries`` times, and the run resumes from the checkpoint; past that the
run is reported failed, and re-running the sweep resumes it the same way.

Without an address Ray starts here, on loopback only (see :func:`_loopback_only`), without the dashboard;
an address on loopback (a cluster started by hand on this machine) is joined in the same single-node mode.
A task no node can take is refused in one line: on the local cluster at once (it cannot grow); on a
cluster given by address after ``node_wait`` seconds without a node that fits (an autoscaler may add one
meanwhile; a line on stderr says that it waits), before the tasks start and again while tasks wait.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .. import paths
from ..bench.sources import one_line
from ..destinations import reason
from ..errors import ConfigError
from .executors import OnDone
from .expand import WorkUnit
from .worker import RunEnvironment, RunOutcome, describe_error, failed, run_unit

RAY_MISSING = "Ray is not installed: pip install -e '.[ray]'"
LOOPBACK = "127.0.0.1"
# Ray's single-node switch (meant for macOS/Windows, honoured everywhere): without it Ray turns a node
# address of 127.0.0.1 into the machine's network address, and then listens on every interface
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
NODE_WAIT_S = 60.0   # our choice: how long a cluster given by address has to offer a node that can take a task
POLL_S = 2.0


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class RayExecutor:
    address: str | None = None   # a running cluster ("HOST:PORT", "auto"); None: start Ray on this machine
    cpus_per_task: float = 1.0   # also the task's torch threads (at least 1)
    gpus_per_task: float | None = None   # a fraction shares one GPU; None: 1 for a CUDA run, else 0
    max_retries: int = 1         # Ray's re-runs of a task whose worker died (each resumes the checkpoint)
    node_wait: float = NODE_WAIT_S   # with an address: seconds without a node that fits before giving up (>= 0)
    poll: float = POLL_S         # seconds between looks at the cluster's nodes while waiting

    def run(self, units: list[WorkUnit], env: RunEnvironment, on_done: OnDone) -> list[list[RunOutcome]]:
        ray = import_ray()
        env = dataclasses.replace(env, threads=max(1, int(self.cpus_per_task)))
        with _loopback_only(ray, self._on_this_machine):
            return self._run(ray, units, env, on_done)

    def _run(self, ray, units: list[WorkUnit], env: RunEnvironment, on_done: OnDone) -> list[list[RunOutcome]]:
        self._connect(ray, env)
        try:
            needs = {(self.cpus_per_task, self._gpus(unit)) for unit in units}
            # before any task: a request no node can meet would otherwise wait forever, silently
            self._wait_for_nodes(ray, needs, wait=0.0 if self.address is None else self.node_wait)
            task = ray.remote(_ray_task)
            refs = {task.options(num_cpus=self.cpus_per_task, num_gpus=self._gpus(unit), max_retries=self.max_retries,
                                 retry_exceptions=False).remote(unit, env): i for i, unit in enumerate(units)}
            outcomes: dict[int, list[RunOutcome]] = {}
            pending = list(refs)
            unfit_since = None   # when the pending tasks last found no node able to take them
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=self.poll)
                if not done:   # a node that fitted may have left: bounded, as before the start
                    waiting = {(self.cpus_per_task, self._gpus(units[refs[r]])) for r in pending}
                    if (unfit := _unfit(ray, waiting)) is None:
                        unfit_since = None
                    elif unfit_since is None:
                        unfit_since = time.monotonic()
                        _announce_wait(self._where(), unfit, self.node_wait, "while tasks wait")
                    elif time.monotonic() - unfit_since >= self.node_wait:
                        self._wait_for_nodes(ray, waiting, wait=0.0, waited=self.node_wait)
                    continue
                i = refs[done[0]]
                try:
                    outcomes[i] = ray.get(done[0])
                except Exception as err:  # noqa: BLE001 — a dead worker (past its retries), a lost node
                    outcomes[i] = failed(units[i], describe_error(err))
                on_done(units[i], outcomes[i])
            return [outcomes[i] for i in range(len(units))]
        finally:
            ray.shutdown()

    def _gpus(self, unit: WorkUnit) -> float:
        if self.gpus_per_task is not None:
            return self.gpus_per_task
        return 1.0 if unit.runs[0].config.device.startswith("cuda") else 0.0

    @property
    def _on_this_machine(self) -> bool:
        """Ray started here, or a cluster on this machine's loopback: joined in single-node mode, from 127.0.0.1."""
        return self.address is None or on_loopback(self.address)

    def _where(self) -> str:
        return f"the Ray cluster at {self.address}" if self.address else "the local Ray cluster"

    def _wait_for_nodes(self, ray, needs: set[tuple[float, float]], wait: float, waited: float = 0.0) -> None:
        """Return once every request in ``needs`` (CPUs, GPUs) fits some alive node; else, after ``wait``
        seconds, one line naming the request and the largest node."""
        deadline, announced = time.monotonic() + wait, False
        while (unfit := _unfit(ray, needs)) is not None:
            if time.monotonic() >= deadline:
                (cpus, gpus), largest = unfit
                after = f" after {waited + wait:g} s" if waited + wait else ""
                raise ConfigError(f"no node of {self._where()} can take a task of {cpus:g} CPUs and {gpus:g} GPUs"
                                  f"{after} ({largest}); lower --cpus-per-task/--gpus-per-task "
                                  f"or add such a node")
            if not announced:   # a wait of minutes must not look like a hang
                _announce_wait(self._where(), unfit, wait, "before the tasks start")
                announced = True
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))

    def _connect(self, ray, env: RunEnvironment) -> None:
        if self.address:
            check_reachable(self.address)
        # started here: on loopback (with _loopback_only), no dashboard, which would be one more port;
        # a cluster on this machine's loopback is joined from loopback
        placement = {"_node_ip_address": LOOPBACK} if self._on_this_machine else {}
        if self.address is None:
            placement["include_dashboard"] = False
        try:
            ray.init(address=self.address, log_to_driver=not env.quiet, logging_level=logging.WARNING,
                     configure_logging=True, **placement)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise ConfigError(f"cannot connect to {where}: {one_line(err)}") from None


def _unfit(ray, needs: set[tuple[float, float]]):
    """The first (CPUs, GPUs) request of ``needs`` that no alive node of the cluster can ever meet, with
    the largest node's resources in words; None if every one fits some node."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for cpus, gpus in sorted(needs, reverse=True):
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            if not nodes:
                return (cpus, gpus), "no node is alive"
            top = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)) if gpus else
                      (n.get("CPU", 0), n.get("GPU", 0)))
            return (cpus, gpus), f"its largest node has {top.get('CPU', 0):g} CPUs and {top.get('GPU', 0):g} GPUs"
    return None


def _announce_wait(where: str, unfit, wait: float, when: str) -> None:
    """One line on stderr: the sweep waits for a node (an autoscaler's, or one started by hand)."""
    (cpus, gpus), largest = unfit
    print(f"nbs: waiting up to {wait:g} s {when} for a node of {where} that can take a task of {cpus:g} CPUs "
          f"and {gpus:g} GPUs ({largest})", file=sys.stderr, flush=True)


def on_loopback(address: str) -> bool:
    """Whether a HOST:PORT address names this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:   # a name, "auto", "ray://...": not known to be loopback
        return False


@contextmanager
def _loopback_only(ray, local: bool):
    """While ``local``: Ray's single-node mode, so that a cluster started here (or joined on loopback, where
    a driver in cluster mode would look for its node at the network address and hang) has 127.0.0.1 as its
    node address and binds its GCS, raylet (node and object manager), runtime-env agent and workers to loopback
    (Ray listens on all interfaces unless the node address is 127.0.0.1, and on Linux rewrites 127.0.0.1 to
    the network address unless this mode is on). The environment variable reaches the processes Ray
    starts; the constant is the one this process read when Ray was imported. Both are put back after."""
    if not local:
        yield
        return
    constants = ray._private.ray_constants
    before_env, before_const = os.environ.get(SINGLE_NODE_ENV), constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_NODE_ENV] = "0"
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before_const
        if before_env is None:
            os.environ.pop(SINGLE_NODE_ENV, None)
        else:
            os.environ[SINGLE_NODE_ENV] = before_env


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """One line now if a HOST:PORT address takes no connection: ray.init would retry for minutes,
    printing a warning every few seconds. Other forms ("auto", "ray://...") are Ray's to resolve."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {reason(err)}; start one with "
                          f"`ray start --head` or check --address") from None


def _ray_task(unit: WorkUnit, env: RunEnvironment) -> list[RunOutcome]:
    """The task body, in a Ray worker: the sweep's NBS_HOME (a worker's environment is the node's)."""
    os.environ[paths.HOME_ENV] = str(env.nbs_home)
    return run_unit(unit, env)
