"""The Ray executor: one Ray task per work unit (a run, or the packed seeds of one grid point).

Each task asks for ``cpus_per_task`` CPUs and ``gpus_per_task`` of a GPU, and writes its run
directories itself, so ``--out`` must be a file system that every node sees (NFS, Lustre, ...), as
must the benchmark table, the datasets and ``NBS_HOME`` (the decoded dataset cache); nbs itself must be
installed on every node. Ray is optional (``pip install -e '.[ray]'``) and imported only here.

A worker killed mid-run leaves its run's last checkpoint and a lock that died with the process: Ray
re-runs the task up to ``max_retries`` times, and the run resumes from the checkpoint; past that the
run is reported failed, and re-running the sweep resumes it the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from dataclasses import dataclass

from .. import paths
from ..bench.sources import one_line
from ..destinations import reason
from ..errors import ConfigError
from .executors import OnDone
from .expand import WorkUnit
from .worker import RunEnvironment, RunOutcome, describe_error, failed, run_unit

RAY_MISSING = "Ray is not installed: pip install -e '.[ray]'"


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

    def run(self, units: list[WorkUnit], env: RunEnvironment, on_done: OnDone) -> list[list[RunOutcome]]:
        ray = import_ray()
        env = dataclasses.replace(env, threads=max(1, int(self.cpus_per_task)))
        self._connect(ray, env)
        try:
            task = ray.remote(_ray_task)
            refs = {task.options(num_cpus=self.cpus_per_task, num_gpus=self._gpus(unit), max_retries=self.max_retries,
                                 retry_exceptions=False).remote(unit, env): i for i, unit in enumerate(units)}
            outcomes: dict[int, list[RunOutcome]] = {}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
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

    def _connect(self, ray, env: RunEnvironment) -> None:
        if self.address:
            check_reachable(self.address)
        start_here = {} if self.address else {"include_dashboard": False}
        try:
            ray.init(address=self.address, log_to_driver=not env.quiet, logging_level=logging.WARNING,
                     configure_logging=True, **start_here)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise ConfigError(f"cannot connect to {where}: {one_line(err)}") from None


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
