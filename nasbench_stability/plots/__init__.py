"""Publication figures from run records (matplotlib + seaborn, headless).

Every figure is a function ``DataFrame → matplotlib Figure`` over :func:`~nasbench_stability.analysis.load_runs`
output; :data:`PLOTS` names them for ``nbs plot KIND`` and the report, and :func:`save_figure`
writes PNG, PDF or SVG by the file suffix. One colour per method everywhere (:func:`method_color`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from matplotlib.figure import Figure

from ..bench.table import Benchmark
from ..destinations import check_writable
from ..errors import ConfigError, quote
from .alphas import plot_alphas, plot_factors, plot_layer_heatmap
from .collapse import plot_collapse
from .common import BANDS, NothingToPlotError, check_band
from .gradients import plot_gradient_correlation, plot_hessian, plot_op_gradients
from .survival import plot_survival
from .trajectory import plot_best_so_far
from .warning import plot_warning
from .style import PlotFormatError, method_color, method_palette, save_figure


class UnknownPlotError(ConfigError):
    """A plot kind that :data:`PLOTS` does not have."""


@dataclass(frozen=True)
class PlotKind:
    name: str
    description: str
    draw: Callable[[pd.DataFrame, Benchmark | None, int | None, str], Figure]   # (records, benchmark, seed, bands)


PLOTS: dict[str, PlotKind] = {p.name: p for p in (
    PlotKind("collapse", "benchmark test accuracy of the derived cell and its parameter-free ops vs epoch",
             lambda df, bench, seed, bands: plot_collapse(df, benchmark=bench, bands=bands)),
    PlotKind("alphas", "op weights per edge vs epoch, argmax changes marked (mean over seeds, or --seed)",
             lambda df, bench, seed, bands: plot_alphas(df, seed=seed, bands=bands)),
    PlotKind("layers", "DNAS per-layer op weights (heatmaps at the first, middle and last epoch)",
             lambda df, bench, seed, bands: plot_layer_heatmap(df, seed=seed)),
    PlotKind("factors", "factorized methods' β weights per edge vs epoch",
             lambda df, bench, seed, bands: plot_factors(df, seed=seed, bands=bands)),
    PlotKind("gradcorr", "gradient correlation (cosine and inner product) vs epoch, bi- vs single-level",
             lambda df, bench, seed, bands: plot_gradient_correlation(df, bands=bands)),
    PlotKind("opgrads", "∂L/∂α per op vs epoch, one panel per method",
             lambda df, bench, seed, bands: plot_op_gradients(df, bands=bands)),
    PlotKind("trajectory", "table searches (rs, rea, reinforce, bohb): best-so-far accuracy vs queries",
             lambda df, bench, seed, bands: plot_best_so_far(df, benchmark=bench, bands=bands)),
    PlotKind("hessian", "largest and smallest eigenvalue of the α-Hessian of the valid loss vs epoch",
             lambda df, bench, seed, bands: plot_hessian(df, bands=bands)),
    PlotKind("survival", "Kaplan–Meier curves of runs not yet collapsed vs epoch (log-rank p for two methods)",
             lambda df, bench, seed, bands: plot_survival(df, bands=bands)),
    PlotKind("warning", "early warning of collapse: AUC per indicator vs epochs ahead, indicators aligned on the "
             "collapse", lambda df, bench, seed, bands: plot_warning(df, bands=bands)),
)}


def make_plot(kind: str, df: pd.DataFrame, *, benchmark: Benchmark | None = None, seed: int | None = None,
              bands: str = "ci") -> Figure:
    """The figure ``kind`` (a key of :data:`PLOTS`) of the records in ``df``; curves over seeds carry
    ``bands``: ci (the mean's 95% interval) or std (± 1 std)."""
    spec = PLOTS.get(kind)
    if spec is None:
        raise UnknownPlotError(f"unknown plot kind {quote(kind)}; known: {', '.join(PLOTS)}")
    check_band(bands)
    return spec.draw(df, benchmark, seed, bands)


def plot_runs(kind: str, paths, out: str | Path, *, benchmark: Benchmark | None = None,
              seed: int | None = None, bands: str = "ci") -> Path:
    """Load the runs under ``paths``, draw ``kind`` and save it to ``out`` (format from the suffix)."""
    from ..analysis.loading import load_runs

    if kind not in PLOTS:
        raise UnknownPlotError(f"unknown plot kind {quote(kind)}; known: {', '.join(PLOTS)}")
    check_band(bands)
    if Path(out).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise PlotFormatError(f"cannot write a figure as {quote(Path(out).name)}; use a .png, .pdf or .svg file name")
    if Path(out).is_dir():
        raise PlotFormatError(f"cannot write a figure to {out}: it is a folder; give a file name")
    check_writable(Path(out).parent, "figure folder")  # before loading and drawing; creates nothing
    return save_figure(make_plot(kind, load_runs(paths), benchmark=benchmark, seed=seed, bands=bands), out)


__all__ = [
    "PLOTS", "PlotKind", "UnknownPlotError", "NothingToPlotError", "PlotFormatError", "make_plot", "plot_runs",
    "plot_collapse", "plot_alphas", "plot_layer_heatmap", "plot_factors", "plot_gradient_correlation",
    "plot_op_gradients", "plot_hessian", "plot_best_so_far", "plot_survival", "plot_warning", "BANDS", "save_figure", "method_color", "method_palette",
]
