"""One run of a table search (:mod:`..methods.multitrial`): a resolved config in, a run directory out.

The directory is a gradient run's: ``config.json``, ``status.json`` and ``records/epoch-NNNN.parquet``,
so :func:`~..analysis.loading.load_runs`, the results table and the report read it unchanged. An
"epoch" here is a checkpoint of the trajectory: record k of K (``checkpoints``) is the best cell by the
search signal among the first ceil(k·N/K) of the run's N queries, with its benchmark accuracies like a
gradient run's derived cell; the last record is the run's result. A run takes well under a second,
so there is no checkpoint file: a run killed midway is simply run again from its seed (deterministic),
and a finished one is not re-run (:meth:`Run.claim` answers "already finished").
"""

from __future__ import annotations

import math
from typing import Any

from ..destinations import writing
from ..errors import NbsError
from ..methods.multitrial.base import BudgetExhausted
from ..methods.registry import get_method
from .epoch_log import open_epoch_log
from .records import checkpoint_ends, drop_records_after, record_path, write_record
from .run import Run, RunResult, _write_status, seed_everything
from .table_oracle import Query, TableOracle


class TableRun(Run):
    """Executes one table search's RunConfig into its run directory (same claim, lock and status as a Run)."""

    def _search(self) -> RunResult:
        cfg = self.config
        options = cfg.options()
        seed_everything(cfg.seed)
        method = get_method(cfg.method).factory(options, cfg.seed)
        # last before the search: its clock times the search alone (a library's import is the method's)
        oracle = TableOracle(self.benchmark, cfg.dataset, options)   # refuses a missing column before any write
        self.write_config()
        with writing(self.run_dir / "records", "run records"):
            drop_records_after(self.run_dir, 0)   # a killed run's records: recomputed identically below
        _write_status(self.run_dir, "running", 0)
        self.epoch_logger = open_epoch_log(self.epoch_log, self.run_dir, 0)
        try:
            method.search(oracle)
        except BudgetExhausted:
            pass
        if not oracle.log:
            raise NbsError(f"{cfg.run_name}: the budget admits no query (the first cell costs more than "
                           f"{oracle.budget:g} {oracle.budget_kind})")
        ends = checkpoint_ends(len(oracle.log), cfg.epochs)
        genotype = None
        for k, end in enumerate(ends, start=1):
            record = self._table_record(oracle, k, len(ends), end, ends[k - 2] if k > 1 else 0)
            genotype = record["genotype"]
            with writing(record_path(self.run_dir, k), "record"):
                write_record(self.run_dir, k, record)
            self.epoch_logger.epoch(record)
        _write_status(self.run_dir, "finished", len(ends))
        self.log(f"{cfg.run_name}: {len(oracle.log)} queries, best {genotype} "
                 f"test={record.get('bench_cifar10_test_200', math.nan):.2f}")
        return RunResult(self.run_dir, "finished", len(ends), genotype,
                         unit=f"record checkpoints of {len(oracle.log)} queries")

    def _table_record(self, oracle: TableOracle, k: int, checkpoints: int, end: int, start: int) -> dict[str, Any]:
        """Record ``k``: the best of the first ``end`` queries (the first of equals), and the run so far."""
        cfg, seen = self.config, oracle.log[:end]
        best: Query = max(seen, key=lambda q: q.signal)   # max returns the first of equal maxima
        genotype = self.benchmark.genotype_at(best.index)
        bench = self.benchmark.lookup_one(best.index)
        last = seen[-1]
        record: dict[str, Any] = {
            "run": cfg.run_name, "method": cfg.method, "dataset": cfg.dataset, "seed": cfg.seed,
            "preset": cfg.preset, "epoch": k, "epochs": checkpoints,
            "genotype": genotype.to_str(), "canonical_key": genotype.canonical_key,
            "param_free_count": genotype.param_free_count, "bench_index": best.index,
            "queries": end, "distinct_queries": len({q.index for q in seen}),
            "budget": oracle.budget_kind, "budget_spent": last.spent, "budget_total": oracle.budget,
            "signal_column": oracle.signal_name, "signal": best.signal, "best_query": oracle.log.index(best) + 1,
            "epoch_seconds": last.seconds - (oracle.log[start - 1].seconds if start else 0.0),
            "wall_seconds": last.seconds, "pack_size": 1, "diverged": False,
        }
        for spec in self.benchmark.accuracy_columns:
            record[f"bench_{spec.name}"] = float(bench.get(spec.name, math.nan))
        return record
