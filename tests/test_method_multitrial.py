"""Multi-trial table searches (RS, REA, REINFORCE, BOHB): their defining rules on toy oracles, and their runs
on the benchmark table (budget kept, only queried cells recorded, the records the analysis reads).
All of it takes seconds: no dataset, no supernet."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import chisquare

from nasbench_stability.analysis.loading import load_runs
from nasbench_stability.analysis.tables import results_table
from nasbench_stability.bench.columns import ColumnSpec
from nasbench_stability.bench.table import Benchmark
from nasbench_stability.engine import table_run
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.executor import execute_config
from nasbench_stability.engine.records import read_records
from nasbench_stability.engine.table_oracle import TableOracle, time_column
from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.multitrial.base import BudgetExhausted
from nasbench_stability.methods.multitrial.rea import RegularizedEvolution, ReaOptions
from nasbench_stability.methods.multitrial.reinforce import Reinforce, ReinforceOptions
from nasbench_stability.methods.multitrial.rs import RandomSearch, RandomSearchOptions
from nasbench_stability.methods.registry import get_method

from conftest import REPO

TABLE_METHODS = ("rs", "rea", "reinforce", "bohb")


class ToyOracle:
    """Answers ``reward(cell)`` for ``budget`` queries, then raises BudgetExhausted; logs the cells."""

    def __init__(self, reward, budget: int) -> None:
        self.reward, self.budget, self.cells = reward, budget, []

    def query(self, cell):
        if len(self.cells) >= self.budget:
            raise BudgetExhausted
        self.cells.append(tuple(cell))
        return float(self.reward(cell))


def run_toy(method, reward, budget: int) -> ToyOracle:
    oracle = ToyOracle(reward, budget)
    with pytest.raises(BudgetExhausted):
        method.search(oracle)
    return oracle


# ---- the defining rules --------------------------------------------------------------------------
def test_rs_draws_every_op_uniformly_on_every_edge():
    oracle = run_toy(RandomSearch(RandomSearchOptions(), seed=3), lambda c: 0.0, budget=3000)
    cells = np.array(oracle.cells)
    for edge in range(cells.shape[1]):
        counts = np.bincount(cells[:, edge], minlength=5)
        assert chisquare(counts).pvalue > 1e-3, (edge, counts)
    # edges are drawn independently: pairs of edges are uniform over the 25 op pairs too
    pairs = np.bincount(cells[:, 0] * 5 + cells[:, 5], minlength=25)
    assert chisquare(pairs).pvalue > 1e-3


def rea_with_population(signals: list[float], **options) -> RegularizedEvolution:
    rea = RegularizedEvolution(ReaOptions(population=len(signals), **options), seed=0)
    for k, signal in enumerate(signals):
        rea.population.append(((k // 5, k % 5, 0, 0, 0, 0), signal))   # distinct cells
    return rea


def test_rea_the_oldest_dies_not_the_worst():
    rea = rea_with_population([99.0, 10.0, 50.0, 60.0])   # the oldest is the best, the second the worst
    oracle = ToyOracle(lambda c: 1.0, budget=1)
    rea.evolve(oracle)
    signals = [s for _, s in rea.population]
    assert signals == [10.0, 50.0, 60.0, 1.0]            # the best (oldest) left; the child joined last
    assert len(rea.population) == 4


def test_rea_parent_is_the_best_of_its_tournament_sample():
    signals = [float(v) for v in np.random.default_rng(1).permutation(10)]
    rea = rea_with_population(signals, sample_size=3)
    mirror = np.random.default_rng(0)   # the same stream as rea.rng (seed 0)
    for _ in range(200):
        picks = mirror.integers(0, 10, size=3)
        expected = max((rea.population[int(i)] for i in picks), key=lambda m: m[1])[0]
        assert rea.select_parent() == expected
    # and the tournament does favour the better members (not a uniform pick)
    rea = rea_with_population(signals, sample_size=3)
    parents = Counter(rea.select_parent() for _ in range(3000))
    best, worst = rea.population[int(np.argmax(signals))][0], rea.population[int(np.argmin(signals))][0]
    assert parents[best] > 5 * parents[worst]


@pytest.mark.parametrize("scheme, expected", [("by-node", [1 / 3, 1 / 6, 1 / 6, 1 / 9, 1 / 9, 1 / 9]),
                                               ("uniform", [1 / 6] * 6)])
def test_rea_mutation_changes_exactly_one_edge_to_another_op(scheme, expected):
    rea = RegularizedEvolution(ReaOptions(mutation_edge=scheme), seed=5)
    parent = (0, 1, 2, 3, 4, 0)
    edges, new_ops = [], Counter()
    for _ in range(3000):
        child = rea.mutate(parent)
        changed = [e for e in range(6) if child[e] != parent[e]]
        assert len(changed) == 1
        edges.append(changed[0])
        new_ops[(changed[0], child[changed[0]])] += 1
    counts = np.bincount(edges, minlength=6)
    assert chisquare(counts, np.array(expected) * len(edges)).pvalue > 1e-3, counts
    # the new op is uniform over the four others (edge 0: parent op 0)
    assert chisquare([new_ops[(0, op)] for op in (1, 2, 3, 4)]).pvalue > 1e-3


def test_reinforce_policy_moves_toward_the_rewarded_cell():
    target = (3, 2, 3, 1, 3, 0)
    # a larger step than the default 0.001, so that 300 queries move it far: this is about the gradient's
    # direction (a sign error drives the target's probability down; the baseline has its own test below)
    method = Reinforce(ReinforceOptions(lr=0.05), seed=0)
    start = method.probabilities()[np.arange(6), target]
    run_toy(method, lambda c: 10.0 * sum(a == b for a, b in zip(c, target)), budget=300)
    end = method.probabilities()[np.arange(6), target]
    assert np.allclose(start, 0.2, atol=0.01)
    assert (end > 0.6).all(), end


def test_reinforce_baseline_is_the_bias_corrected_average():
    method = Reinforce(ReinforceOptions(ema_momentum=0.9), seed=0)
    method.step((0,) * 6, 50.0)
    assert method.baseline.value == pytest.approx(50.0)          # not (1 - 0.9) · 50
    method.step((0,) * 6, 70.0)
    assert method.baseline.value == pytest.approx((0.9 * 0.1 * 50 + 0.1 * 70) / (0.9 * 0.1 + 0.1))


def test_the_registry_marks_table_searches():
    for name in TABLE_METHODS:
        info = get_method(name)
        assert info.table_search and not info.packable
    assert not get_method("darts-v1").table_search


# ---- runs on the table ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench(bench_path) -> Benchmark:
    return Benchmark.load(bench_path)


@pytest.fixture
def oracles(monkeypatch):
    """Every TableOracle the runs create, kept for inspection."""
    made = []

    class Kept(TableOracle):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            made.append(self)

    monkeypatch.setattr(table_run, "TableOracle", Kept)
    return made


def run_table(method: str, out, bench: Benchmark, seed: int = 0, **sets):
    cfg = resolve_config(method, seed=seed, overrides={k: str(v) for k, v in sets.items()})
    result = execute_config(cfg, out, benchmark=bench, progress=False, log=lambda _: None)
    return result, read_records(result.run_dir)


@pytest.mark.parametrize("method", TABLE_METHODS)
def test_runs_keep_the_budget_and_record_only_queried_cells(method, bench, oracles, tmp_path):
    result, records = run_table(method, tmp_path, bench, max_queries=37, checkpoints=5)
    assert result.state == "finished"
    log = oracles[-1].log
    assert len(log) == 37                                     # the whole budget, not one query more
    assert list(records["queries"]) == [8, 15, 23, 30, 37]    # ceil(k·37/5)
    signal = bench.frame["cifar10-valid_valid_12"].to_numpy()
    for row in records.itertuples():
        seen = log[:row.queries]
        assert row.bench_index in {q.index for q in seen}     # never a cell it did not query
        assert row.signal == max(q.signal for q in seen) == signal[row.bench_index]
        assert row.bench_cifar10_test_200 == bench.lookup_one(row.bench_index)["cifar10_test_200"]
    assert records["signal"].is_monotonic_increasing          # best so far
    # deterministic per seed: a second run into another folder records the same cells
    _, again = run_table(method, tmp_path / "again", bench, max_queries=37, checkpoints=5)
    assert list(again["bench_index"]) == list(records["bench_index"])


def test_seconds_budget_reads_the_tables_times(bench, oracles, tmp_path):
    name = time_column("cifar10", 12)
    frame = bench.frame.assign(**{name: 50.0 + (bench.frame["index"] % 7) * 10.0})
    timed = Benchmark(frame, [*bench.columns, ColumnSpec(name, "cifar10-valid", None, 12, True, "synthetic")])
    result, records = run_table("rea", tmp_path, timed, budget="seconds", time_budget=3000, checkpoints=4)
    log, costs = oracles[-1].log, frame[name].to_numpy()
    spent = sum(costs[q.index] for q in log)
    assert spent <= 3000 and records["budget_spent"].iloc[-1] == pytest.approx(spent)
    assert len(log) >= 3000 // 110                            # it stopped only when a query no longer fitted
    with pytest.raises(ConfigError, match="lacks"):           # the shared table has no times
        run_table("rea", tmp_path / "plain", bench, budget="seconds")


def test_table_search_refuses_supernet_settings():
    with pytest.raises(ConfigError, match="preset"):
        resolve_config("rs", preset="smoke")
    with pytest.raises(ConfigError, match="hessian_every"):
        resolve_config("rs", overrides={"hessian_every": "2"})
    with pytest.raises(ConfigError, match="sample_size"):
        RegularizedEvolution(ReaOptions(sample_size=11), seed=0)


def test_bohb_proposes_from_its_model_and_is_deterministic(bench):
    opts = replace(get_method("bohb").default_options(), max_queries=40)
    runs = []
    for _ in range(2):
        method, oracle = get_method("bohb").factory(opts, 7), TableOracle(bench, "cifar10", opts)
        with pytest.raises(BudgetExhausted):
            method.search(oracle)
        runs.append((method, [q.index for q in oracle.log]))
    (method, cells), (_, again) = runs
    assert len(cells) == 40 and cells == again
    # random_fraction 0: once the KDE exists (after 2·7 observations) it makes proposals
    assert method.model_based > 0


def test_cli_runs_rs_seeds_that_the_results_table_reads(bench_path, tmp_path):
    env = {**os.environ, "NBS_BENCHMARK": str(bench_path), "NBS_DATA": str(tmp_path / "no-data"),
           "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "nasbench_stability.cli.main", "run", "--method", "rs", "--seeds", "3",
            "--out", str(tmp_path / "runs"), "--quiet"]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    again = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.stdout.count("already finished") == 3
    df = load_runs(tmp_path / "runs")
    assert sorted(df["seed"].unique()) == [0, 1, 2] and (df["status"] == "finished").all()
    table = results_table(df, Benchmark.load(bench_path))
    row = table.stats[(table.stats["method"] == "rs") & (table.stats["column"] == "cifar10_test_200")].iloc[0]
    assert row["n"] == 3 and 85 < row["mean"] <= 94.37


@pytest.mark.parametrize("key,value,allowed", [("max_queries", "0", "1 ≤ max_queries"),
                                               ("time_budget", "-5", "time_budget > 0"),
                                               ("checkpoints", "0", "1 ≤ checkpoints")])
def test_table_search_budget_options_are_range_checked(key, value, allowed):
    for name in TABLE_METHODS:
        with pytest.raises(ConfigError, match=f"option {key}=") as err:
            resolve_config(name, overrides={key: value})
        assert allowed in str(err.value)
