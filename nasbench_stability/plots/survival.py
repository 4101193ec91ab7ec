"""Kaplan–Meier curves of "not yet collapsed": one step line per method, censored runs ticked.

The figure of :mod:`nasbench_stability.analysis.survival`: a method whose curve stays high holds
out; one that drops early collapses early. The band is the estimate's 95% (log-log) interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..analysis.collapse import CollapseCriteria
from ..analysis.survival import collapse_events, kaplan_meier, logrank_tests
from ..analysis.pairwise import format_p
from ..analysis.trajectories import supernet_records
from .common import EPOCH_LABEL, NothingToPlotError, figure_legend, integer_epochs, method_label, method_style
from .style import figure_style, new_figure


def plot_survival(df: pd.DataFrame, *, criteria: CollapseCriteria = CollapseCriteria(), bands: str = "ci") -> Figure:
    """Kaplan–Meier estimate of the fraction of runs not yet collapsed vs epoch, per method; ``+`` marks
    a run censored there (never collapsed up to its last epoch); ``bands="ci"`` shades its 95% interval."""
    df = supernet_records(df)     # table searches have no search epochs
    if df.empty:
        raise NothingToPlotError("only table searches in these records (no search epochs to collapse in)")
    events = collapse_events(df, criteria)
    curves = kaplan_meier(events)
    handles: dict[str, object] = {}
    with figure_style():
        fig = new_figure(6.4, 3.9)
        ax = fig.subplots()
        for method, curve in curves.groupby("method", sort=True):
            style = method_style(df, method)
            x, s = curve["epoch"].to_numpy(dtype=float), curve["survival"].to_numpy(dtype=float)
            last = events.loc[events["method"] == method, "time"].max()
            x_end, s_end = np.append(x, last), np.append(s, s[-1])   # the line runs on to the last epoch seen
            (line,) = ax.step(x_end, s_end, where="post", **style)
            if bands == "ci":
                low = np.append(curve["ci_low"].to_numpy(dtype=float), np.nan)
                high = np.append(curve["ci_high"].to_numpy(dtype=float), np.nan)
                low[-1], high[-1] = low[-2], high[-2]
                ok = np.isfinite(low) & np.isfinite(high)
                ax.fill_between(x_end, np.where(ok, low, s_end), np.where(ok, high, s_end), step="post",
                                color=style["color"], alpha=0.15, linewidth=0)
            censored = curve[curve["censored"] > 0]
            ax.plot(censored["epoch"], censored["survival"], linestyle="none", marker="+", markersize=8,
                    color=style["color"])
            handles[method_label(df, method, with_mode=True)] = line
        tests = logrank_tests(events)
        if len(tests) == 1 and not tests["note"].iloc[0]:
            ax.set_title(f"log-rank p = {format_p(tests['p_value'].iloc[0])}")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("not yet collapsed (Kaplan–Meier)")
        ax.set_xlabel(EPOCH_LABEL)
        integer_epochs(ax)
        handles["censored (never collapsed)"] = ax.plot([], [], linestyle="none", marker="+", color="0.3")[0]
        figure_legend(fig, list(handles.values()), list(handles.keys()), ncol=min(len(handles), 2))
    return fig
