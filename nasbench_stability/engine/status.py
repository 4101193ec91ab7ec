"""``status.json``: what a run directory says about its progress, written atomically, read with checks.

The status is bookkeeping, not data: the checkpoint is the authority on how many epochs are done.
So a damaged status (garbage, empty, wrong types) is reported with what is wrong instead of
crashing, and the run can rewrite it from the checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic

STATUS_FILE = "status.json"
#: stopped between epochs by --time-budget (engine/budget.py): the same command resumes it
PAUSED = "paused"
STATES = ("running", PAUSED, "finished", "diverged")
TERMINAL = ("finished", "diverged")   # never changed again: safe to read without the run's lock


def read_status(run_dir: Path) -> tuple[dict[str, Any], str]:
    """(status, problem): ``({}, "")`` if there is no status yet; ``({}, what is wrong)`` if damaged."""
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        return {}, ""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        return {}, f"unreadable: {getattr(err, 'strerror', None) or type(err).__name__}"
    if not text.strip():
        return {}, "empty"
    try:
        status = json.loads(text)
    except ValueError:
        return {}, "not JSON"
    return (status, "") if not (problem := status_problem(status)) else ({}, problem)


def status_problem(status: Any) -> str:
    """What is wrong with a parsed status ('' if nothing)."""
    if not isinstance(status, dict):
        return f"a JSON {type(status).__name__} where an object belongs"
    state, done = status.get("state"), status.get("epochs_done")
    if state not in STATES:
        return f"state {state!r} is not one of {', '.join(STATES)}"
    if not isinstance(done, int) or isinstance(done, bool) or done < 0:
        return f"epochs_done {done!r} is not a count"
    return ""


def write_status(run_dir: Path, state: str, epochs_done: int, message: str = "") -> None:
    write_text_atomic(Path(run_dir) / STATUS_FILE, json.dumps(
        {"state": state, "epochs_done": epochs_done, "message": message, "updated": time.time()}, indent=2))
