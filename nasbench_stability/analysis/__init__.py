"""Analysis of run directories: tidy pandas frames and statistics, no plotting.

    from nasbench_stability.analysis import load_runs, results_table, collapse_summary
    df = load_runs("runs/")                      # one row per run and epoch
    table = results_table(df, Benchmark.load())  # NB201-style final results
    table.display()                              # "mean ± std [95% interval]" strings, with an "optimal" row
    pairwise_tests(df)                           # method vs method: difference, interval, Holm-corrected p
    survival_summary(collapse_events(df))        # Kaplan–Meier of "not yet collapsed", median epochs to collapse
    early_warning(df).ranking(k=5)               # which signal warns of collapse 5 epochs ahead (AUC, lead times)

Names are imported lazily (PEP 562): importing one module does not pull in pandas, scipy and
the rest of the analysis stack. The α-Hessian spectrum is measured during the search, by
:mod:`nasbench_stability.engine.hessian`, and read here from the records like any column.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # loading
    "load_runs": "loading", "run_index": "loading", "find_run_dirs": "loading", "read_run_records": "loading",
    "NoRunsError": "loading",
    # reshaping array columns
    "stack": "matrices", "long_edge_op": "matrices", "EDGE_LABELS": "matrices",
    # results tables
    "result_columns": "bench_columns", "benchmark_column": "bench_columns", "ResultColumn": "bench_columns",
    "final_records": "tables", "per_seed_table": "tables", "per_seed_display": "tables",
    "results_table": "tables", "ResultsTable": "tables",
    # per-epoch curves over seeds
    "epoch_curves": "curves", "array_epoch_curves": "curves",
    # table searches' best-so-far trajectories
    "best_so_far_curves": "trajectories", "table_search_rows": "trajectories", "supernet_records": "trajectories",
    # collapse
    "CollapseCriteria": "collapse", "collapse_per_run": "collapse", "collapse_summary": "collapse",
    "collapse_display": "collapse", "collapsed_by_epoch": "collapse",
    # statistics across seeds: intervals, pairwise tests, collapse as survival
    "IntervalRule": "intervals", "mean_interval": "intervals", "wilson_interval": "intervals",
    "PairwiseOptions": "pairwise", "pairwise_tests": "pairwise", "pairwise_display": "pairwise", "holm": "pairwise",
    "collapse_events": "survival", "kaplan_meier": "survival", "survival_summary": "survival",
    "logrank_tests": "survival", "median_epochs_to_collapse": "survival",
    # early warning of collapse: which signal predicts it, how many epochs ahead
    "early_warning": "warning", "EarlyWarning": "warning", "WarningOptions": "warning", "INDICATORS": "warning",
    "Indicator": "warning", "indicator_series": "warning", "indicator_values": "warning",
    "warning_display": "warning",
    # schedules cut below the method's own
    "cut_schedule_notes": "schedule",
    # ranking
    "rank_correlation": "ranking", "RankingResult": "ranking", "UnsupportedAnalysisError": "ranking",
    "discrete_eval_problem": "ranking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
