"""Several seeds of one method run as one packed model (:mod:`methods.packing`) in this process.

Each seed keeps what its solo run has: its run directory, lock, config, status, records and a
checkpoint in the solo format (so a packed run resumes solo and a solo run resumes packed), its own
initialisation, data order and augmentation (its own batch streams), optimizer states, clip norm,
α and derived cell. Only the step is shared: one vmapped network for all seeds, one CUDA graph.

Seeds that resume at different epochs run as separate packs, one after another. A seed whose epoch
ends with a non-finite training loss is recorded as diverged, exactly as solo, and leaves the pack;
the others go on (nothing in the packed step mixes seeds, so its NaNs never reach them).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from contextlib import ExitStack

import torch

from ..methods.packing import pack, unpack
from .graphs import graphed_step
from .memory import fits_in_memory
from .run import Run, RunResult, SeedSearch, _cycle, evaluate_seeds, train_epoch


def run_packed(runs: list[Run]) -> list[RunResult]:
    """Execute ``runs`` (seeds of one method with the same options) packed; results in their order."""
    results: dict[int, RunResult] = {}
    with ExitStack() as claims:
        waiting = []
        for i, run in enumerate(runs):
            answer = claims.enter_context(run.claim())
            if answer is None:
                waiting.append(i)
            else:
                results[i] = answer
        searches = {i: runs[i].prepare() for i in waiting}
        by_start: dict[int, dict[int, SeedSearch]] = defaultdict(dict)
        for i, search in searches.items():
            if (stopped := search.stopped_early(search.start_epoch)) is not None:   # its status was repaired
                results[i] = stopped
            else:
                by_start[search.start_epoch][i] = search
        for start in sorted(by_start):
            results.update(_search_pack(by_start[start]))
    return [results[i] for i in range(len(runs))]


def _search_pack(live: dict[int, SeedSearch]) -> dict[int, RunResult]:
    first = next(iter(live.values()))
    cfg, run = first.run.config, first.run
    if len({s.steps for s in live.values()}) != 1:
        raise ValueError("seeds with different steps per epoch cannot be packed")
    results: dict[int, RunResult] = {}
    packed = pack([s.method for s in live.values()])
    for epoch in range(first.start_epoch, cfg.epochs):
        order = list(live)
        k_seeds = len(order)
        t0 = time.perf_counter()
        with fits_in_memory(cfg, f"training epoch {epoch + 1} of {k_seeds} packed seeds"):
            iters = [{name: _cycle(s, epoch) for name, s in live[i].streams.items()} for i in order]

            def next_batches() -> dict:
                per_seed = [{name: next(it) for name, it in its.items()} for its in iters]
                return {name: (torch.stack([b[name][0] for b in per_seed]), torch.stack([b[name][1] for b in per_seed]))
                        for name in per_seed[0]}

            label = f"{cfg.method}-{cfg.dataset} ×{k_seeds} seeds ep {epoch + 1}/{cfg.epochs}" if run.progress else None
            acc = train_epoch(packed, graphed_step(packed, run.cuda_graphs), next_batches, epoch, first.steps, label)
            unpack(packed, [live[i].method for i in order])
            losses = (acc.loss / max(acc.count, 1)).tolist()
            diverged = [not math.isfinite(v) for v in losses]
            for i, d in zip(order, diverged):   # before the evaluation, as solo
                live[i].select(epoch, d)
            valid_loss, valid_acc = evaluate_seeds(packed, [live[i].eval_stream for i in order], epoch,
                                                   run.cuda_graphs)
            spectra = [live[i].spectrum(epoch, d) for i, d in zip(order, diverged)]
        if cfg.torch_device().type == "cuda":
            torch.cuda.synchronize()
        share = (time.perf_counter() - t0) / k_seeds
        for k, i in enumerate(order):
            lost = diverged[k]   # as solo: no evaluation of a diverged seed
            ended = live[i].end_epoch(epoch, acc.seed(k), losses[k], math.nan if lost else valid_loss[k],
                                      math.nan if lost else valid_acc[k], share, spectra[k], lost, k_seeds)
            if ended is not None:
                results[i] = ended
                del live[i]
        if not live:
            return results
        if len(live) < k_seeds:
            packed = pack([s.method for s in live.values()])   # the diverged leave; the others go on
    for i, search in live.items():
        results[i] = search.finished()
    return results
