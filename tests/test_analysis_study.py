"""A small real study (DARTS-V1 and Single-DARTS, 2 seeds, 3 epochs, on real CIFAR-10) shared by the
analysis, plot and report tests, and the tests of loading and tables against its records.

The ``study`` fixture is imported by ``test_plots_*`` and ``test_report_*``; it builds its runs once
per session in pytest's base temp folder (a second instance finds them there), with NBS_HOME in a
temporary folder so the session never touches the user's caches.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nasbench_stability.analysis import (NoRunsError, final_records, load_runs, per_seed_table, rank_correlation,
                                         result_columns, results_table)
from nasbench_stability.analysis.ranking import UnsupportedAnalysisError, discrete_eval_problem
from nasbench_stability.errors import MissingFileError, NbsError
from conftest import METHODS, SEEDS, EPOCHS

def _raw_records(run_dir: Path) -> pd.DataFrame:
    """The records read with pyarrow alone: the independent reference for every number tested."""
    files = sorted((run_dir / "records").glob("epoch-*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


# ---- load_runs -------------------------------------------------------------------------------
def test_load_runs_reads_every_epoch_of_every_run(study):
    df = load_runs(study.runs)
    assert len(df) == len(METHODS) * SEEDS * EPOCHS
    assert sorted(df["method"].unique()) == sorted(METHODS)
    assert set(df["status"]) == {"finished"}
    assert set(df["preset"]) == {"smoke"} and set(df["channels"]) == {8}
    assert dict(df.groupby("method")["mode"].first()) == {"darts-v1": "bilevel", "single-darts": "single-level"}
    # what fidelity turns on is in every row: the step order and schedule, and the BN mode the
    # records' eval-mode accuracies were measured under (written by the engine into each record)
    assert dict(df.groupby("method")["step_order"].first()) == {"darts-v1": "w-alpha", "single-darts": "w-alpha"}
    assert set(df["lr_schedule"]) == {"per-epoch"} and df["track_running_stats"].astype(bool).all()
    for run_dir, run in df.groupby("run_dir"):
        assert _raw_records(Path(run_dir))["track_running_stats"].astype(bool).all()
        raw = _raw_records(Path(run_dir))
        assert run["epoch"].tolist() == list(range(1, EPOCHS + 1))
        np.testing.assert_allclose(run["bench_cifar10_test_200"], raw["bench_cifar10_test_200"])
        assert run["genotype"].tolist() == raw["genotype"].tolist()


def test_load_runs_dedupes_run_dirs_named_twice(study):
    one = study.run_dirs()[0]
    both = load_runs([study.runs, one, str(one)])
    assert len(both) == len(load_runs(study.runs))


def test_load_runs_tolerates_partial_in_progress_and_broken_runs(study, tmp_path):
    runs = study.run_dirs()
    partial, empty, broken = (tmp_path / r.name for r in runs[:3])
    for src, dst in zip(runs[:3], (partial, empty, broken)):
        shutil.copytree(src, dst)
    (partial / "records" / f"epoch-{EPOCHS:04d}.parquet").unlink()            # killed mid-run
    (partial / "status.json").write_text('{"state": "running", "epochs_done": 3}')
    shutil.rmtree(empty / "records")                                          # started, no epoch yet
    (empty / "status.json").write_text('{"state": "running", "epochs_done": 0}')
    (broken / "records" / "epoch-0002.parquet").write_bytes(b"not parquet")  # a half-copied file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_runs(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert "no epoch records yet" in messages and "damaged record" in messages
    lengths = df.groupby("run_dir")["epoch"].apply(list).to_dict()
    assert lengths == {str(partial.resolve()): [1, 2, 3], str(broken.resolve()): [1, 3, 4]}
    assert df.loc[df["run_dir"] == str(partial.resolve()), "status"].unique().tolist() == ["running"]
    last = final_records(df)
    assert last.set_index("run_dir")["epoch"].to_dict() == {str(partial.resolve()): 3, str(broken.resolve()): 4}
    assert not last.set_index("run_dir").loc[str(partial.resolve()), "finished"]


def test_load_runs_errors_are_one_line_nbs_errors(tmp_path):
    with pytest.raises(NoRunsError) as err:
        load_runs(tmp_path)
    assert isinstance(err.value, NbsError) and "\n" not in str(err.value)
    with pytest.raises(MissingFileError):
        load_runs(tmp_path / "nope")


# ---- tables ----------------------------------------------------------------------------------
def test_results_table_is_mean_and_std_of_final_cells(study):
    bench = study.benchmark
    table = results_table(load_runs(study.runs), bench)
    shown = table.display()
    assert list(shown.index) == [*sorted(METHODS), "optimal"]
    for method in METHODS:
        finals = [_raw_records(d).iloc[-1] for d in study.run_dirs() if d.name.startswith(method + "-")]
        assert len(finals) == SEEDS
        for col in table.columns:
            values = np.array([f[col.record] for f in finals], dtype=float)
            row = table.stats[(table.stats["method"] == method) & (table.stats["column"] == col.column)].iloc[0]
            assert row["mean"] == pytest.approx(values.mean())
            assert row["std"] == pytest.approx(values.std(ddof=1))
            # two seeds: the bootstrap's 95% interval of the mean is their range
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((values.min(), values.max()))
            assert shown.loc[method, col.label] == (f"{values.mean():.2f} ± {values.std(ddof=1):.2f} "
                                                    f"[{values.min():.2f}, {values.max():.2f}]")
        assert shown.loc[method, "seeds"] == str(SEEDS)
        assert shown.loc[method, "distinct cells"] == str(len({f["canonical_key"] for f in finals}))
        walls = np.array([f["wall_seconds"] for f in finals])
        assert table.meta.loc[method, "wall_seconds_mean"] == pytest.approx(walls.mean())
    for col in table.columns:
        assert shown.loc["optimal", col.label] == f"{bench.optimum(col.column)[0]:.2f}"
    # exactness: offline 200-epoch valid columns are NASLib's approximations, test columns exact
    assert {c.label for c in table.columns if c.exact is False} == {
        "CIFAR-10 valid†", "CIFAR-100 valid†", "ImageNet16-120 valid†"}
    assert "CIFAR-10 test" in shown.columns
    notes = " ".join(table.footnotes())
    assert "nb201_zen.zip" in notes and "nats_bench.csv" in notes and "approximate" in notes
    assert table.optimum["cifar10_test_200"][0] == pytest.approx(94.37, abs=0.01)


def test_results_table_without_benchmark_has_no_optimum_or_marks(study):
    table = results_table(load_runs(study.runs))
    shown = table.display()
    assert "optimal" not in shown.index
    assert not any("†" in c for c in shown.columns)
    assert "not shown" in " ".join(table.footnotes())


def test_per_seed_table_lists_each_runs_final_cell(study):
    df = load_runs(study.runs)
    per_seed = per_seed_table(df, result_columns())
    assert len(per_seed) == len(METHODS) * SEEDS
    for row in per_seed.itertuples(index=False):
        records = _raw_records(Path(row.run_dir))
        raw = records.iloc[-1]
        assert row.genotype == raw["genotype"] and row.epoch == EPOCHS
        assert row.bench_cifar100_test_200 == pytest.approx(raw["bench_cifar100_test_200"])
        # the epoch from which the cell stayed final: the same cell from there on, another one just before
        since = records[records["epoch"] >= row.final_since]
        before = records[records["epoch"] == row.final_since - 1]
        assert (since["genotype"] == row.genotype).all()
        assert before.empty or (before["genotype"] != row.genotype).all()


def test_final_since_counts_from_the_last_arrival_of_the_final_cell():
    from nasbench_stability.analysis.tables import final_since

    cells = {"a": ["x", "y", "y", "x", "y", "y"], "b": ["z", "z", "z"], "c": ["x", "y"]}
    df = pd.DataFrame([{"run": run, "epoch": e + 1, "genotype": g} for run, gs in cells.items()
                       for e, g in enumerate(gs)]).sample(frac=1, random_state=0)   # order must not matter
    assert final_since(df).to_dict() == {"a": 5, "b": 1, "c": 2}


# ---- ranking ---------------------------------------------------------------------------------
def test_rank_correlation_of_a_darts_supernet(study):
    run_dir = next(d for d in study.run_dirs() if d.name.startswith("darts-v1-"))
    result = rank_correlation(run_dir, n_cells=6, batches=1, seed=3, data_root=study.data_root,
                              benchmark=study.benchmark)
    cells = result.cells
    assert len(cells) == 6 and cells["arch"].nunique() == 6
    assert cells["supernet_acc"].between(0, 100).all()
    assert result.examples == 64
    from scipy import stats
    tau = stats.kendalltau(cells["cifar10_test_200"], cells["supernet_acc"]).statistic
    assert (math.isnan(tau) and math.isnan(result.kendall_tau)) or result.kendall_tau == pytest.approx(tau)
    # the same cells (seeded) and the same batches (no shuffle, no augmentation): reproducible
    again = rank_correlation(run_dir, n_cells=6, batches=1, seed=3, data_root=study.data_root,
                             benchmark=study.benchmark)
    pd.testing.assert_frame_equal(cells, again.cells)


def test_rank_correlation_refuses_methods_without_nb201_weighted_cells(study, monkeypatch):
    import nasbench_stability.engine.restore as restore
    from nasbench_stability.engine.config import resolve_config
    from nasbench_stability.engine.run import build_method
    from nasbench_stability.methods.registry import list_methods

    darts = build_method(resolve_config("darts-v1", preset="smoke", device="cpu", overrides={"channels": "4"}), 10, 4)
    assert discrete_eval_problem(darts) is None
    assert "not weighted by an NB201" in discrete_eval_problem(object())
    if "factorized-act" not in {m.name for m in list_methods()}:
        pytest.skip("factorized-act is not in this checkout")
    cfg = resolve_config("factorized-act", preset="smoke", device="cpu", overrides={"channels": "4"})
    method = build_method(cfg, 10, 4)
    assert "not weighted by an NB201" in discrete_eval_problem(method)
    real = restore.restore_run(study.run_dirs()[0], data_root=study.data_root)
    monkeypatch.setattr(restore, "restore_run", lambda *a, **k: restore.RestoredRun(cfg, method, real.data, 1))
    with pytest.raises(UnsupportedAnalysisError, match="not available for factorized-act"):
        rank_correlation(study.run_dirs()[0], n_cells=4, batches=1, benchmark=study.benchmark)
