"""Collapse curves: benchmark accuracy of the derived cell over the search, and its parameter-free ops.

The figure DARTS-collapse papers argue with: if the search works the curve climbs towards the
dashed optimum and stays; if it collapses it peaks and falls while the count of parameter-free
ops below it climbs towards 6.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..analysis.bench_columns import DATASET_LABELS, RESULT_DATASETS, benchmark_column, record_column
from ..analysis.collapse import CollapseCriteria
from ..analysis.curves import epoch_curves
from ..analysis.trajectories import supernet_records
from ..bench.table import Benchmark
from ..space.ops import NUM_EDGES
from .common import (EPOCH_LABEL, NothingToPlotError, band, figure_legend, integer_epochs, method_label,
                     method_style, methods_in)
from .style import figure_style, new_figure


def plot_collapse(df: pd.DataFrame, *, datasets: Sequence[str] = RESULT_DATASETS, split: str = "test",
                  epochs: int = 200, benchmark: Benchmark | None = None,
                  criteria: CollapseCriteria = CollapseCriteria(), bands: str = "ci") -> Figure:
    """One column per dataset: top, the derived cell's ``split`` accuracy (mean over seeds with a 95% interval
    or ± std band, ``bands`` = ci | std; one
    line per method, the benchmark's best cell dashed); bottom, parameter-free ops in the cell."""
    df = supernet_records(df)   # table searches have query checkpoints, not epochs: plot_best_so_far draws them
    if df.empty:
        raise NothingToPlotError("only table searches in these records (they have no search epochs; see the "
                                 "trajectory plot)")
    columns = [(d, benchmark_column(d, split, epochs)) for d in datasets]
    columns = [(d, c) for d, c in columns if record_column(c) in df and df[record_column(c)].notna().any()]
    if not columns:
        raise NothingToPlotError(f"no {split} accuracy at {epochs} epochs for {', '.join(datasets)} in these records")
    methods = methods_in(df)
    handles: dict[str, object] = {}
    with figure_style():
        fig = new_figure(3.3 * len(columns) + 0.4, 4.6)
        axes = fig.subplots(2, len(columns), sharex=True, squeeze=False, gridspec_kw={"height_ratios": [2.6, 1]})
        pf = epoch_curves(df, "param_free_count")
        for j, (dataset, column) in enumerate(columns):
            top, bottom = axes[0, j], axes[1, j]
            curves = epoch_curves(df, record_column(column))
            for method in methods:
                style = method_style(df, method)
                handles[method_label(df, method, with_mode=True)] = band(
                    top, curves[curves["method"] == method], kind=bands, **style)
                band(bottom, pf[pf["method"] == method], kind=bands, **style)
            if benchmark is not None:
                best, _ = benchmark.optimum(column)
                handles["best cell in NB201"] = top.axhline(best, color="black", linestyle=(0, (4, 3)),
                                                            linewidth=1.0)
            top.set_title(f"{DATASET_LABELS.get(dataset, dataset)} ({column})")
            top.set_ylabel(f"{split} accuracy (%)" if j == 0 else "")
            handles[f"{criteria.param_free_fraction:.0%} param-free"] = bottom.axhline(
                criteria.param_free_edges, color="0.4", linestyle=":", linewidth=0.9)
            bottom.set_ylim(-0.3, NUM_EDGES + 0.3)
            bottom.set_yticks(range(0, NUM_EDGES + 1, 2))
            bottom.set_ylabel("param-free ops\n(of 6 edges)" if j == 0 else "")
            bottom.set_xlabel(EPOCH_LABEL)
            integer_epochs(bottom)
        figure_legend(fig, list(handles.values()), list(handles.keys()))
    return fig
