"""The local executor: work units in this process, or ``jobs`` at a time in worker processes.

Spawned processes, CPU threads shared out, one GPU shared, as `nbs run --jobs`, over the units of a
whole study instead of the seeds of one method. Not a ``ProcessPoolExecutor``: when one of its workers
dies (``kill -9``, the OOM killer) it breaks, fails every unit in flight and never starts the queued
ones, and cannot say which unit was the dead worker's. Here each worker runs one unit at a time over
its own pipe, so a dead worker fails exactly its unit, a new worker takes its place, and the other
units go on. Workers exit when the sweep's process is gone, however it ends (they would otherwise run
or wait on, unseen, holding their runs' locks).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from ..engine.executor import worker_threads
from .executors import OnDone
from .expand import WorkUnit
from .worker import RunEnvironment, RunOutcome, describe_error, failed, not_started, run_unit

#: what a worker does with one unit; tests give one that dies on cue (a module-level function: it is
#: sent to the spawned workers by name)
Task = Callable[[WorkUnit, RunEnvironment], list[RunOutcome]]

PR_SET_PDEATHSIG = 1     # linux/prctl.h
WATCH_PARENT_EVERY = 1.0  # seconds between the watchdog's looks at the parent (where prctl is missing)
STOP_WAIT = 10.0          # seconds an idle worker has to exit before it is terminated


@dataclass(frozen=True)
class LocalExecutor:
    jobs: int = 1       # units at once; 1 = one after another in this process
    task: Task = run_unit

    def run(self, units: list[WorkUnit], env: RunEnvironment, on_done: OnDone) -> list[list[RunOutcome]]:
        if self.jobs <= 1 or len(units) <= 1:
            import torch

            env = dataclasses.replace(env, threads=torch.get_num_threads())  # as `nbs run`: this process's
            results = []
            for unit in units:
                results.append(self.task(unit, env))
                on_done(unit, results[-1])
            return results
        env = dataclasses.replace(env, threads=worker_threads(self.jobs))
        return WorkerPool(min(self.jobs, len(units)), self.task).run(units, env, on_done)


class WorkerPool:
    """``size`` spawned workers, each running one unit at a time; a worker that dies fails its unit only
    and is replaced while units are left."""

    def __init__(self, size: int, task: Task) -> None:
        self.size, self.task = size, task
        self.context = get_context("spawn")

    def run(self, units: list, env: Any, on_done: OnDone) -> list[list[RunOutcome]]:
        queue = deque(range(len(units)))
        outcomes: dict[int, list[RunOutcome]] = {}
        busy: dict[_Worker, int] = {}   # worker → the index of the unit it runs
        idle: list[_Worker] = []

        def finish(i: int, result: list[RunOutcome]) -> None:
            outcomes[i] = result
            on_done(units[i], result)

        try:
            while queue or busy:
                if queue and env.budget_spent():   # --time-budget: the queued units are not started
                    while queue:
                        i = queue.popleft()
                        finish(i, not_started(units[i]))
                while queue and (idle or len(busy) < self.size):
                    fresh = not idle
                    worker = _Worker(self.context, self.task) if fresh else idle.pop()
                    i = queue.popleft()
                    if worker.give(units[i], env):
                        busy[worker] = i
                    elif fresh:   # a worker that cannot even start fails the unit (no endless restarts)
                        finish(i, failed(units[i], worker.death()))
                    else:         # an idle worker died (killed while waiting): the unit goes to a new one
                        worker.kill()
                        queue.appendleft(i)
                if not busy:   # every start failed: wait() on nothing would block for ever
                    continue
                ready = set(wait([c for w in busy for c in (w.conn, w.process.sentinel)]))
                for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                    i = busy.pop(worker)
                    result = worker.result()
                    if result is None:   # the worker died mid-unit: this unit fails, the others go on
                        finish(i, failed(units[i], worker.death()))
                    else:
                        finish(i, result)
                        idle.append(worker)
                if not queue:   # nothing left for the idle workers to do
                    while idle:
                        idle.pop().stop()
        except BaseException:
            for worker in [*busy, *idle]:
                worker.kill()   # interrupted: the runs are checkpointed, a re-run resumes them
            raise
        for worker in idle:
            worker.stop()
        return [outcomes[i] for i in range(len(units))]


class _Worker:
    """One spawned worker process and the driver's end of its pipe."""

    def __init__(self, context, task: Task) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, os.getpid(), task), name="nbs-sweep-worker")
        self.process.start()
        child.close()   # only the worker holds its end: the driver sees EOF when the worker dies

    def give(self, unit, env) -> bool:
        try:
            self.conn.send((unit, env))
            return True
        except (BrokenPipeError, ConnectionError, EOFError):
            return False

    def result(self) -> list[RunOutcome] | None:
        """The unit's outcomes, or None if the worker died before sending them."""
        try:
            return self.conn.recv()
        except Exception:  # noqa: BLE001 — EOF, or half a message: the worker died while sending
            return None

    def death(self) -> str:
        """Why the unit failed: how its worker ended (one that lives on without answering is killed)."""
        self.process.join(STOP_WAIT)
        code = self.process.exitcode   # None: alive, but its pipe broke
        self.kill()
        if code is not None and code < 0:
            try:
                how = f"was killed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed (signal {-code})"
        else:
            how = f"exited (status {code})" if code is not None else "stopped answering"
        return (f"its worker process {how} before the run ended; re-running the sweep resumes it from its last "
                f"checkpoint")

    def stop(self) -> None:
        """Let an idle worker exit; terminate it if it does not."""
        try:
            self.conn.send(None)
        except (BrokenPipeError, ConnectionError, OSError):
            pass
        self.process.join(STOP_WAIT)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(STOP_WAIT)
        self.conn.close()


def _serve(conn: Connection, parent: int, task: Task) -> None:
    """A worker's life: run the units the driver sends, one at a time, until told to stop or the driver is
    gone. Ctrl-C reaches the whole process group: the driver handles it (and kills its workers), so a
    worker ignores it instead of printing a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    while True:
        try:
            job = conn.recv()
        except (EOFError, ConnectionError, OSError):   # the driver is gone
            return
        if job is None:
            return
        unit, env = job
        try:
            result = task(unit, env)
        except BaseException as err:  # noqa: BLE001 — a task reports its failures; this is a last resort
            result = failed(unit, describe_error(err))
        try:
            conn.send(result)
        except (BrokenPipeError, ConnectionError):
            return
        except Exception as err:  # noqa: BLE001 — an outcome that does not pickle: still one line
            conn.send(failed(unit, describe_error(err)))


def exit_with_parent(parent: int) -> None:
    """Make this process die with ``parent`` (the sweep's process), e.g. after a `kill -9` of the sweep:
    on Linux the kernel sends SIGKILL at once (prctl PR_SET_PDEATHSIG); elsewhere, and as a fallback, a
    watchdog thread notices within a second that the parent changed. SIGKILL, not a gentler signal: a run
    is checkpointed and its lock dies with the process, so nothing is lost that a re-run does not resume."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:   # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch_parent, args=(parent,), name="nbs-parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_PARENT_EVERY)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
