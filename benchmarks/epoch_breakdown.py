"""What one search epoch costs, part by part, as ratios to its pure optimisation steps; and the exact
α-Hessian, PyTorch's double backwards against nbs's lean ones, measured side by side.

For each preset, one real run of METHOD is prepared as the engine prepares it (real CIFAR-10 through the
engine's data pipeline, the benchmark table, a temporary run directory) and the parts of an epoch are
timed with the engine's own functions:

* ``steps``: the epoch's optimisation steps without the gradient-correlation measurement, ``steps/epoch ×``
  the mean of ``--steps`` timed steps; this is the unit every other part is divided by;
* ``gc steps``: what the epoch's measuring steps (one every ``gc_every``) add over plain ones;
* ``evaluation``: the pass over the preset's valid batches (``eval_batches``);
* ``selection``: the method's end-of-epoch selection (SETN, ENAS; absent elsewhere);
* ``records+lookups``: deriving the cell, looking it up in the benchmark, assembling and writing the record;
* ``checkpoint``: the atomic checkpoint write;
* ``hessian``: one exact spectrum on ``hessian_batches`` valid batches (what ``--hessian-every N`` adds
  every N epochs), once with PyTorch's own double backwards (``lean=False``: the nbs of before issue 21)
  and once with the lean ones, alternately ``--repeats`` times, median of each; the two spectra must agree.

Ratios printed side by side in one process on one machine, so other load shifts the seconds more than
the ratios. One torch thread by default (as `nbs run --jobs` gives each run on this 2-core machine).

    python benchmarks/epoch_breakdown.py                          # smoke and cpu, darts-v1
    python benchmarks/epoch_breakdown.py --presets cpu --method single-darts --repeats 3
    python benchmarks/epoch_breakdown.py --presets smoke --steps 1 --repeats 1 --set channels=4 \
        --set hessian_batches=1 --json out.json                    # the test's size
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nasbench_stability.bench.build import ensure_table
from nasbench_stability.bench.table import Benchmark
from nasbench_stability.engine.checkpoint import save_checkpoint
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.hessian import arch_hessian_spectrum
from nasbench_stability.engine.records import write_record
from nasbench_stability.engine.run import EpochAccumulator, Run, _cycle, _evaluate
from nasbench_stability.methods.base import SearchMethod


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Median wall seconds of ``fn()`` over ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _own_epoch(method, take, epoch: int, train_batches: int, acc: EpochAccumulator) -> tuple[int, float]:
    """(steps, mean seconds per step) of ``epoch`` run whole, for a method whose epoch has its own length."""
    method.begin_epoch(epoch)
    n = method.epoch_steps(epoch, train_batches)
    t0 = time.perf_counter()
    for k in range(n):
        acc.add(method.step(take(), epoch, k, False))
    return n, (time.perf_counter() - t0) / n


def breakdown(preset: str, method_name: str, steps: int, repeats: int, benchmark: Benchmark, out: Path,
              sets: dict[str, str], plain_hessian: bool = True) -> dict:
    """One preset's row (see the module doc); ``plain_hessian=False`` times only the lean Hessian."""
    cfg = resolve_config(method_name, preset=preset, device="cpu", overrides={"hessian_every": "1", **sets})
    run = Run(cfg, out / preset, benchmark=benchmark, progress=False, log=lambda _: None)
    with run.claim():
        search = run.prepare()
        method = search.method
        gc_every = getattr(method.options, "gc_every", 0)
        batches = {name: _cycle(s, 0) for name, s in search.streams.items()}

        def take():
            return {name: next(it) for name, it in batches.items()}

        method.train()
        method.begin_epoch(0)
        method.step(take(), 0, 0, False)                        # warm-up (allocator, first-call costs)
        acc = EpochAccumulator()
        if type(method).epoch_steps is not SearchMethod.epoch_steps:
            # an epoch of its own shape (CDARTS: evaluation-network passes, then cyclic steps of another cost):
            # the last epoch's steps timed whole, the kind that most of such a run's epochs are
            epoch_steps, step_s = _own_epoch(method, take, cfg.epochs - 1, search.steps, acc)
        else:
            plain = []
            for k in range(steps):
                t0 = time.perf_counter()
                acc.add(method.step(take(), 0, k + 1, False))
                plain.append(time.perf_counter() - t0)
            epoch_steps, step_s = search.steps, statistics.mean(plain)
        gc_steps = len(range(0, search.steps, gc_every)) if gc_every else 0
        gc_s = 0.0
        if gc_steps:
            t0 = time.perf_counter()
            acc.add(method.step(take(), 0, 0, True))
            gc_s = time.perf_counter() - t0
        parts = {"steps": epoch_steps * step_s, "gc steps": gc_steps * max(gc_s - step_s, 0.0)}
        if search.select_stream is not None:
            parts["selection"] = timed(lambda: search.select(0, False))[0]
        parts["evaluation"], (valid_loss, valid_acc) = timed(lambda: _evaluate(method, search.eval_stream, 0, False))

        def record():
            rec = run._record(method, 0, acc, 1.0, valid_loss, valid_acc, 1.0, 1.0, None, False)
            write_record(run.run_dir, 1, rec)
        parts["records+lookups"] = timed(record, repeats)[0]
        parts["checkpoint"] = timed(lambda: save_checkpoint(
            run.run_dir / "checkpoint.pt", config_hash=cfg.config_hash, epochs_done=1,
            method_state=method.checkpoint_state(), wall_seconds=1.0), repeats)[0]
        plain_h, lean_h, spectra = [], [], {}
        kinds = ((False, plain_h), (True, lean_h)) if plain_hessian else ((True, lean_h),)
        for _ in range(repeats if search.hessian_batches else 0):   # alternately: drifting load falls on both alike
            for lean, times in kinds:
                t0 = time.perf_counter()
                spectra[lean] = arch_hessian_spectrum(method, search.hessian_batches, lean=lean)
                times.append(time.perf_counter() - t0)
        agree = (float(np.max(np.abs(spectra[True].eigenvalues - spectra[False].eigenvalues)))
                 if len(spectra) == 2 else float("nan"))
    return {"preset": preset, "method": method_name, "channels": cfg.channels, "cells_per_stage": cfg.cells_per_stage,
            "steps_per_epoch": epoch_steps, "timed_steps": steps, "step_s": step_s, "parts_s": parts,
            "hessian_plain_s": statistics.median(plain_h) if plain_h else None,
            "hessian_lean_s": statistics.median(lean_h) if lean_h else None,
            "hessian_batches": cfg.hessian_batches, "hessian_size": len(spectra[True].eigenvalues) if spectra else 0,
            "spectra_max_abs_difference": agree, "lambda_max": spectra[True].largest if spectra else None}


