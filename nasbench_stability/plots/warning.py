"""Early warning of collapse: how well each indicator separates runs that will collapse from runs that will not,
k epochs ahead, and what each indicator does around the collapse.

The figure of :mod:`nasbench_stability.analysis.warning`. Top: AUC against k per indicator with its bootstrap
interval (the band is always that interval: it is over runs, not seeds of one method). Below: one panel per
recorded indicator, its value against epochs relative to the collapse, collapsing runs against controls (each
control aligned on the collapse epochs of the runs it is matched to), mean with a band over runs.
"""

from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..analysis.collapse import CollapseCriteria
from ..analysis.warning import COLLAPSING, CONTROL, NOT_RECORDED, OK, EarlyWarning, WarningOptions, early_warning
from .common import NothingToPlotError, band, check_band, figure_legend
from .style import figure_style, new_figure

ROLE_COLORS = {COLLAPSING: "#d55e00", CONTROL: "#0072b2"}
ROLE_LABELS = {COLLAPSING: "collapsing runs", CONTROL: "controls (never collapsed)"}
PANELS_PER_ROW = 3


def plot_warning(data: pd.DataFrame | EarlyWarning, *, criteria: CollapseCriteria = CollapseCriteria(),
                 options: WarningOptions = WarningOptions(), bands: str = "ci") -> Figure:
    """The early-warning figure of records (analysed here with ``criteria`` and ``options``) or of an
    :class:`~nasbench_stability.analysis.warning.EarlyWarning` already computed; ``bands`` (ci | std) is the
    trajectories' band. :class:`NothingToPlotError` when the analysis had too few runs or no recorded signal."""
    check_band(bands)
    result = data if isinstance(data, EarlyWarning) else early_warning(data, criteria, options)
    if not result.ok:
        raise NothingToPlotError(f"no early-warning figure: {result.status}")
    recorded = result.indicators[result.indicators["status"] == OK]
    if recorded.empty:
        raise NothingToPlotError("no early-warning figure: none of the indicators' signals is recorded")
    labels = dict(zip(result.indicators["indicator"], result.indicators["short"]))
    colors = dict(zip(recorded["indicator"], sns.color_palette("colorblind", len(recorded)).as_hex()))
    rows = math.ceil(len(recorded) / PANELS_PER_ROW)
    with figure_style():
        fig = new_figure(10.0, 3.4 + 2.3 * rows)
        grid = fig.add_gridspec(rows + 1, PANELS_PER_ROW, height_ratios=[1.5] + [1.0] * rows)
        _auc_panel(fig.add_subplot(grid[0, :]), result, colors, labels)
        handles = {}
        for i, name in enumerate(recorded["indicator"]):
            ax = fig.add_subplot(grid[1 + i // PANELS_PER_ROW, i % PANELS_PER_ROW])
            handles.update(_trajectory_panel(ax, result, name, labels[name], bands))
        figure_legend(fig, list(handles.values()), list(handles.keys()), ncol=2)
    return fig


def _auc_panel(ax, result: EarlyWarning, colors: dict[str, str], labels: dict[str, str]) -> None:
    """AUC against k per recorded indicator, its interval shaded; chance at 0.5."""
    for name, color in colors.items():
        curve = result.auc[(result.auc["indicator"] == name) & result.auc["auc"].notna()].sort_values("k")
        if curve.empty:
            continue
        ax.plot(curve["k"], curve["auc"], color=color, marker="o", markersize=3, label=labels[name])
        ax.fill_between(curve["k"], curve["ci_low"].fillna(curve["auc"]), curve["ci_high"].fillna(curve["auc"]),
                        color=color, alpha=0.07, linewidth=0)
    ax.axhline(0.5, color="0.4", linewidth=0.8, linestyle=(0, (4, 3)))
    ax.axvline(result.options.report_k, color="0.6", linewidth=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("k: epochs before the collapse at which the indicator is read")
    ax.set_ylabel("AUC (collapsing vs control)")
    missing = result.indicators.loc[result.indicators["status"] == NOT_RECORDED, "short"].tolist()
    ax.set_title(f"{result.n_collapsing} collapsing, {result.n_controls} control runs; band: "
                 f"{result.options.confidence:.0%} bootstrap interval over runs"
                 + (f"\nnot recorded: {'; '.join(missing)}" if missing else ""))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)


def _trajectory_panel(ax, result: EarlyWarning, name: str, label: str, bands: str) -> dict:
    handles = {}
    curves = result.trajectories[result.trajectories["indicator"] == name]
    for role in (CONTROL, COLLAPSING):
        curve = curves[curves["role"] == role].rename(columns={"offset": "epoch"})
        if not curve.empty:
            handles[ROLE_LABELS[role]] = band(ax, curve, color=ROLE_COLORS[role], kind=bands)
    ax.axvline(0, color="0.3", linewidth=0.8, linestyle=(0, (2, 2)))
    ax.set_title(label)
    ax.set_xlabel("epochs from the collapse")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return handles
