"""Table searches in the analysis: best-so-far curves against queries, and no collapse statistics for
records that are query checkpoints rather than search epochs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from nasbench_stability.analysis import best_so_far_curves, load_runs, supernet_records, table_search_rows
from nasbench_stability.bench.table import Benchmark
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.executor import execute_config
from nasbench_stability.plots import NothingToPlotError, make_plot
from nasbench_stability.report import build_report

from conftest import METHODS

COLUMN = "bench_cifar10_test_200"


@pytest.fixture(scope="module")
def mixed(study, tmp_path_factory):  # noqa: F811
    """The study's supernet runs plus RS and REA table searches (3 seeds, 30 queries, 6 checkpoints)."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(study.runs, root, dirs_exist_ok=True)
    bench = Benchmark.load(study.benchmark_path)
    results = []
    for method in ("rs", "rea"):
        for seed in range(3):
            cfg = resolve_config(method, seed=seed, overrides={"max_queries": "30", "checkpoints": "6"})
            results.append(execute_config(cfg, root, benchmark=bench, progress=False, log=lambda _: None))
    return root, bench, results


def test_best_so_far_curves_are_the_seed_statistics_per_checkpoint(mixed):
    root, _, results = mixed
    assert {r.unit for r in results} == {"record checkpoints of 30 queries"}
    df = load_runs(root)
    curves = best_so_far_curves(df, COLUMN)
    assert set(curves["method"]) == {"rs", "rea"}        # the supernet runs are not table searches
    for method in ("rs", "rea"):
        rows = df[df["method"] == method]
        for k, group in rows.groupby("epoch"):
            got = curves[(curves["method"] == method) & (curves["epoch"] == k)].iloc[0]
            values = group[COLUMN].to_numpy(dtype=float)
            assert got["n"] == 3 and got["mean"] == pytest.approx(values.mean())
            assert got["std"] == pytest.approx(values.std(ddof=1))
            assert got["budget"] == group["queries"].iloc[0] == np.ceil(k * 30 / 6)
        assert set(curves.loc[curves["method"] == method, "budget_kind"]) == {"queries"}


def test_collapse_statistics_leave_table_searches_out(mixed, tmp_path):
    root, bench, _ = mixed
    df = load_runs(root)
    assert set(supernet_records(df)["method"]) == set(METHODS)
    assert set(df.loc[table_search_rows(df), "method"]) == {"rs", "rea"}
    files = build_report(root, tmp_path / "report", benchmark=bench, figure_formats=("png",))
    collapse = next(t for t in files.tables if t.key == "collapse")
    assert set(collapse.frame.index) == set(METHODS)
    assert any("Left out: rea, rs" in note for note in collapse.footnotes)
    per_run = next(t for t in files.tables if t.key == "collapse-runs")
    assert set(per_run.frame["method"]) == set(METHODS)
    assert {f.key for f in files.figures} >= {"collapse", "trajectory"}
    results = next(t for t in files.tables if t.key == "results")      # the results table has them all
    assert {"rs", "rea"} <= {str(v) for v in results.frame.index}


def test_only_table_searches_give_a_report_without_collapse_and_no_collapse_plot(mixed, tmp_path):
    root, bench, _ = mixed
    only = tmp_path / "only"
    for run in root.glob("r[se]*-cifar10-seed*"):
        shutil.copytree(run, only / run.name)
    df = load_runs(only)
    with pytest.raises(NothingToPlotError, match="only table searches"):
        make_plot("collapse", df)
    make_plot("trajectory", df, benchmark=bench)
    with pytest.raises(NothingToPlotError, match="no table-search runs"):
        make_plot("trajectory", supernet_records(load_runs(root)))
    files = build_report(only, tmp_path / "report", benchmark=bench, figure_formats=("png",))
    assert "collapse" not in {t.key for t in files.tables}
    assert [f.key for f in files.figures if f.key in ("collapse", "trajectory")] == ["trajectory"]


def test_rank_cells_leaves_table_searches_out_with_a_note(mixed, study, tmp_path):
    """A table search has no supernet checkpoint: it used to abort the whole report."""
    root, bench, _ = mixed
    folder = tmp_path / "runs"
    supernet = study.run_dirs()[0]
    for run in (supernet, root / "rs-cifar10-seed0", root / "rea-cifar10-seed0"):
        shutil.copytree(run, folder / run.name)
    files = build_report(folder, tmp_path / "report", benchmark=bench, figure_formats=("png",), rank_cells=2,
                         rank_batches=1, data_root=study.data_root)
    ranking = next(t for t in files.tables if t.key == "ranking")
    assert list(ranking.frame["run"]) == [supernet.name]
    assert "Left out: 2 run(s) of rea, rs, which search the benchmark table and train no supernet." in ranking.footnotes
    only = tmp_path / "only"
    shutil.copytree(root / "rs-cifar10-seed0", only / "rs-cifar10-seed0")
    files = build_report(only, tmp_path / "report-only-rs", benchmark=bench, figure_formats=("png",), rank_cells=2)
    ranking = next(t for t in files.tables if t.key == "ranking")
    assert ranking.frame.empty and "Kendall τ" in ranking.frame.columns
    assert any("Left out: 1 run(s) of rs" in note for note in ranking.footnotes)
