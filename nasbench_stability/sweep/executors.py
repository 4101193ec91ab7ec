"""Executors run a study's work units and report each unit's outcomes as it ends.

``local`` (:mod:`.local`): this process, or worker processes. ``ray`` (:mod:`.ray_executor`): one Ray
task per unit on a cluster. Each is a small object with ``run(units, env, on_done)``; results land in
the run directories, so an executor only has to get each unit executed once, anywhere that sees them.
"""

from __future__ import annotations

from typing import Callable, Protocol

from .expand import WorkUnit
from .worker import RunEnvironment, RunOutcome

#: called in the sweep's process as each unit ends (its outcomes), for progress lines
OnDone = Callable[[WorkUnit, list[RunOutcome]], None]


class Executor(Protocol):
    def run(self, units: list[WorkUnit], env: RunEnvironment, on_done: OnDone) -> list[list[RunOutcome]]:
        """Run every unit; the outcomes of each, in the units' order."""
