"""Seconds per paper-preset search epoch per seed: nbs solo (eager and CUDA-graphed), nbs packed K seeds,
and xautodl's DARTS-V1, on the same device in the same process.

An epoch is the engine's: 390 optimisation steps (25,000 // 64 train images, batch 64) and one
evaluation pass over the 25k valid half (391 batches, the last of 40 images), C=16, N=5, CIFAR-10
sizes. Timing every configuration for whole epochs does not fit a few minutes, so each row times
``--steps`` steps and ``--eval-batches`` evaluation batches after a warm-up, and the epoch is
EXTRAPOLATED from them:

    epoch_s = 390 * step_s + 391 * eval_s + capture_s

``step_s`` is an epoch's mix of two kinds of step, each timed on its own in the engine's
``train_epoch`` loop (step function, ``EpochAccumulator``): ``--steps`` plain steps, and
``--steps // gc_every`` (at least 1) steps that also measure gradient correlation, which an epoch
takes on steps 0, gc_every, 2 gc_every, ... (39 of 390 at the default gc_every=10); each kind's
time is the median over ``--repeats`` of its mean step time. ``eval_s`` is the same for a batch of
evaluation (``BatchScorer``, as ``evaluate_seeds`` uses it). ``capture_s`` is what a graphed
row pays again every epoch: the engine captures a new step graph per epoch and kind of step (and a
new evaluation graph per batch shape), so a fresh ``GraphedStep``/``BatchScorer`` is timed on its
first calls, less the replays those calls contain. The first epoch's one-off eager warm-up steps are
not in ``epoch_s`` (see ``warmup_s`` in the JSON).

The data are random CIFAR-shaped uint8 images (2 x 25,000, labels 0-9) on the device, fed through
the engine's own on-device pipeline (``BatchStream``: per-seed shuffle, crop, flip, normalise): the
timing does not depend on pixel values, so no dataset is needed. Packed rows take seeds 0..K-1, each
built by ``build_method`` from its own config (own initialisation, own batch streams) and packed with
``pack``; batches are (K, B, ...) stacks, as ``engine.packed_run`` makes them. The K solo objects are
kept alive during a packed row, as the engine keeps them.

Modes per method: ``solo-eager`` (``method.step``, the path before packing and graphs),
``solo-graph`` (``graphed_step`` of one solo method; CUDA and ``graph_static()`` only), ``packed K``
for each K of ``--packs`` (packable methods only; graphed on CUDA where static, eager elsewhere), and
xautodl's ``TinyNetworkDarts`` DARTS-V1 once (eager; the step of ``darts_step_vs_xautodl.py``, and its
eval forward). Every row is built fresh and freed before the next, so peak memory
(``torch.cuda.max_memory_allocated``, which includes the 154 MB of images) is that row's.
A row that runs out of GPU memory is printed as OOM and the next one runs; rows not yet started
when ``--time-limit`` (default 360 s) has passed are printed as skipped, so the defaults end within
about 7 minutes on an H100 (expected there: about 5).

    python benchmarks/gpu_epoch.py                        # H100: all defaults, a few minutes
    python benchmarks/gpu_epoch.py --device cpu --small --steps 2 --eval-batches 2 --packs 1,2 \\
        --methods darts-v1,edas-inv --threads 1           # CPU smoke (C=8, N=1), under a minute

Targets (issue): on an H100, 5 packed seeds ≤ 1.5x the epoch wall time of one solo seed (solo-eager);
≤ 15 s per seed-epoch amortised for DARTS-V1 (stretch 10 s). On CPU, nbs's DARTS-V1 step ≥ 2x
xautodl's (judged on steps without gradient correlation, which xautodl does not measure, at paper size).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

EPOCH_STEPS = 25_000 // 64            # 390 optimisation steps per paper epoch
EPOCH_EVAL_BATCHES = -(-25_000 // 64)  # 391 evaluation batches (390 x 64 + 1 x 40)
HALF = 25_000                          # images per half (train / valid)
DEFAULT_METHODS = "darts-v1,darts-v2,single-darts,mergenas-v2,edas-inv"


@dataclass
class Row:
    method: str
    mode: str                  # solo-eager | solo-graph | packed | xautodl
    k: int
    status: str = "ok"         # ok | n/a | OOM | error | skipped
    note: str = ""
    step_s: float | None = None        # one step of the whole pack: the epoch's mix of the two kinds below
    plain_step_s: float | None = None  # a step without gradient correlation (xautodl: its step)
    gc_step_s: float | None = None     # a step that measures gradient correlation (1 in gc_every)
    eval_s: float | None = None        # one evaluation batch of the whole pack
    capture_s: float = 0.0             # graph captures paid again every epoch
    epoch_s: float | None = None       # extrapolated epoch of the whole pack
    warmup_s: float | None = None      # first epoch's one-off warm-up (eager steps + first captures)
    peak_mib: float | None = None
    row_s: float | None = None         # wall time this row took in the benchmark (build + measure)
    step_repeats: list[float] = field(default_factory=list)   # plain steps
    gc_repeats: list[float] = field(default_factory=list)
    eval_repeats: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"packed {self.k}" if self.mode == "packed" else self.mode

    @property
    def seed_step_s(self) -> float | None:
        return None if self.step_s is None else self.step_s / self.k

    @property
    def seed_epoch_s(self) -> float | None:
        return None if self.epoch_s is None else self.epoch_s / self.k

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(label=self.label, seed_step_s=self.seed_step_s, seed_epoch_s=self.seed_epoch_s)
        return d


# ---------------------------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from nasbench_stability.data.catalog import dataset_spec
        from nasbench_stability.data.pipeline import DeviceSplit

        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.channels, self.cells = (8, 1) if args.small else (16, 5)
        spec = dataset_spec("cifar10")
        self.mean, self.std = spec.mean, spec.std
        g = torch.Generator(device=self.device).manual_seed(0)

        def split() -> DeviceSplit:
            x = torch.randint(0, 256, (HALF, 3, 32, 32), generator=g, device=self.device, dtype=torch.uint8)
            return DeviceSplit(x, torch.randint(0, 10, (HALF,), generator=g, device=self.device))

        self.train, self.valid = split(), split()
        self.overrides = {"channels": str(self.channels), "cells_per_stage": str(self.cells), **args.set}

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def timed(self, fn: Callable[[], Any]) -> float:
        self.sync()
        t = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t

    # ---- data: the engine's streams ------------------------------------------------------------
    def train_batches(self, names: tuple[str, ...], seeds: list[int], stacked: bool) -> Callable[[], dict]:
        """``next_batches`` as the engine builds it: one augmented stream per (seed, name), endless;
        (K, B, ...) stacks for a packed method."""
        from nasbench_stability.data.pipeline import BatchStream

        split = {"train": self.train, "train2": self.train, "valid": self.valid}

        def endless(stream: BatchStream) -> Iterator:
            return itertools.chain.from_iterable(stream.epoch(e) for e in itertools.count())

        iters = [{n: endless(BatchStream(split[n], 64, s, n, augment=True, mean=self.mean, std=self.std))
                  for n in names} for s in seeds]
        if not stacked:
            (its,) = iters
            return lambda: {n: next(it) for n, it in its.items()}

        def next_batches() -> dict:
            per_seed = [{n: next(it) for n, it in its.items()} for its in iters]
            return {n: (torch.stack([b[n][0] for b in per_seed]), torch.stack([b[n][1] for b in per_seed]))
                    for n in names}

        return next_batches

    def eval_streams(self, seeds: list[int]) -> list:
        from nasbench_stability.data.pipeline import BatchStream

        return [BatchStream(self.valid, 64, s, "eval", augment=False, mean=self.mean, std=self.std,
                            drop_last=False, shuffle=False) for s in seeds]

    def eval_batches(self, streams: list, stacked: bool, start: int = 0, count: int | None = None) -> Iterator:
        """Evaluation batches as ``evaluate_seeds`` makes them (stacked over seeds when packed)."""
        its = [itertools.islice(s.epoch(0, start), count) for s in streams]
        for batches in zip(*its):
            if stacked:
                yield torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
            else:
                (xy,) = batches
                yield xy

    def measure_eval(self, row: Row, scorer_factory: Callable[[], Callable], streams: list, stacked: bool,
                     graphed: bool, set_mode: Callable[[bool], None]) -> None:
        """eval_s per batch of 64 and, for graphed scorers, the per-epoch capture of both batch shapes."""
        args = self.args
        last = len(streams[0]) - 1   # the short batch (40 images)
        shapes = [next(self.eval_batches(streams, stacked, 0, 1)), next(self.eval_batches(streams, stacked, last, 1))]
        set_mode(False)
        try:
            with torch.no_grad():
                scorer = scorer_factory()
                for x, y in shapes:     # first epoch: warm-up (and first captures)
                    scorer(x, y)
                if graphed:             # a later epoch's new scorer (the old one's graphs go): capture again
                    scorer = scorer_factory()
                    first = self.timed(lambda: [scorer(x, y) for x, y in shapes])

                def eval_pass() -> None:
                    loss = correct = 0
                    for x, y in self.eval_batches(streams, stacked, 0, args.eval_batches):
                        bl, bc = scorer(x, y)
                        loss, correct = loss + bl, correct + bc
                    torch.as_tensor(loss).reshape(-1).tolist()   # evaluate_seeds' one host sync
                    torch.as_tensor(correct).reshape(-1).tolist()

                row.eval_repeats = [self.timed(eval_pass) / args.eval_batches for _ in range(args.repeats)]
                row.eval_s = statistics.median(row.eval_repeats)
                if graphed:
                    row.capture_s += max(0.0, first - 2 * row.eval_s)
        finally:
            set_mode(True)

    # ---- nbs rows ---------------------------------------------------------------------------------
    def nbs_row(self, name: str, mode: str, k: int) -> Row:
        from nasbench_stability.engine.config import resolve_config
        from nasbench_stability.engine.graphs import WARMUP_STEPS, BatchScorer, GraphedStep, graphed_step
        from nasbench_stability.engine.run import EpochAccumulator, build_method
        from nasbench_stability.methods.packing import pack

        args, row = self.args, Row(name, mode, k)
        seeds = list(range(k))
        solos = [build_method(resolve_config(name, preset="paper", seed=s, device=str(self.device),
                                             overrides=self.overrides), num_classes=10,
                              steps_per_epoch=EPOCH_STEPS) for s in seeds]
        method = pack(solos) if mode == "packed" else solos[0]
        want_graph = mode != "solo-eager"
        if mode == "solo-graph" and not (self.cuda and method.graph_static()):
            row.status, row.note = "n/a", f"eager fallback: {graph_reason(method, self.device)}"
            return row
        graphed = want_graph and self.cuda and method.graph_static()
        if mode == "packed":
            row.note = "CUDA graph" if graphed else f"eager ({graph_reason(method, self.device)})"
        gc_every = getattr(method.options, "gc_every", 0)
        kinds = [True, False] if gc_every > 0 else [False]
        next_batches = self.train_batches(method.streams, seeds, stacked=mode == "packed")
        counter = itertools.count(1)

        def call_kinds(step_fn: Callable, times: int) -> None:
            for measure in kinds:
                for _ in range(times):
                    step_fn(next_batches(), 0, 0 if measure else next(counter), measure)

        # first epoch: eager warm-up steps (optimizer states, cuDNN choices) and the first captures
        method.train()
        method.begin_epoch(0)
        step_fn = graphed_step(method, True) if graphed else method.step
        assert isinstance(step_fn, GraphedStep) == graphed
        row.warmup_s = self.timed(lambda: call_kinds(step_fn, WARMUP_STEPS + 1 if graphed else 1))
        first = 0.0
        if graphed:   # a later epoch: the engine makes a new GraphedStep (the old one and its graphs go),
            step_fn = graphed_step(method, True)   # which captures again at once
            first = self.timed(lambda: call_kinds(step_fn, 1))
        # the engine's train_epoch loop, each kind timed on its own and weighted by its share of an epoch
        # (gradient correlation on steps 0, gc_every, 2 gc_every, ...), whatever --steps is
        method.train()
        method.begin_epoch(0)

        def loop(measure: bool, n: int) -> None:
            acc = EpochAccumulator()
            for _ in range(n):
                acc.add(step_fn(next_batches(), 0, 0 if measure else next(counter), measure))

        timed = {measure: [self.timed(lambda: loop(measure, n)) / n for _ in range(args.repeats)]
                 for measure, n in ((False, args.steps), (True, max(1, args.steps // max(gc_every, 1))))
                 if measure in kinds}
        row.plain_step_s = statistics.median(timed[False])
        row.step_repeats = timed[False]
        gc_steps = len(range(0, EPOCH_STEPS, gc_every)) if gc_every > 0 else 0
        if gc_steps:
            row.gc_step_s = statistics.median(timed[True])
            row.gc_repeats = timed[True]
            row.note += f"{'; ' if row.note else ''}s/step mixes {row.plain_step_s:.4f} plain, " \
                        f"{row.gc_step_s:.4f} gc (every {gc_every})"
        row.step_s = ((EPOCH_STEPS - gc_steps) * row.plain_step_s + gc_steps * (row.gc_step_s or 0.0)) / EPOCH_STEPS
        if graphed:
            row.capture_s = max(0.0, first - row.plain_step_s - (row.gc_step_s or 0.0))
        step_fn = None   # the graphs and their memory pool go before the evaluation's
        self.measure_eval(row, lambda: BatchScorer(method, graphed), self.eval_streams(seeds),
                          stacked=mode == "packed", graphed=graphed, set_mode=method.train)
        row.epoch_s = EPOCH_STEPS * row.step_s + EPOCH_EVAL_BATCHES * row.eval_s + row.capture_s
        return row

    # ---- xautodl's DARTS-V1 ---------------------------------------------------------------------
    def xautodl_row(self) -> Row:
        row = Row("xautodl", "xautodl", 1)
        try:
            from xautodl.models.cell_operations import NAS_BENCH_201
            from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts
        except ImportError as err:
            row.status, row.note = "n/a", f"xautodl not importable ({err}); pip install --no-deps xautodl"
            return row
        torch.manual_seed(0)
        # affine=False, track_running_stats=True: the NB201 DARTS-V1 search configuration (BN=1)
        net = TinyNetworkDarts(self.channels, self.cells, 4, 10, NAS_BENCH_201, False, True).to(self.device)
        w_opt = torch.optim.SGD(net.get_weights(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
        a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        next_batches = self.train_batches(("train", "valid"), [0], stacked=False)

        def step() -> None:   # DARTS-V1.py's search_func: w step (clip of all parameters), then α step
            b = next_batches()
            (xt, yt), (xv, yv) = b["train"], b["valid"]
            w_opt.zero_grad()
            _, logits = net(xt)
            F.cross_entropy(logits, yt).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5)
            w_opt.step()
            a_opt.zero_grad()
            _, logits = net(xv)
            F.cross_entropy(logits, yv).backward()
            a_opt.step()

        def steps(n: int) -> None:
            for _ in range(n):
                step()

        net.train()
        row.warmup_s = self.timed(lambda: steps(1))
        row.step_repeats = [self.timed(lambda: steps(self.args.steps)) / self.args.steps
                            for _ in range(self.args.repeats)]
        row.step_s = row.plain_step_s = statistics.median(row.step_repeats)

        def score(x: torch.Tensor, y: torch.Tensor):
            _, logits = net(x)
            return F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(-1) == y).sum()

        row.note = "eager; TinyNetworkDarts, BN=1"
        self.measure_eval(row, lambda: score, self.eval_streams([0]), stacked=False, graphed=False,
                          set_mode=net.train)
        row.epoch_s = EPOCH_STEPS * row.step_s + EPOCH_EVAL_BATCHES * row.eval_s
        return row

    # ---- one row, fresh and freed ----------------------------------------------------------------
    def run(self, make: Callable[[], Row], blank: Row) -> Row:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        t = time.perf_counter()
        try:
            row = make()
        except torch.cuda.OutOfMemoryError as err:
            row = blank
            row.status, row.note = "OOM", one_line(err)
        except Exception as err:   # a one-shot run on a lent GPU: report, and go on with the next row
            row = blank
            row.status, row.note = "error", f"{type(err).__name__}: {one_line(err)}"
            traceback.print_exc(file=sys.stderr)
        row.row_s = time.perf_counter() - t
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            if row.status == "ok":
                row.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            torch.cuda.empty_cache()
        return row


def graph_reason(method: Any, device: torch.device) -> str:
    if device.type != "cuda":
        return f"no CUDA graphs on {device.type}"
    return method.graph_blocker() or "graphed"


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:160] + ("…" if len(text) > 160 else "")


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
COLUMNS = (("method", 13), ("mode", 11), ("K", 3), ("s/step", 8), ("s/seed-step", 11), ("eval s/b", 9),
           ("capt s/ep", 9), ("s/epoch", 9), ("s/seed-epoch", 12), ("peak MiB", 9), ("row s", 6))


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row_line(row: Row, cuda: bool) -> str:
    if row.status != "ok":
        cells = [row.method, row.label, str(row.k)] + ["-"] * (len(COLUMNS) - 4) + [fmt(row.row_s, 1)]
        tail = f"  {row.status} ({row.note})" if row.note else f"  {row.status}"
    else:
        mem = fmt(row.peak_mib, 0) if cuda else "-"
        cells = [row.method, row.label, str(row.k), fmt(row.step_s), fmt(row.seed_step_s), fmt(row.eval_s),
                 fmt(row.capture_s, 2), fmt(row.epoch_s, 1), fmt(row.seed_epoch_s, 1), mem, fmt(row.row_s, 1)]
        tail = f"  {row.note}" if row.note else ""
    return "  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS))) + tail


def verdict(value: float, target: float, judged: bool, where: str, below: bool = True) -> str:
    sign = "≤" if below else "≥"
    if not judged:
        return f"({where} target {sign} {target:g}: not judged here)"
    ok = value <= target if below else value >= target
    return f"(target {sign} {target:g}: {'met' if ok else 'not met'})"


def ratio_lines(rows: list[Row], args: argparse.Namespace, cuda: bool) -> list[str]:
    from nasbench_stability.methods.registry import get_method

    judged_gpu = cuda and not args.small
    judged_cpu = not cuda and not args.small
    lines = []
    ok = [r for r in rows if r.status == "ok"]
    for name in args.methods:
        mine = [r for r in ok if r.method == name]
        solo = next((r for r in mine if r.mode == "solo-eager"), None)
        p5 = next((r for r in mine if r.mode == "packed" and r.k == 5), None)
        if not get_method(name).packable:
            lines.append(f"{name}: packed-5 / solo-eager epoch wall: n/a (runs solo: {get_method(name).solo_reason})")
        elif solo is None or p5 is None:
            missing = "K=5 row" if p5 is None else "solo-eager row"
            lines.append(f"{name}: packed-5 / solo-eager epoch wall: n/a (no {missing})")
        else:
            r = p5.epoch_s / solo.epoch_s
            graph = next((r for r in mine if r.mode == "solo-graph"), None)
            also = f" [vs solo-graph: {p5.epoch_s / graph.epoch_s:.2f}x]" if graph is not None else ""
            lines.append(f"{name}: packed-5 / solo-eager epoch wall = {p5.epoch_s:.1f} / {solo.epoch_s:.1f} s = "
                         f"{r:.2f}x {verdict(r, 1.5, judged_gpu, 'H100')}{also}")
        if mine:
            best = min(mine, key=lambda r: r.seed_epoch_s)
            text = (f"{name}: best amortised s per seed-epoch = {best.seed_epoch_s:.1f} s ({best.label})")
            if name == "darts-v1":
                text += (f" {verdict(best.seed_epoch_s, 15, judged_gpu, 'H100')}"
                         f" stretch {verdict(best.seed_epoch_s, 10, judged_gpu, 'H100')}")
            lines.append(text)
    xa = next((r for r in ok if r.mode == "xautodl"), None)
    v1 = [r for r in ok if r.method == "darts-v1"]
    v1_solo = next((r for r in v1 if r.mode == "solo-eager"), None)
    if xa is None:
        lines.append("xautodl DARTS-V1: n/a (no xautodl row)")
    elif not v1:
        lines.append("xautodl DARTS-V1: no darts-v1 rows to compare with")
    else:
        if v1_solo is not None:
            # like for like (darts_step_vs_xautodl.py's measure): a plain nbs step, as xautodl measures no gc
            r = xa.plain_step_s / v1_solo.plain_step_s
            lines.append(f"nbs solo-eager darts-v1 vs xautodl DARTS-V1: per step without gc {xa.plain_step_s:.4f} / "
                         f"{v1_solo.plain_step_s:.4f} s = {r:.2f}x faster "
                         f"{verdict(r, 2, judged_cpu, 'CPU', below=False)}; "
                         f"per epoch (nbs with its gc steps) {xa.epoch_s:.1f} / {v1_solo.epoch_s:.1f} s = "
                         f"{xa.epoch_s / v1_solo.epoch_s:.2f}x")
        best = min(v1, key=lambda r: r.seed_epoch_s)
        lines.append(f"nbs best per-seed darts-v1 ({best.label}) vs xautodl DARTS-V1: {xa.epoch_s:.1f} / "
                     f"{best.seed_epoch_s:.1f} s per seed-epoch = {xa.epoch_s / best.seed_epoch_s:.2f}x faster")
    return lines


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    parser.add_argument("--packs", default="1,2,5,10", help="pack sizes K of the packed rows (default 1,2,5,10)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat (default 20: a multiple "
                        "of gc_every=10, so the gradient-correlation steps are the epoch's share)")
    parser.add_argument("--eval-batches", type=int, default=20, help="timed evaluation batches per repeat (default 20)")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of the timed steps/batches; the median "
                        "is used (default 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is steadier on a "
                        "loaded machine)")
    parser.add_argument("--small", action="store_true", help="C=8, N=1 for nbs and xautodl (CPU smoke test)")
    parser.add_argument("--no-xautodl", action="store_true", help="skip the xautodl DARTS-V1 row")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every nbs row, as `nbs search --set` (e.g. gc_every=0, amp=true)")
    parser.add_argument("--time-limit", type=float, default=360.0, help="seconds after which rows not yet "
                        "started are skipped (printed as such), so that the defaults end within ~7 min on an H100; "
                        "0 = no limit (default 360)")
    parser.add_argument("--json", type=Path, help="also write every row, the ratios and the setup here")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.packs = [int(k) for k in args.packs.split(",") if k.strip()]
    pairs = [s.split("=", 1) for s in args.set]
    if any(len(p) != 2 for p in pairs):
        parser.error("--set takes KEY=VALUE")
    args.set = dict(pairs)
    for name in ("steps", "eval_batches", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if any(k < 1 for k in args.packs):
        parser.error("--packs: every K must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from nasbench_stability.methods.registry import get_method

    for name in args.methods:
        get_method(name)   # unknown names fail here, before minutes of work
    t_start = time.perf_counter()
    bench = Bench(args)
    cuda = bench.cuda
    size = f"C={bench.channels} N={bench.cells}" + (" (--small)" if args.small else " (paper)")
    print(f"gpu_epoch: one search epoch per seed, {size}, batch 64, 2x25k images, device {device_name(bench.device)}")
    repeats = f"{args.repeats} repeat{'s' if args.repeats > 1 else ''}"
    print(f"epoch EXTRAPOLATED from {args.steps} timed steps (+ {args.steps}//gc_every, at least 1, "
          f"gradient-correlation steps) and {args.eval_batches} timed eval batches (median of {repeats})"
          f" after warm-up: s/epoch = {EPOCH_STEPS}*s/step + {EPOCH_EVAL_BATCHES}*eval s/b + capt s/ep "
          f"(graph re-capture per epoch); s/step = the epoch's mix of plain and gc steps")
    print("data: random CIFAR-shaped uint8 images through the engine's on-device pipeline (timing does not "
          "depend on pixel values)" + (f"; overrides {args.set}" if args.set else ""))
    print("per pack: s/step, s/epoch, peak MiB (max_memory_allocated, incl. the images); per seed: /K")
    header = "  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(COLUMNS))
    print(header)
    print("-" * len(header), flush=True)

    rows: list[Row] = []

    def emit(row: Row) -> None:
        rows.append(row)
        print(row_line(row, cuda), flush=True)

    def measure(make: Callable[[], Row], blank: Row) -> None:
        if args.time_limit and time.perf_counter() - t_start > args.time_limit:
            blank.status, blank.note = "skipped", f"--time-limit {args.time_limit:g} s reached"
            emit(blank)
        else:
            emit(bench.run(make, blank))

    # xautodl right after darts-v1 (its partner in the ratios), or first where darts-v1 is not measured
    order: list[str | None] = list(args.methods)
    if not args.no_xautodl:
        order.insert(order.index("darts-v1") + 1 if "darts-v1" in order else 0, None)
    for name in order:
        if name is None:
            measure(bench.xautodl_row, Row("xautodl", "xautodl", 1))
            continue
        info = get_method(name)
        for mode in ("solo-eager", "solo-graph"):
            if mode == "solo-graph" and not cuda:
                emit(Row(name, mode, 1, "n/a", f"eager fallback: no CUDA graphs on {bench.device.type}"))
                continue
            measure(lambda: bench.nbs_row(name, mode, 1), Row(name, mode, 1))
        for k in args.packs:
            if not info.packable:
                emit(Row(name, "packed", k, "n/a", f"runs solo: {info.solo_reason}"))
                continue
            measure(lambda: bench.nbs_row(name, "packed", k), Row(name, "packed", k))

    print()
    print("ratios (epochs extrapolated as above):")
    lines = ratio_lines(rows, args, cuda)
    for line in lines:
        print("  " + line)
    meta = {
        "torch": torch.__version__, "device": device_name(bench.device), "device_type": bench.device.type,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(), "cuda": torch.version.cuda, "channels": bench.channels,
        "cells_per_stage": bench.cells, "steps": args.steps, "eval_batches": args.eval_batches,
        "repeats": args.repeats, "packs": args.packs, "overrides": args.set, "epoch_steps": EPOCH_STEPS,
        "epoch_eval_batches": EPOCH_EVAL_BATCHES, "total_s": time.perf_counter() - t_start,
        "cpu_count": os.cpu_count(),
    }
    print(f"torch {meta['torch']} (CUDA {meta['cuda']}), device {meta['device']}, {meta['date']}, "
          f"benchmark wall {meta['total_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "rows": [r.as_dict() for r in rows], "ratios": lines},
                                        indent=2, default=str))
    return 1 if any(r.status == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
