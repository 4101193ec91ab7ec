"""``nbs status DIR...``: one line per run (:func:`~nasbench_stability.analysis.progress.run_progress`);
``--watch`` reprints it every few seconds until Ctrl-C, ``--json`` prints it for scripts."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import pandas as pd

#: the text table: (header, column) in order; the cell last, as it is long
HEADERS = (("method", "method"), ("dataset", "dataset"), ("seed", "seed"), ("state", "state"),
           ("epochs", "epochs"), ("test", "test_acc"), ("s/epoch", "seconds_per_epoch"), ("left", "eta_seconds"),
           ("cell", "genotype"))
DEFAULT_WATCH = 5.0


@click.command("status")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--watch", is_flag=True, help="Reprint the table every --every seconds until Ctrl-C.")
# a flag plus --every, not an optional value: `--watch runs/` must not read the folder as seconds
@click.option("--every", type=click.FloatRange(min=0.1), default=DEFAULT_WATCH, show_default=True, metavar="SECONDS",
              help="The refresh interval of --watch.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per run (all columns).")
def status(run_dirs, watch, every, as_json) -> None:
    """One line per run under RUN_DIRS: state, epochs, last cell and its CIFAR-10 test accuracy, time left.

    A run's state is running (its process holds the run's lock), paused (stopped by --time-budget: re-run its
    command to continue), finished, diverged, stale lock (killed: re-run its command to resume), damaged
    status or unknown. `test` is the last derived cell's CIFAR-10 test accuracy in the benchmark (200
    epochs); `left` is estimated from the time per epoch so far.
    """
    from ..analysis.progress import run_progress

    def render() -> str:
        table = run_progress(run_dirs)
        if as_json:   # via pandas' JSON (NaN -> null, numpy scalars), re-dumped without its escaped slashes
            return json.dumps(json.loads(table.to_json(orient="records")), indent=2)
        return format_progress(table)

    if not watch:
        click.echo(render())
        return
    try:
        while True:
            text = render()
            click.clear()   # only on a terminal: piped output keeps every refresh
            click.echo(f"{time.strftime('%H:%M:%S')}  every {every:g}s, Ctrl-C to stop\n{text}")
            time.sleep(every)
    except KeyboardInterrupt:
        pass   # the way out of --watch, not an error


def format_progress(table: pd.DataFrame) -> str:
    """Aligned plain text, one line per run; a ``folder`` column where the runs lie in several folders (a
    sweep's grid points: method, dataset and seed alone would repeat)."""
    records = table.to_dict("records")
    headers = list(HEADERS)
    parents = [os.path.dirname(r["run_dir"]) for r in records]
    if len(set(parents)) > 1:
        root = os.path.commonpath(parents)
        for r, parent in zip(records, parents):
            r["folder"] = os.path.relpath(parent, root)
        headers.insert(len(headers) - 1, ("folder", "folder"))
    rows = [[_cell(column, row) for _, column in headers] for row in records]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _) in enumerate(headers)]
    lines = [[h for h, _ in headers], *rows]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def _cell(column: str, row: dict) -> str:
    value = row[column]
    if column == "epochs":
        return f"{_text(row['epochs_done'])}/{_text(value)}"
    if column == "test_acc":
        return "-" if _missing(value) else f"{value:.2f}"
    if column in ("seconds_per_epoch", "eta_seconds"):
        return "-" if _missing(value) else duration(value)
    return _text(value)


def duration(seconds: float) -> str:
    """12.3s, 4m05s, 2h03m, 3d04h."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _missing(value) -> bool:
    # an infinite time is no estimate either (and cannot be written as days and hours)
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _text(value) -> str:
    return "?" if _missing(value) else str(value)
