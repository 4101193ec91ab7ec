"""Gradient-side indicators over the search: gradient correlation, operator gradients, Hessian eigenvalues.

Single-DARTS argues (its §4.2, §5.2) that bi-level DARTS collapses because the weight and α steps
see uncorrelated gradients, while single-level ones share a batch (cosine 1); Zela et al. that the
largest eigenvalue of ∇²_α L_valid grows before collapse. These figures put methods of both kinds
on one axis so the claims can be checked on the runs at hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..analysis.curves import array_epoch_curves, epoch_curves
from ..space.ops import OPS
from .common import (EPOCH_LABEL, NothingToPlotError, band, figure_legend, has_values, integer_epochs,
                     method_label, method_style, methods_in, require_values)
from .style import OP_LABELS, figure_style, method_color, new_figure, op_color


def plot_gradient_correlation(df: pd.DataFrame, bands: str = "ci") -> Figure:
    """Left: cosine between ∇w L(B_w) and ∇w L(B_α), mean over learnable ops; right: the inner
    product (symlog). Bi-level methods dashed, single-level solid; mean ± std over seeds."""
    require_values(df, "gc_cos_mean", "gradient correlation", "it is measured every gc_every steps (method option)")
    handles = {}
    with figure_style():
        fig = new_figure(8.2, 3.4)
        ax_cos, ax_dot = fig.subplots(1, 2)
        cos, dot = epoch_curves(df, "gc_cos_mean"), epoch_curves(df, "gc_mean")
        for method in methods_in(df):
            style = method_style(df, method)
            label = method_label(df, method, with_mode=True)
            if (cos["method"] == method).any():
                handles[label] = band(ax_cos, cos[cos["method"] == method], kind=bands, **style)
            if (dot["method"] == method).any():
                band(ax_dot, dot[dot["method"] == method], kind=bands, **style)
        ax_cos.set_ylabel(r"$\cos\,(\nabla_w L(B_w),\ \nabla_w L(B_\alpha))$")
        ax_cos.set_title("gradient correlation, cosine")
        ax_cos.axhline(0.0, color="0.4", linewidth=0.8)
        finite = dot["mean"].abs()[np.isfinite(dot["mean"]) & (dot["mean"] != 0)]
        if len(finite):
            ax_dot.set_yscale("symlog", linthresh=float(max(finite.min(), finite.max() * 1e-4)))
        ax_dot.set_ylabel(r"$\langle \nabla_w L(B_w),\ \nabla_w L(B_\alpha) \rangle$ (symlog)")
        ax_dot.set_title("gradient correlation, inner product")
        for ax in (ax_cos, ax_dot):
            ax.set_xlabel(EPOCH_LABEL)
            integer_epochs(ax)
        figure_legend(fig, list(handles.values()), list(handles.keys()), ncol=min(len(handles), 3))
    return fig


def plot_op_gradients(df: pd.DataFrame, bands: str = "ci") -> Figure:
    """One panel per method: ∂L/∂α per op (mean over the 6 edges; mean ± std over seeds)."""
    require_values(df, "op_grad", "operator gradients")
    methods = methods_in(df)
    curves = array_epoch_curves(df, "op_grad")
    handles = {}
    with figure_style():
        fig = new_figure(min(3.2 * len(methods), 13.0) + 0.4, 3.2)
        axes = fig.subplots(1, len(methods), squeeze=False)[0]
        for ax, method in zip(axes, methods):
            sub = curves[curves["method"] == method]
            for k, op in enumerate(OPS):
                c = sub[sub["op"] == op]
                if not c.empty:
                    handles[OP_LABELS[op]] = band(ax, c, color=op_color(op, k), kind=bands)
            ax.axhline(0.0, color="0.4", linewidth=0.8)
            ax.set_title(method, color=method_color(method))
            ax.set_xlabel(EPOCH_LABEL)
            integer_epochs(ax)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        axes[0].set_ylabel(r"$\partial L / \partial \alpha$ (mean over edges)")
        figure_legend(fig, list(handles.values()), list(handles.keys()), ncol=len(handles))
    return fig


# (column, panel title, y label): λ_max is Zela et al.'s indicator; λ_min shows negative curvature
HESSIAN_PANELS = (
    ("hessian_max", "largest eigenvalue", r"$\lambda_{max}$ of $\nabla^2_\alpha L_{valid}$"),
    ("hessian_min", "smallest eigenvalue", r"$\lambda_{min}$ of $\nabla^2_\alpha L_{valid}$"),
)


def hessian_records(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``hessian_max`` filled from ``hessian_eig`` where only that is recorded.

    Runs written before the exact spectrum recorded one power-iteration eigenvalue, ``hessian_eig``
    (the largest in magnitude: λ_max whenever λ_max ≥ |λ_min|); they still plot, as λ_max.
    """
    if "hessian_eig" not in df:
        return df
    old = pd.to_numeric(df["hessian_eig"], errors="coerce")
    new = pd.to_numeric(df["hessian_max"], errors="coerce") if "hessian_max" in df else old * np.nan
    return df.assign(hessian_max=new.fillna(old))


def plot_hessian(df: pd.DataFrame, bands: str = "ci") -> Figure:
    """Largest and smallest eigenvalue of ∇²_α L_valid over the search, one panel each (the second
    only where recorded), one line per method (mean ± std over seeds)."""
    df = hessian_records(df)
    require_values(df, "hessian_max", "Hessian eigenvalues",
                   "run the search with --hessian-every N (or --set hessian_every=N)")
    panels = [p for p in HESSIAN_PANELS if p[0] in df and has_values(df[p[0]])]
    handles = {}
    with figure_style():
        fig = new_figure(4.1 * len(panels) + 1.0, 3.4)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (column, title, ylabel) in zip(axes, panels):
            curves = epoch_curves(df, column)
            for method in methods_in(df):
                c = curves[curves["method"] == method]
                if not c.empty:
                    handles[method_label(df, method, with_mode=True)] = band(ax, c, kind=bands, marker="o",
                                                                             **method_style(df, method))
            ax.axhline(0.0, color="0.4", linewidth=0.8)
            ax.set_ylabel(ylabel)
            ax.set_xlabel(EPOCH_LABEL)
            ax.set_title(title)
            integer_epochs(ax)
        if not handles:
            raise NothingToPlotError("no Hessian eigenvalues in these records")
        figure_legend(fig, list(handles.values()), list(handles.keys()), ncol=min(len(handles), 2))
    return fig
