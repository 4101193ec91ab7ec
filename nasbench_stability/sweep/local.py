"""The local executor: work units in this process, or ``jobs`` at a time in worker processes.

The same pool as `nbs run --jobs` (spawned processes, CPU threads shared out, one GPU shared), over
the units of a whole study instead of the seeds of one method.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context

from ..engine.executor import worker_threads
from .executors import OnDone
from .expand import WorkUnit
from .worker import RunEnvironment, RunOutcome, describe_error, failed, run_unit


@dataclass(frozen=True)
class LocalExecutor:
    jobs: int = 1       # units at once; 1 = one after another in this process

    def run(self, units: list[WorkUnit], env: RunEnvironment, on_done: OnDone) -> list[list[RunOutcome]]:
        if self.jobs <= 1 or len(units) <= 1:
            import torch

            env = dataclasses.replace(env, threads=torch.get_num_threads())  # as `nbs run`: this process's
            results = []
            for unit in units:
                results.append(run_unit(unit, env))
                on_done(unit, results[-1])
            return results
        env = dataclasses.replace(env, threads=worker_threads(self.jobs))
        outcomes: dict[int, list[RunOutcome]] = {}
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(run_unit, unit, env): i for i, unit in enumerate(units)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    outcomes[i] = future.result()
                except Exception as err:  # noqa: BLE001 — a worker killed mid-run breaks the pool
                    outcomes[i] = failed(units[i], describe_error(err))
                on_done(units[i], outcomes[i])
        return [outcomes[i] for i in range(len(units))]
