"""How much faster a cached dataset loads than a decode: the real CIFAR-10 of ../shared decoded into a fresh
cache, then reloaded from it, side by side in one process (the target: a reload well under a second, so
that every run and every worker can afford it).

    python benchmarks/cache_reload.py [--root ../shared/datasets] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="dataset folder (default: where nbs looks)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbs-cache-") as home:
        os.environ["NBS_HOME"] = home            # a cache of our own, so the first load decodes
        from nasbench_stability.data import load_arrays

        t0 = time.perf_counter()
        load_arrays("cifar10", args.root, progress=False)
        decode = time.perf_counter() - t0
        reloads = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            load_arrays("cifar10", args.root, progress=False)
            reloads.append(time.perf_counter() - t0)
    reload = statistics.median(reloads)
    print(f"CIFAR-10 decode and cache: {decode:.2f} s; cached reload: {reload:.2f} s (median of {args.repeats}); "
          f"decode / reload = {decode / reload:.1f}×; target reload < 1 s: {'met' if reload < 1 else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
