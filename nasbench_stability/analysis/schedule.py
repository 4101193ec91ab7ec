"""Whether runs kept their method's own schedule: a cut one (`cpu-small`, `smoke`, ``--epochs``) hides
collapse, so every report made from such runs says so, method by method."""

from __future__ import annotations

import pandas as pd

from ..engine.presets import cut_schedule
from ..errors import NbsError
from ..methods.registry import get_method


def cut_schedule_notes(runs: pd.DataFrame) -> list[str]:
    """One line per (method, preset, epochs) whose epochs are below the method's own (``runs``: one row
    per run with ``method``, ``preset`` and ``epochs``, as :func:`.loading.run_index` gives)."""
    notes = []
    if runs.empty:
        return notes
    for (method, preset, epochs), _ in runs.groupby(["method", "preset", "epochs"], dropna=True):
        try:
            info = get_method(str(method))
        except NbsError:
            continue
        if info.table_search:
            continue
        note = cut_schedule(str(preset), int(epochs), info.default_options().epochs)
        if note is not None:
            notes.append(f"{method}: {note}")
    return notes
