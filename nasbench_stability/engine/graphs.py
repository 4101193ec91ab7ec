"""CUDA graphs for the whole search step (forward, backward, clip and optimizer steps).

At NB201's size (16–64 channels, batch 64) a step is hundreds of tiny kernels and the GPU waits on
Python launching them; a captured graph replays them in one launch. A graph replays exactly the
kernels, tensors and host-side constants of its capture, so it is used only where the method says its
step is static (:meth:`SearchMethod.graph_static`): batches of fixed shape are copied into the
graph's input tensors, and the learning rate must not change within the epoch. Graphs are captured
once per epoch (the cosine schedule moves the learning rate between epochs) and per kind of step
(with or without the gradient-correlation measurement).

Methods that fall back to eager steps: edas, edas-inv, alpha-max (an edge drawn on the host every
step), the factorized family (its noise generator is reseeded on the host every step), and any
method with ``lr_schedule=per-step``. On CPU there is nothing to capture.

A capture that fails raises :class:`GraphCaptureError`; the engine then restarts the epoch with eager
steps (engine/fallback.py), so that a record says which path ran.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..methods.base import SearchMethod, StepStats

#: eager steps of each kind before the first capture: optimizer states and cuDNN's algorithm choice are
#: created lazily by a first step, and a capture must not be the first to touch them
WARMUP_STEPS = 2


class GraphCaptureError(RuntimeError):
    """A step that ran eagerly could not be captured as a CUDA graph (the capture's error is the cause)."""


def graphed_step(method: SearchMethod, enabled: bool = True) -> Callable[..., StepStats]:
    """``method.step`` or, on CUDA for a static step, a :class:`GraphedStep` of it (new each epoch)."""
    if enabled and method.ctx.device.type == "cuda" and method.graph_static():
        return GraphedStep(method)
    return method.step


def step_path(step_fn: Callable[..., StepStats], method: SearchMethod) -> str:
    """What a record says ran the epoch's steps: "eager" (``method.step`` itself) or "graph" (replayed
    CUDA graphs, after eager warm-up steps)."""
    return "eager" if step_fn == method.step else "graph"


class GraphedStep:
    """Call like ``method.step``. Each kind of step runs eagerly (for real) ``warmup`` times the
    first time it is seen in a process, then is captured and replayed; the StepStats it returns
    are the graph's output tensors, overwritten by the next replay (the engine adds them up at once)."""

    def __init__(self, method: SearchMethod, warmup: int = WARMUP_STEPS) -> None:
        self.method, self.warmup = method, warmup
        self.graphs: dict[bool, tuple[torch.cuda.CUDAGraph, dict, StepStats]] = {}
        self.pool = torch.cuda.graph_pool_handle()   # the kinds share one memory pool

    def __call__(self, batches: dict[str, Any], epoch: int, step: int, measure_gc: bool) -> StepStats:
        entry = self.graphs.get(measure_gc)
        if entry is None:
            warm = self.method.__dict__.setdefault("_graph_warmup_done", {})   # outlives this epoch's graphs
            if warm.get(measure_gc, 0) < self.warmup:
                warm[measure_gc] = warm.get(measure_gc, 0) + 1
                return self._eager(batches, epoch, step, measure_gc)
            try:
                entry = self.graphs[measure_gc] = self._capture(batches, epoch, step, measure_gc)
            except RuntimeError as err:
                # not taken here as an eager step: the epoch's earlier steps went through graphs, and a
                # record must say one path; the engine restarts the epoch eagerly (engine/fallback.py)
                torch.cuda.synchronize()
                first = str(err).strip().splitlines()
                raise GraphCaptureError(f"CUDA graph capture of the {type(self.method).__name__} step failed "
                                        f"({first[0] if first else type(err).__name__})") from err
        graph, static, stats = entry
        for name, (x, y) in batches.items():
            static[name][0].copy_(x, non_blocking=True)
            static[name][1].copy_(y, non_blocking=True)
        graph.replay()
        return stats

    def _eager(self, batches, epoch, step, measure_gc) -> StepStats:
        # warm-up on a side stream, as torch.cuda.graphs asks, so that its allocations are not the capture's
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            stats = self.method.step(batches, epoch, step, measure_gc)
        torch.cuda.current_stream().wait_stream(side)
        return stats

    def _capture(self, batches, epoch, step, measure_gc):
        static = {name: (x.clone(), y.clone()) for name, (x, y) in batches.items()}
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph, pool=self.pool):
            stats = self.method.step(static, epoch, step, measure_gc)
        return graph, static, stats


class BatchScorer:
    """Summed cross-entropy and correct count of ``method.logits`` on a batch (per seed when packed),
    through one CUDA graph per input shape where the method's step is static, else eagerly."""

    def __init__(self, method: SearchMethod, enabled: bool = True) -> None:
        self.method = method
        self.use_graphs = enabled and method.ctx.device.type == "cuda" and method.graph_static()
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, tuple]] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None

    @torch.no_grad()   # a graph must not capture autograd's bookkeeping, whoever calls
    def score(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.method.logits(x)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none")
        return loss.view(y.shape).sum(-1), (logits.argmax(-1) == y).sum(-1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.use_graphs:
            return self.score(x, y)
        key = tuple(x.shape)
        if key not in self.graphs:
            self.score(x, y)   # warm-up: cuDNN picks its algorithms outside the capture
            sx, sy = x.clone(), y.clone()
            graph = torch.cuda.CUDAGraph()
            torch.cuda.synchronize()
            try:
                with torch.cuda.graph(graph, pool=self.pool):
                    out = self.score(sx, sy)
            except RuntimeError:
                self.use_graphs = False   # evaluation changes nothing: score this batch eagerly
                torch.cuda.synchronize()
                return self.score(x, y)
            self.graphs[key] = (graph, sx, sy, out)
        graph, sx, sy, out = self.graphs[key]
        sx.copy_(x, non_blocking=True)
        sy.copy_(y, non_blocking=True)
        graph.replay()
        return out[0].clone(), out[1].clone()
