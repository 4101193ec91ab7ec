"""Does the supernet rank cells the way the benchmark does?

One-shot methods assume that a discrete cell evaluated with the supernet's shared weights is a
proxy for the same cell trained alone. This measures that assumption for one run: sample cells
uniformly from NB201, evaluate each with the run's final shared weights (one-hot op weights, the
same valid batches for every cell), and correlate that accuracy with the benchmark's (Kendall τ
and Spearman ρ, scipy.stats).

Only methods that can evaluate a discrete NB201 cell with their shared weights
(``SearchMethod.evaluates_discrete_cells``) can do this; for others (searchable activations, pair
candidates) :class:`UnsupportedAnalysisError` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..bench.table import Benchmark
from ..data.pipeline import BatchStream
from ..errors import ConfigError, NbsError
from ..space.genotype import Genotype
from .bench_columns import DEFAULT_TEST_COLUMN


class UnsupportedAnalysisError(NbsError):
    """The analysis needs a capability this run's method does not have."""


def discrete_eval_problem(method) -> str | None:
    """Why ``method`` cannot evaluate discrete NB201 cells with its shared weights (None if it can)."""
    if not getattr(method, "evaluates_discrete_cells", False):
        return (f"{type(method).__name__}'s searchable cells are not weighted by an NB201 (edge × op) matrix, "
                f"so a one-hot NB201 cell cannot be evaluated with its shared weights")
    return None


def supernet_accuracy(method, genotype: Genotype, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Accuracy (%) of ``genotype`` evaluated with the method's shared weights on ``batches``.

    BatchNorm uses batch statistics: running statistics, where a run tracks them, were gathered
    under the mixed supernet, not under this cell. Only the cell's ops are computed (``active``).
    """
    correct = total = 0
    was_training = method.training
    method.train()
    try:
        with torch.no_grad():
            for x, y in batches:
                logits = method.discrete_logits(x, genotype)
                correct += int((logits.argmax(1) == y).sum())
                total += len(y)
    finally:
        method.train(was_training)
    return 100.0 * correct / max(total, 1)


@dataclass(frozen=True)
class RankingResult:
    run_dir: Path
    method: str
    column: str                 # the benchmark column ranked against
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    examples: int               # valid examples each cell was evaluated on
    cells: pd.DataFrame         # arch, index, benchmark value, supernet_acc

    def summary(self) -> dict[str, object]:
        return {"run": self.run_dir.name, "method": self.method, "cells": len(self.cells),
                "valid examples": self.examples, "benchmark column": self.column,
                "Kendall τ": self.kendall_tau, "p (τ)": self.kendall_p,
                "Spearman ρ": self.spearman_rho, "p (ρ)": self.spearman_p}


def sample_cells(benchmark: Benchmark, n_cells: int, seed: int, column: str) -> pd.DataFrame:
    """``n_cells`` distinct cells drawn uniformly (seeded) among those with a value in ``column``."""
    values = benchmark.frame[column].to_numpy(dtype=float)
    candidates = np.flatnonzero(np.isfinite(values))
    if not 2 <= n_cells <= len(candidates):
        raise ConfigError(f"n_cells must be in 2..{len(candidates)}, got {n_cells}")
    idx = np.sort(np.random.default_rng(seed).choice(candidates, size=n_cells, replace=False))
    return benchmark.lookup(idx)[["arch", "index", column]]


def rank_correlation(run_dir: str | Path, n_cells: int = 32, batches: int = 4, seed: int = 0, *,
                     data_root: str | Path | None = None, benchmark: Benchmark | None = None,
                     column: str = DEFAULT_TEST_COLUMN, device: str | None = None) -> RankingResult:
    """Kendall τ and Spearman ρ between ``column`` and the supernet's valid accuracy of sampled cells.

    Uses the run's last checkpoint and ``batches`` batches of its valid split (in order, no
    augmentation — the same images for every cell). ``seed`` picks the cells.
    """
    from ..engine.restore import restore_run

    if batches < 1:
        raise ConfigError(f"batches must be at least 1, got {batches}")
    bench = benchmark if benchmark is not None else Benchmark.load()
    bench.column(column)
    restored = restore_run(Path(run_dir), data_root=Path(data_root) if data_root is not None else None,
                           device=device)
    method, cfg, data = restored.method, restored.config, restored.data
    problem = discrete_eval_problem(method)
    if problem is not None:
        raise UnsupportedAnalysisError(f"rank correlation is not available for {cfg.method}: {problem}")
    stream = BatchStream(data.valid, cfg.batch_size, cfg.seed, "rank", augment=False, mean=data.mean,
                         std=data.std, drop_last=False, shuffle=False, limit_batches=batches)
    fixed = list(stream.epoch(0))
    cells = sample_cells(bench, n_cells, seed, column)
    cells["supernet_acc"] = [supernet_accuracy(method, Genotype.from_str(a), fixed) for a in cells["arch"]]
    tau = stats.kendalltau(cells[column], cells["supernet_acc"])
    rho = stats.spearmanr(cells[column], cells["supernet_acc"])
    return RankingResult(Path(run_dir), cfg.method, column, float(tau.statistic), float(tau.pvalue),
                         float(rho.statistic), float(rho.pvalue), sum(len(y) for _, y in fixed), cells)