def report(row: dict) -> str:
    unit = row["parts_s"]["steps"]
    lines = [f"{row['method']} at {row['preset']} (C={row['channels']}, N={row['cells_per_stage']}, "
             f"{row['steps_per_epoch']} steps/epoch; {row['timed_steps']} timed steps of {row['step_s']:.3f} s)",
             f"  {'part':24s} {'seconds':>9s} {'× steps':>8s}"]
    for name, seconds in row["parts_s"].items():
        lines.append(f"  {name:24s} {seconds:9.3f} {seconds / unit:8.2f}")
    epoch = sum(row["parts_s"].values())
    lines.append(f"  {'epoch without Hessian':24s} {epoch:9.3f} {epoch / unit:8.2f}")
    for label, key in (("Hessian, PyTorch's", "hessian_plain_s"), ("Hessian, lean", "hessian_lean_s")):
        lines.append(f"  {label:24s} {row[key]:9.3f} {row[key] / unit:8.2f}   "
                     f"({row[key] / row['step_s']:.0f} steps; {row['hessian_size']}×{row['hessian_size']} on "
                     f"{row['hessian_batches']} batches)")
    lines.append(f"  Hessian speed-up, PyTorch's / lean: {row['hessian_plain_s'] / row['hessian_lean_s']:.2f}×   "
                 f"(spectra agree to {row['spectra_max_abs_difference']:.1e}; λ_max {row['lambda_max']:.4g})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="smoke,cpu", help="comma-separated presets (default: smoke,cpu)")
    parser.add_argument("--method", default="darts-v1")
    parser.add_argument("--steps", type=int, default=5, help="plain steps timed per preset (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="Hessian pairs and small parts, median (default 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a run or method option, as `nbs run --set` (e.g. hessian_batches=1)")
    parser.add_argument("--benchmark", type=Path, default=None, help="benchmark table (default: where nbs looks)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    benchmark = Benchmark.load(ensure_table(args.benchmark, log=lambda _: None))
    rows = []
    with tempfile.TemporaryDirectory(prefix="nbs-breakdown-") as tmp:
        for preset in args.presets.split(","):
            rows.append(breakdown(preset.strip(), args.method, args.steps, args.repeats, benchmark, Path(tmp),
                                  dict(pair.split("=", 1) for pair in args.sets)))
            print(report(rows[-1]), flush=True)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {time.strftime('%Y-%m-%d')}")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
