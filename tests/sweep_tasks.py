"""Task functions for the local executor's worker pool in tests (`LocalExecutor(task=...)`): module-level,
so that the spawned workers import them by name; light imports, so that a worker starts quickly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from nasbench_stability.sweep.worker import RunOutcome


def finish_but_seed_1_dies(unit, env) -> list[RunOutcome]:
    """Every run "finishes" after a moment, but the worker that gets seed 1 SIGKILLs itself (a `kill -9`)."""
    run = unit.runs[0]
    if run.config.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.3)
    return [RunOutcome(run.run_dir, "finished", 1, f"finished in worker {os.getpid()}")]


def note_pid_and_sleep(unit, env) -> list[RunOutcome]:
    """Write this worker's pid into the file named by ``unit`` and sleep for ten minutes (a long run)."""
    Path(unit).write_text(str(os.getpid()))
    time.sleep(600)
    return []
