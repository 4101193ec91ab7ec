"""Several seeds of one method run as one packed model (:mod:`methods.packing`) in this process.

Each seed keeps what its solo run has: its run directory, lock, config, status, records and a
checkpoint in the solo format (so a packed run resumes solo and a solo run resumes packed), its own
initialisation, data order and augmentation (its own batch streams), optimizer states, clip norm,
α and derived cell. Only the step is shared: one vmapped network for all seeds, one CUDA graph.

Seeds that resume at different epochs run as separate packs, one after another. A seed whose epoch
ends with a non-finite training loss is recorded as diverged, exactly as solo, and leaves the pack;
the others go on (nothing in the packed step mixes seeds, so its NaNs never reach them).

Seeds whose data are the same images (the official split: the same for every seed) hold one copy of
them on the device. A pack whose epoch fails in a way engine/fallback.py names (a graph capture, out
of memory, an op unsupported under vmap) goes on eagerly, as smaller packs or solo, from that epoch.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from contextlib import ExitStack

import torch

from ..methods.packing import pack, unpack
from .budget import EpochBudget, clock, timed
from .fallback import GRAPH, Failure, describe, failure_of, release_memory, split_pack, warn
from .graphs import graphed_step, step_path
from .memory import fits_in_memory
from .run import Run, RunResult, SeedSearch, _cycle, evaluate_seeds, train_epoch


def run_packed(runs: list[Run]) -> list[RunResult]:
    """Execute ``runs`` (seeds of one method with the same options) packed; results in their order."""
    results: dict[int, RunResult] = {}
    with ExitStack() as claims:
        waiting = []
        for i, run in enumerate(runs):
            answer = run.unstarted()   # the time budget is spent: not started, nothing written
            if answer is not None:
                results[i] = answer
                continue
            answer = claims.enter_context(run.claim())
            if answer is None:
                waiting.append(i)
            else:
                results[i] = answer
        shared_data: dict = {}   # one copy on the device of the images several seeds use
        searches = {i: runs[i].prepare(shared_data) for i in waiting}
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
    # measured at the pack's first size: seeds that diverge leave, and a smaller pack costs no more
    budget = EpochBudget(run.budget, cfg, len(live)) if run.budget is not None else None
    for epoch in range(first.start_epoch, cfg.epochs):
        if budget is not None and (paused := _pause(live, budget, epoch)):
            return {**results, **paused}
        order = list(live)
        k_seeds = len(order)
        started = clock()
        t0 = time.perf_counter()
        failure = None
        try:
            with fits_in_memory(cfg, f"training epoch {epoch + 1} of {k_seeds} packed seeds"):
                acc, losses, diverged, valid_loss, valid_acc, spectra, hessian_s, path = _pack_epoch(
                    packed, live, order, epoch)
        except Exception as err:
            failure = failure_of(err, packed=True, graphs=run.cuda_graphs)
            if failure is None:
                raise
        if failure is not None:   # out of the except block: its traceback no longer holds the pack
            packed = None
            return {**results, **_fall_back(live, epoch, failure)}
        if cfg.torch_device().type == "cuda":
            torch.cuda.synchronize()
        share = (time.perf_counter() - t0) / k_seeds
        for k, i in enumerate(order):
            lost = diverged[k]   # as solo: no evaluation of a diverged seed
            ended = live[i].end_epoch(epoch, acc.seed(k), losses[k], math.nan if lost else valid_loss[k],
                                      math.nan if lost else valid_acc[k], share, spectra[k], lost, k_seeds, path)
            if ended is not None:
                results[i] = ended
                del live[i]
        if not live:
            return results
        if budget is not None:   # the whole epoch, its records and checkpoints included
            budget.took(clock() - started, hessian_s if any(s is not None for s in spectra) else 0.0)
        if len(live) < k_seeds:
            packed = pack([s.method for s in live.values()])   # the diverged leave; the others go on
    for i, search in live.items():
        results[i] = search.finished()
    return results


def _pack_epoch(packed, live: dict[int, SeedSearch], order: list[int], epoch: int) -> tuple:
    """One epoch of the pack ``packed`` of ``live``'s seeds ``order``: its steps (the state then unpacked
    into each seed's method), selections, evaluation and Hessians. Returns (accumulator, train losses,
    diverged flags, valid losses, valid accuracies, spectra, their seconds, exec path)."""
    first = live[order[0]]
    run, cfg = first.run, first.run.config
    iters = [{name: _cycle(s, epoch) for name, s in live[i].streams.items()} for i in order]

    def next_batches() -> dict:
        per_seed = [{name: next(it) for name, it in its.items()} for its in iters]
        return {name: (torch.stack([b[name][0] for b in per_seed]), torch.stack([b[name][1] for b in per_seed]))
                for name in per_seed[0]}

    label = f"{cfg.method}-{cfg.dataset} ×{len(order)} seeds ep {epoch + 1}/{cfg.epochs}" if run.progress else None
    step_fn = graphed_step(packed, run.cuda_graphs)
    acc = train_epoch(packed, step_fn, next_batches, epoch, first.steps, label)
    unpack(packed, [live[i].method for i in order])
    losses = (acc.loss / max(acc.count, 1)).tolist()
    diverged = [not math.isfinite(v) for v in losses]
    for i, d in zip(order, diverged):   # before the evaluation, as solo
        live[i].select(epoch, d)
    valid_loss, valid_acc = evaluate_seeds(packed, [live[i].eval_stream for i in order], epoch, run.cuda_graphs)
    spectra, hessian_s = timed(lambda: [live[i].spectrum(epoch, d) for i, d in zip(order, diverged)])
    return acc, losses, diverged, valid_loss, valid_acc, spectra, hessian_s, step_path(step_fn, packed)


def _fall_back(live: dict[int, SeedSearch], epoch: int, failure: Failure) -> dict[int, RunResult]:
    """``live``'s seeds from ``epoch`` on, after their pack failed there (engine/fallback.py): as the
    groups :func:`split_pack` says, one after another, each rewound to its checkpoint just before it runs."""
    cfg = next(iter(live.values())).run.config
    seeds = list(live)
    names = {i: str(live[i].run.config.seed) for i in seeds}
    groups = split_pack(seeds, failure)
    warn(f"{cfg.method}-{cfg.dataset} seeds {', '.join(names[i] for i in seeds)} ({len(seeds)} packed)", epoch,
         cfg.epochs, failure, describe(groups, failure, names))
    release_memory(cfg.torch_device())
    results: dict[int, RunResult] = {}
    for group in groups:
        for i in group:
            if failure.kind == GRAPH:
                live[i].run.cuda_graphs = False
            live[i].rewind()
        if len(group) == 1:
            results[group[0]] = live[group[0]].run.search_from(live[group[0]])
        else:
            results.update(_search_pack({i: live[i] for i in group}))
    return results


def _pause(live: dict[int, SeedSearch], budget: EpochBudget, epoch: int) -> dict[int, RunResult]:
    """Before ``epoch``: every seed of the pack paused if the epoch would not fit the time budget, else {}."""
    fits, why = budget.fits(any(s.hessian_due(epoch) for s in live.values()))
    return {} if fits else {i: s.paused(epoch, why) for i, s in live.items()}
