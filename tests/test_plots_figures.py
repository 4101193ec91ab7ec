"""Figures drawn from the real study (and from hand-made records for DNAS and factorized columns):
files written in the format the suffix names, the expected axes and lines, one colour per method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from nasbench_stability.analysis import load_runs
from nasbench_stability.methods.registry import list_methods
from nasbench_stability.plots import (PLOTS, NothingToPlotError, PlotFormatError, UnknownPlotError, make_plot,
                                      method_color, plot_alphas, plot_collapse, plot_factors, plot_layer_heatmap,
                                      plot_runs, save_figure)
from nasbench_stability.plots.alphas import argmax_changes
from nasbench_stability.space.ops import OPS

from conftest import METHODS

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


@pytest.fixture(scope="module")
def records(study):  # noqa: F811
    return load_runs(study.runs)


def line_colors(ax) -> set[str]:
    return {to_hex(line.get_color()) for line in ax.get_lines()}


def test_collapse_figure_has_a_panel_pair_per_dataset(records, study, tmp_path):  # noqa: F811
    fig = plot_collapse(records, benchmark=study.benchmark)
    assert len(fig.axes) == 6                                    # 3 datasets × (accuracy, param-free ops)
    top = fig.axes[:3]
    for ax in top:                                               # one line per method + the optimum
        assert len(ax.get_lines()) == len(METHODS) + 1
        assert "accuracy" in ax.get_ylabel() or ax.get_ylabel() == ""
    assert {method_color(m) for m in METHODS} <= line_colors(top[0])
    best = [line for line in top[0].get_lines() if line.get_color() == "black"][0]
    assert best.get_ydata()[0] == pytest.approx(study.benchmark.optimum("cifar10_test_200")[0])
    for ax in fig.axes[3:]:
        assert ax.get_xlabel() == "search epoch"
    for suffix in (".png", ".pdf", ".svg"):
        path = save_figure(fig, tmp_path / f"collapse{suffix}")
        assert path.stat().st_size > 1000 and path.read_bytes().startswith(MAGIC[suffix])


def test_every_plot_kind_draws_from_real_records(records, study, tmp_path):  # noqa: F811
    expected_axes = {"collapse": 6, "alphas": len(METHODS) * 6, "gradcorr": 2, "opgrads": len(METHODS), "hessian": 2}
    for kind, n_axes in expected_axes.items():
        fig = make_plot(kind, records, benchmark=study.benchmark)
        assert len(fig.axes) == n_axes, kind
        assert fig.legends, f"{kind} has no legend"
        path = save_figure(fig, tmp_path / f"{kind}.png")
        assert path.stat().st_size > 5000
    for kind in ("layers", "factors"):                           # DARTS records neither
        with pytest.raises(NothingToPlotError):
            make_plot(kind, records)


def test_method_colours_are_the_same_in_every_figure(records, study):  # noqa: F811
    for kind in ("hessian", "gradcorr"):
        fig = make_plot(kind, records)
        colors = line_colors(fig.axes[0])
        assert {method_color(m) for m in METHODS} <= colors, kind
    assert method_color("darts-v1") != method_color("single-darts")
    assert method_color("some-new-method") == method_color("some-new-method")
    registered = [m.name for m in list_methods()]       # every method has its own colour
    assert len({method_color(m) for m in registered}) == len(registered)


def test_gradient_correlation_separates_bilevel_from_single_level(records):
    fig = make_plot("gradcorr", records)
    lines = {to_hex(line.get_color()): line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1}
    single = lines[method_color("single-darts")]
    assert np.allclose(single.get_ydata(), 1.0, atol=1e-4)       # same batch: cosine 1
    assert single.get_linestyle() == "-" and lines[method_color("darts-v1")].get_linestyle() == "--"


def method_line(ax, method: str):
    return [ln for ln in ax.get_lines() if to_hex(ln.get_color()) == method_color(method)][0]


def test_hessian_figure_has_the_measured_epochs(records):
    fig = make_plot("hessian", records)
    darts = records[records["method"] == "darts-v1"]
    measured = sorted(darts.loc[darts["hessian_max"].notna(), "epoch"].unique())
    assert len(measured) >= 2 and len(measured) < darts["epoch"].nunique()   # not every epoch is measured
    for ax, column in zip(fig.axes, ("hessian_max", "hessian_min")):         # λ_max left, λ_min right
        line = method_line(ax, "darts-v1")
        assert list(line.get_xdata()) == measured
        expected = darts.groupby("epoch")[column].mean().loc[measured].to_numpy()
        np.testing.assert_allclose(line.get_ydata(), expected)
    assert (records["hessian_max"].dropna() >= records["hessian_min"].dropna()).all()


def test_hessian_figure_reads_old_runs_power_iteration_column_as_the_largest(records):
    old = records.drop(columns=["hessian_max", "hessian_min", "hessian_spectrum"]).assign(
        hessian_eig=records["hessian_max"] + 1.0)
    fig = make_plot("hessian", old)
    assert len(fig.axes) == 1                                                 # no λ_min recorded
    line = method_line(fig.axes[0], "darts-v1")
    darts = old[old["method"] == "darts-v1"].dropna(subset=["hessian_eig"])
    np.testing.assert_allclose(line.get_ydata(), darts.groupby("epoch")["hessian_eig"].mean().to_numpy())
    # old and new runs together: each run's own column (new runs have NaN hessian_eig after concat)
    new_single = records[records["method"] == "single-darts"]
    mixed = pd.concat([old[old["method"] == "darts-v1"], new_single], ignore_index=True)
    fig = make_plot("hessian", mixed)
    assert len(fig.axes) == 2
    np.testing.assert_allclose(method_line(fig.axes[0], "darts-v1").get_ydata(), line.get_ydata())
    single = new_single.dropna(subset=["hessian_max"]).groupby("epoch")["hessian_max"].mean().to_numpy()
    np.testing.assert_allclose(method_line(fig.axes[0], "single-darts").get_ydata(), single)


def test_alpha_trajectories_per_seed_and_change_points(records):
    fig = plot_alphas(records, seed=1)
    assert len(fig.axes) == len(METHODS) * 6
    first = fig.axes[0]
    assert len([ln for ln in first.get_lines() if len(ln.get_xdata()) > 1]) == len(OPS)
    assert argmax_changes(np.array([1, 2, 3]), np.array([[0.1, 0.2], [0.3, 0.2], [0.4, 0.1]])) == [(2.0, 0)]
    assert argmax_changes(np.array([1, 2]), np.array([[0.1, 0.2], [0.1, 0.3]])) == []
    with pytest.raises(NothingToPlotError):
        plot_alphas(records, seed=99)


def test_dnas_heatmap_and_factorized_betas_from_hand_made_records(tmp_path):
    rng = np.random.default_rng(0)
    layers, epochs = 3, 4
    rows = [{"method": "dnas", "seed": 0, "run_dir": "r", "epoch": e,
             "layer_op_weights": rng.random(layers * 6 * 5), "act_weights": rng.random(6 * 9)}
            for e in range(1, epochs + 1)]
    df = pd.DataFrame(rows)
    fig = plot_layer_heatmap(df)
    assert len(fig.axes) == 3 + 1                                 # first, middle, last epoch + colour bar
    assert [ax.get_title() for ax in fig.axes[:3]] == ["epoch 1", "epoch 3", "epoch 4"]
    assert fig.axes[0].collections[0].get_array().size == layers * 30
    save_figure(fig, tmp_path / "layers.svg")
    fig = plot_factors(df)
    assert len(fig.axes) == 6
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"relu", "swish"} <= labels                            # β over the 9 activations, named


def test_plot_errors_are_nbs_errors(records, study, tmp_path):  # noqa: F811
    with pytest.raises(UnknownPlotError, match="known: collapse"):
        make_plot("nope", records)
    with pytest.raises(PlotFormatError, match=".png, .pdf or .svg"):
        plot_runs("collapse", study.runs, tmp_path / "x.jpg")
    no_hessian = records.assign(hessian_max=np.nan, hessian_min=np.nan)
    with pytest.raises(NothingToPlotError, match="hessian_every"):
        make_plot("hessian", no_hessian)
    assert set(PLOTS) >= {"collapse", "alphas", "gradcorr", "opgrads", "hessian"}


@pytest.mark.parametrize("name, kind", [("dnas", "layers"), ("factorized-act", "factors"),
                                        ("factorized-kernel", "factors")])
def test_method_specific_figures_read_what_the_methods_record(name, kind, tmp_path):
    """Records written by the engine's writer from a real method's ``extra_records`` (no training)."""
    import torch

    from nasbench_stability.engine.config import resolve_config
    from nasbench_stability.engine.records import write_record
    from nasbench_stability.engine.run import build_method
    from nasbench_stability.methods.registry import list_methods

    if name not in {m.name for m in list_methods()}:
        pytest.skip(f"{name} is not in this checkout")
    method = build_method(resolve_config(name, preset="smoke", device="cpu", overrides={"channels": "4"}), 10, 4)
    run_dir = tmp_path / f"{name}-cifar10-seed0"
    for epoch in (1, 2, 3):
        with torch.no_grad():
            for p in method.arch_parameters():
                p.add_(0.3 * torch.randn_like(p))
        write_record(run_dir, epoch, {"method": name, "dataset": "cifar10", "seed": 0, "epoch": epoch,
                                      "op_weights": method.op_weights(), **method.extra_records()})
    df = load_runs(run_dir)
    fig = make_plot(kind, df)
    assert len(fig.axes) == (3 + 1 if kind == "layers" else 6)
    assert save_figure(fig, tmp_path / f"{kind}.png").stat().st_size > 5000
    make_plot("alphas", df)   # the shared (6, 5) op weights of every method plot too
