"""Architecture weights over the search: per-edge trajectories, DNAS per-layer heatmaps, factorized β.

Trajectories show *how* a cell was chosen: which op took over each edge, when, and whether the
choice was clear or a near tie. Argmax change points (the epochs where the derived op of an edge
changed) are marked, since those are the moments the derived cell — and its benchmark score — moved.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from ..analysis.curves import epoch_curves
from ..analysis.matrices import EDGE_LABELS, FACTOR_COLUMNS, layer_count, long_edge_op, stack
from ..errors import ConfigError, quote
from ..space.ops import NUM_EDGES, NUM_OPS, OPS
from .common import BAND_WORDS, EPOCH_LABEL, NothingToPlotError, band, figure_legend, integer_epochs, require_values
from .style import OP_LABELS, OP_SHORT, figure_style, method_color, new_figure, op_color

LAYER_COLUMN = "layer_op_weights"


def argmax_changes(epochs: np.ndarray, weights: np.ndarray) -> list[tuple[float, int]]:
    """(epoch, new argmax index) wherever the argmax of ``weights`` (epochs × k) changes."""
    arg = np.nanargmax(np.where(np.isfinite(weights), weights, -np.inf), axis=1)
    return [(float(epochs[i]), int(arg[i])) for i in range(1, len(arg)) if arg[i] != arg[i - 1]]


def _weight_label(df: pd.DataFrame, column: str) -> str:
    if column in FACTOR_COLUMNS:
        return f"{FACTOR_COLUMNS[column]} weight"
    acts = df["activation"].dropna().unique() if "activation" in df else []
    return f"op weight ({acts[0]}(α))" if len(acts) == 1 else "op weight"


def plot_alphas(df: pd.DataFrame, *, column: str = "op_weights", seed: int | None = None,
                methods: Sequence[str] | None = None, bands: str = "ci") -> Figure:
    """A grid: one row per method, one column per edge, one line per op (or factor) over epochs.

    ``seed=None`` plots the mean over seeds with a band (``bands``: ci = 95% interval, std = ±1 std); an integer plots that seed alone.
    Triangles on the top edge mark argmax changes of the plotted trajectory, in the new op's colour.
    """
    require_values(df, column, f"{column} weights")
    data = df[df[column].notna()]
    if seed is not None:
        data = data[data["seed"] == seed]
        if data.empty:
            raise NothingToPlotError(f"no run with seed {seed} has {quote(column)} records")
    methods = list(methods) if methods is not None else sorted(data["method"].astype(str).unique())
    long = long_edge_op(data[data["method"].isin(methods)], column)
    labels = list(dict.fromkeys(long["op"]))
    curves = epoch_curves(long, "value", by=["method", "edge_index", "op"])
    handles = {}
    with figure_style():
        fig = new_figure(2.05 * NUM_EDGES + 0.5, 1.9 * len(methods) + 0.9)
        # rows share y (one method's weights are comparable across edges); softmax (≈ 1/5) and
        # sigmoid (≈ 1/2) methods would flatten each other on one shared scale
        axes = fig.subplots(len(methods), NUM_EDGES, sharex=True, sharey="row", squeeze=False)
        for i, method in enumerate(methods):
            for e in range(NUM_EDGES):
                ax = axes[i, e]
                sub = curves[(curves["method"] == method) & (curves["edge_index"] == e)]
                for k, op in enumerate(labels):
                    c = sub[sub["op"] == op]
                    if not c.empty:
                        handles[OP_LABELS.get(op, op)] = band(ax, c, color=op_color(op, k, len(labels)), kind=bands)
                handles.update(_mark_changes(ax, sub, labels))
                if i == 0:
                    ax.set_title(f"edge {EDGE_LABELS[e]}")
                if e == 0:
                    label = _weight_label(data[data["method"] == method], column)
                    ax.set_ylabel(f"{method}\n{label}", color=method_color(method))
                if i == len(methods) - 1:
                    ax.set_xlabel(EPOCH_LABEL)
                    integer_epochs(ax)
        what = (f"mean over seeds, {BAND_WORDS[bands]}" if seed is None else f"seed {seed}")
        fig.suptitle(f"{column} over the search ({what})")
        figure_legend(fig, list(handles.values()), list(handles.keys()), ncol=min(len(handles), 6))
    return fig


def _mark_changes(ax, curves: pd.DataFrame, labels: list[str]) -> dict[str, Line2D]:
    wide = curves.pivot(index="epoch", columns="op", values="mean").reindex(columns=labels)
    if wide.empty:
        return {}
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    handle = None
    for epoch, k in argmax_changes(wide.index.to_numpy(), wide.to_numpy(dtype=float)):
        ax.axvline(epoch, color="0.5", linewidth=0.6, linestyle=":")
        (handle,) = ax.plot([epoch], [1.0], marker="v", markersize=5, color=op_color(labels[k], k, len(labels)),
                            transform=trans, clip_on=False, linestyle="none")
    if handle is None:
        return {}
    marker = Line2D([], [], marker="v", color="0.3", linestyle="none", markersize=5)
    return {"argmax change (colour: new op)": marker}


def plot_layer_heatmap(df: pd.DataFrame, *, method: str | None = None, seed: int | None = None,
                       epochs: Sequence[int] | None = None) -> Figure:
    """DNAS: per-layer op weights ψ (layers × edge·op) at a few epochs of one run (first, middle, last
    by default), so a reader sees whether the layers agree on one cell or each chose their own."""
    require_values(df, LAYER_COLUMN, "per-layer op weights (DNAS)", "only DNAS records them")
    data = df[df[LAYER_COLUMN].notna()]
    method = method or sorted(data["method"].astype(str).unique())[0]
    data = data[data["method"] == method]
    seed = int(data["seed"].min()) if seed is None else seed
    run = data[data["seed"] == seed].sort_values("epoch")
    if run.empty:
        raise NothingToPlotError(f"no {method} run with seed {seed} has {LAYER_COLUMN!r} records")
    available = run["epoch"].tolist()
    if epochs is None:
        epochs = sorted({available[0], available[len(available) // 2], available[-1]})
    missing = [e for e in epochs if e not in available]
    if missing:
        raise ConfigError(f"epoch(s) {missing} not recorded for {method} seed {seed}; recorded: {available}")
    layers = layer_count(run[LAYER_COLUMN].tolist())
    arrays = stack(run[LAYER_COLUMN].tolist(), (layers, NUM_EDGES * NUM_OPS))
    vmax = float(np.nanmax(arrays))
    with figure_style():
        fig = new_figure(4.4 * len(epochs) + 0.8, 0.22 * layers + 1.9)
        axes = fig.subplots(1, len(epochs), squeeze=False, sharey=True)[0]
        for j, (ax, epoch) in enumerate(zip(axes, epochs)):
            matrix = arrays[available.index(epoch)]
            sns.heatmap(matrix, ax=ax, vmin=0.0, vmax=vmax, cmap="viridis", cbar=j == len(epochs) - 1,
                        cbar_kws={"label": "ψ (op weight of the layer)"},
                        xticklabels=[OP_SHORT[o] for _ in range(NUM_EDGES) for o in OPS],
                        yticklabels=[str(k + 1) for k in range(layers)])
            ax.grid(False)
            for e in range(1, NUM_EDGES):
                ax.axvline(e * NUM_OPS, color="white", linewidth=1.2)
            ax.set_title(f"epoch {epoch}")
            ax.set_xlabel("edge " + "  |  ".join(EDGE_LABELS) + " — op")
            ax.tick_params(axis="x", labelsize=5.5, rotation=90)
            ax.set_ylabel("searchable cell (layer)" if j == 0 else "")
        fig.suptitle(f"{method} seed {seed}: per-layer op weights")
    return fig


def factor_columns(df: pd.DataFrame) -> list[str]:
    """The factorized-method weight columns present in ``df`` (β over activations or kernels, ...)."""
    return [c for c in FACTOR_COLUMNS if c in df and df[c].notna().any()]


def plot_factors(df: pd.DataFrame, *, column: str | None = None, seed: int | None = None,
                 bands: str = "ci") -> Figure:
    """Factorized methods' second group of weights (β) as edge trajectories, like :func:`plot_alphas`."""
    present = factor_columns(df)
    if column is None:
        if not present:
            raise NothingToPlotError("no factorized weights (β) in these records; only factorized methods record them")
        column = present[0]
    data = df[df[column].notna()] if column in df else df
    return plot_alphas(data, column=column, seed=seed, bands=bands)
