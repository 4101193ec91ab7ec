"""The measurement that chose how seeds are packed: one DARTS-V1-order search step of K seeds run as
one vmapped model, eager and captured whole in a CUDA graph, beside nbs's solo eager step.

A prototype of the packed step, not the engine's (that is ``benchmarks/gpu_epoch.py``): the NB201
supernet (C=16, N=5, MixedCell with BN running statistics) of K seeds stacked with
``torch.func.stack_module_state`` and run with ``vmap(functional_call)``; one step = an SGD weight
step (lr 0.025, momentum 0.9, Nesterov, wd 5e-4) with a per-seed gradient-norm clip of 5, then a
first-order Adam α step (capturable, so that a graph can hold it). Batch 64 of random CIFAR-shaped
tensors; 5 warm-up steps, then the mean of 30 timed steps; "graph" replays the same step captured in
one ``torch.cuda.CUDAGraph``. Peak memory is ``max_memory_allocated`` so far (not reset per row).

    python benchmarks/packed_step_probe.py        # CUDA only
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.run import build_method
from nasbench_stability.space.mixed_cell import MixedCell
from nasbench_stability.space.supernet import NetworkShape, Supernet

DEV = torch.device("cuda")
B, C, N = 64, 16, 5


def timeit(fn, n: int = 30, warm: int = 5) -> float:
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def make_pack(k: int):
    nets = [Supernet(NetworkShape(C, N, 10), lambda c: MixedCell(c, track_running_stats=True)).to(DEV)
            for _ in range(k)]
    params, buffers = stack_module_state(nets)
    params = {name: v.detach().clone().requires_grad_(True) for name, v in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")
    alpha = (1e-3 * torch.randn(k, 6, 5, device=DEV)).requires_grad_(True)
    plist = list(params.values())
    w_opt = torch.optim.SGD(plist, lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    a_opt = torch.optim.Adam([alpha], lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3, capturable=True)
    forward = vmap(lambda p, b, x, w: functional_call(base, (p, b), (x, w)))

    def loss_of(x, y, w):
        out = forward(params, buffers, x, w)
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1).sum()

    def step(tx, ty, vx, vy):
        w_opt.zero_grad(set_to_none=False)
        loss_of(tx, ty, torch.softmax(alpha, -1).detach()).backward()
        norms = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in plist]).sum(0).sqrt()
        scale = (5.0 / (norms + 1e-6)).clamp(max=1.0)
        for p in plist:
            p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        w_opt.step()
        a_opt.zero_grad(set_to_none=False)
        loss_of(vx, vy, torch.softmax(alpha, -1)).backward(inputs=[alpha])
        a_opt.step()

    return step


def data(k: int):
    return (torch.randn(k, B, 3, 32, 32, device=DEV), torch.randint(0, 10, (k, B), device=DEV),
            torch.randn(k, B, 3, 32, 32, device=DEV), torch.randint(0, 10, (k, B), device=DEV))


def main() -> None:
    print(torch.__version__, torch.cuda.get_device_name())
    cfg = resolve_config("darts-v1", preset="paper", device="cuda", overrides={"gc_every": "0"})
    solo = build_method(cfg, 10, 390)
    tx, ty, vx, vy = data(1)
    rows = [("solo nbs", 1, timeit(lambda: solo.step({"train": (tx[0], ty[0]), "valid": (vx[0], vy[0])}, 0, 0, False)))]
    for k in (1, 2, 5, 10):
        step, batch = make_pack(k), data(k)
        rows.append(("vmap eager", k, timeit(lambda: step(*batch))))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(*batch)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(*batch)
        rows.append(("vmap graph", k, timeit(graph.replay)))
        print(f"K={k}: peak so far {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    for name, k, t in rows:
        print(f"{name:12s} K={k:2d} {t * 1000:8.1f} ms/step  {t * 1000 / k:8.1f} ms/seed-step")


if __name__ == "__main__":
    main()
