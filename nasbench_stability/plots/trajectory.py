"""Best-so-far curves of the table searches: the benchmark accuracy of the best cell found (by the search
signal) against the budget spent, mean ± std over seeds, as NB201's Figure of RS/REA/REINFORCE/BOHB."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..analysis.bench_columns import DATASET_LABELS, RESULT_DATASETS, benchmark_column, record_column
from ..analysis.trajectories import BUDGET_LABELS, best_so_far_curves, table_search_rows
from ..bench.table import Benchmark
from .common import NothingToPlotError, band, figure_legend, method_label
from .style import figure_style, method_color, new_figure


def plot_best_so_far(df: pd.DataFrame, *, datasets: Sequence[str] = RESULT_DATASETS, split: str = "test",
                     epochs: int = 200, benchmark: Benchmark | None = None, bands: str = "ci") -> Figure:
    """One panel per dataset: the best-so-far cell's ``split`` accuracy vs budget, one line per method."""
    rows = df[table_search_rows(df)]
    if rows.empty:
        raise NothingToPlotError("no table-search runs (rs, rea, reinforce, bohb) in these records")
    columns = [(d, benchmark_column(d, split, epochs)) for d in datasets]
    columns = [(d, c) for d, c in columns if record_column(c) in rows and rows[record_column(c)].notna().any()]
    if not columns:
        raise NothingToPlotError(f"no {split} accuracy at {epochs} epochs for {', '.join(datasets)} in these records")
    handles: dict[str, object] = {}
    with figure_style():
        fig = new_figure(3.3 * len(columns) + 0.4, 3.4)
        axes = fig.subplots(1, len(columns), squeeze=False)[0]
        for ax, (dataset, column) in zip(axes, columns):
            curves = best_so_far_curves(rows, record_column(column))
            for method, curve in curves.groupby("method", sort=True):
                handles[method_label(rows, method)] = band(ax, curve.assign(epoch=curve["budget"]),
                                                           color=method_color(method), kind=bands)
            if benchmark is not None:
                best, _ = benchmark.optimum(column)
                handles["best cell in NB201"] = ax.axhline(best, color="black", linestyle=(0, (4, 3)), linewidth=1.0)
            kinds = set(curves["budget_kind"])
            ax.set_xlabel(BUDGET_LABELS.get(kinds.pop(), "budget") if len(kinds) == 1 else "budget spent")
            ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)} ({column})")
            ax.set_ylabel(f"best-so-far {split} accuracy (%)" if ax is axes[0] else "")
        figure_legend(fig, list(handles.values()), list(handles.keys()))
    return fig
