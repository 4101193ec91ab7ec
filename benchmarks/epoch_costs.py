"""Measure the seconds per epoch (and per α-Hessian row) of every supernet method, for the cost line that
`nbs run`, `nbs sweep` and `nbs reproduce` print before they start (nasbench_stability/engine/cost.py).

Each method's epoch is timed part by part as benchmarks/epoch_breakdown.py times it (``--steps`` plain
steps × steps per epoch, the gradient-correlation steps, selection, evaluation, records and lookups,
checkpoint), and its lean α-Hessian on one valid batch, giving seconds per Hessian row (one α entry on
one batch): the batch's forward and first backward over the α entries, plus ``--rows`` rows timed (a
method with 126 entries would otherwise take minutes). One torch thread, as each `--jobs` worker gets on
this project's 2-core machine.

    python benchmarks/epoch_costs.py --presets smoke,cpu --write    # rewrite engine/epoch_costs.csv

Without ``--write`` it only prints. Rows of other methods, presets and devices already in the file are
kept (the paper-scale GPU rates come from benchmarks/RESULTS.md, not from this script).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epoch_breakdown import breakdown  # noqa: E402  (the same timing, one file up)

from nasbench_stability.bench.build import ensure_table  # noqa: E402
from nasbench_stability.bench.table import Benchmark  # noqa: E402
from nasbench_stability.engine.config import resolve_config  # noqa: E402
from nasbench_stability.engine.cost import COSTS_FILE, FIELDS  # noqa: E402
from nasbench_stability.engine.double_backward import LeanDoubleBackward  # noqa: E402
from nasbench_stability.engine.hessian import flat_gradient, arch_parameter_count  # noqa: E402
from nasbench_stability.engine.run import Run, build_method  # noqa: E402
from nasbench_stability.methods.registry import list_methods  # noqa: E402


def hessian_row_seconds(method, batch, rows: int, needed: int) -> float:
    """Seconds per α-Hessian row on ``batch``, as engine/hessian.py computes them (weights frozen, the lean
    double backwards): one forward and first backward shared by the ``needed`` rows, then ``rows`` timed."""
    params = list(method.arch_parameters())
    arch = {id(p) for p in params}
    frozen = [p for p in method.parameters() if p.requires_grad and id(p) not in arch]
    n = arch_parameter_count(method)
    try:
        for p in frozen:
            p.requires_grad_(False)
        with torch.enable_grad(), LeanDoubleBackward():
            t0 = time.perf_counter()
            flat = flat_gradient(torch.autograd.grad(method.arch_loss(*batch), params, create_graph=True,
                                                allow_unused=True), params)
            shared = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(min(rows, n)):
                torch.autograd.grad(flat[i], params, retain_graph=True, allow_unused=True)
            per_row = (time.perf_counter() - t0) / min(rows, n)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return shared / needed + per_row


def prepared(preset: str, method: str, out: Path, benchmark: Benchmark):
    """The method of a freshly prepared run, and one valid batch of it."""
    cfg = resolve_config(method, preset=preset, device="cpu")
    run = Run(cfg, out, benchmark=benchmark, progress=False, log=lambda _: None)
    with run.claim():
        search = run.prepare()
        return search.method, next(iter(search.eval_stream.epoch(0)))


def hessian_rows(method: str) -> int:
    """Hessian-vector products per batch: one per α entry, less the method's known null directions."""
    cfg = resolve_config(method, preset="smoke", device="cpu", overrides={"channels": "4", "cells_per_stage": "1"})
    built = build_method(cfg, num_classes=10, steps_per_epoch=4)
    return arch_parameter_count(built) - len(built.shift_invariant_groups() or [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="smoke,cpu")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every supernet method)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=6, help="Hessian rows timed per method (default 6)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help=f"write the rows into {COSTS_FILE.name}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = (args.methods.split(",") if args.methods else
             [m.name for m in list_methods() if not m.table_search])
    benchmark = Benchmark.load(ensure_table(None, log=lambda _: None))
    today = time.strftime("%Y-%m-%d")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nbs-costs-") as tmp:
        for preset in args.presets.split(","):
            for name in names:
                n = hessian_rows(name)
                row = breakdown(preset, name, args.steps, 1, benchmark, Path(tmp) / preset / name,
                                {"hessian_every": "0"}, plain_hessian=False)
                epoch_s = sum(row["parts_s"].values())
                hessian_row_s = 0.0
                if n:
                    method, batch = prepared(preset, name, Path(tmp) / preset / f"{name}-hessian", benchmark)
                    hessian_row_s = hessian_row_seconds(method, batch, args.rows, n)
                rows.append({"preset": preset, "device": "cpu", "method": name, "epoch_s": f"{epoch_s:.3f}",
                             "hessian_row_s": f"{hessian_row_s:.4f}", "hessian_rows": n, "measured": today,
                             "source": f"benchmarks/epoch_costs.py, torch {torch.__version__}, {args.threads} "
                                       f"thread, 2-core CPU machine"})
                print(f"{preset:6s} {name:18s} {epoch_s:8.2f} s/epoch  {hessian_row_s:7.3f} s per Hessian row "
                      f"({n} rows per batch)", flush=True)
    if args.write:   # replaces the rows measured now, keeps every other
        measured = {(r["preset"], r["device"], r["method"]) for r in rows}
        with COSTS_FILE.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if (r["preset"], r["device"], r["method"]) not in measured]
        with COSTS_FILE.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(kept + rows)
        print(f"wrote {len(rows)} rows (kept {len(kept)}) to {COSTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
