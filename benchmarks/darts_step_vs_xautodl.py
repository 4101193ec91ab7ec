"""Time one DARTS-V1 search step of nbs and of xautodl's TinyNetworkDarts, side by side.

One step = one weight update on a train batch, then one α update on a valid batch (xautodl's
DARTS-V1.py order; batch 64, C=16, N=5, CIFAR-sized inputs), with the NB201 reference optimizers
and clip, on the same machine in the same process. Prints seconds per step for both and the ratio (target on CPU: nbs ≥ 2× faster).

    pip install --no-deps xautodl      # reference implementation (its deps are not needed here)
    python benchmarks/darts_step_vs_xautodl.py [--device cpu|cuda] [--steps 5] [--repeats 3]

Both sides step the same batches; steps alternate between the two implementations to share any
drift of the machine's speed (thermal, other load) evenly. The median over repeats is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def make_nbs(device: torch.device, amp: bool = False):
    from nasbench_stability.engine.config import resolve_config
    from nasbench_stability.engine.run import build_method

    overrides = {"channels": "16", "cells_per_stage": "5", "gc_every": "0"}
    if amp:
        overrides["amp"] = "true"
    cfg = resolve_config("darts-v1", preset="paper", device=device.type, overrides=overrides)
    method = build_method(cfg, num_classes=10, steps_per_epoch=390)

    def step(train, valid):
        method.step({"train": train, "valid": valid}, epoch=0, step=0, measure_gc=False)

    return step


def make_xautodl(device: torch.device):
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

    # affine=False, track_running_stats=True: the NB201 DARTS-V1 search configuration (BN=1)
    net = TinyNetworkDarts(16, 5, 4, 10, NAS_BENCH_201, False, True).to(device)
    w_opt = torch.optim.SGD(net.get_weights(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

    def step(train, valid):  # xautodl's DARTS-V1 search_func: w step (clip of all parameters), then α step
        w_opt.zero_grad()
        _, logits = net(train[0])
        F.cross_entropy(logits, train[1]).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5)
        w_opt.step()
        a_opt.zero_grad()
        _, logits = net(valid[0])
        F.cross_entropy(logits, valid[1]).backward()
        a_opt.step()

    return step


def timed(fn, batches, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for train, valid in batches:
        fn(train, valid)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--amp", action="store_true", help="also time nbs with bf16 autocast (CUDA)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    def rand_batch():
        x = torch.randn(args.batch, 3, 32, 32, generator=gen).to(device)
        return x, torch.randint(0, 10, (args.batch,), generator=gen).to(device)

    batches = [(rand_batch(), rand_batch()) for _ in range(args.steps)]
    impls = {"nbs": make_nbs(device), "xautodl": make_xautodl(device)}
    if args.amp:
        impls["nbs-bf16"] = make_nbs(device, amp=True)
    for fn in impls.values():  # warm-up (allocator, cuDNN autotune, oneDNN primitives)
        fn(*batches[0])
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(args.repeats):
        for name, fn in impls.items():
            times[name].append(timed(fn, batches, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch} "
          f"C=16 N=5 steps={args.steps} repeats={args.repeats}")
    for name, t in med.items():
        print(f"{name:>9}: {t:.4f} s/step   (repeats: {', '.join(f'{x:.4f}' for x in times[name])})")
    print(f"speed-up nbs vs xautodl: {med['xautodl'] / med['nbs']:.2f}x")
    if "nbs-bf16" in med:
        print(f"speed-up nbs-bf16 vs xautodl: {med['xautodl'] / med['nbs-bf16']:.2f}x")


if __name__ == "__main__":
    main()
