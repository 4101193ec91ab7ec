"""K seeds of one method as one model: every parameter, buffer and optimizer state stacked along a
new leading seed axis, the network run once for all seeds with ``torch.func.vmap`` over
``functional_call`` (convolutions become grouped convolutions with the seed as the group, BatchNorm
normalises each seed's channels over its own batch).

Nothing crosses seeds: the packed loss is the sum of the seeds' mean losses, so the gradient in seed
k's parameters is seed k's solo gradient; SGD and Adam are elementwise; the clip norm, DARTS-V2's
finite-difference ε and gradient correlation are computed per seed. What differs from K solo runs
is the fp32 summation order inside the grouped kernels (results agree to rounding, not bitwise).

The engine keeps one solo method object per seed for everything outside the step (records,
checkpoints in the solo format, the Hessian, derivation): :func:`pack` builds the packed object from
solo ones, :func:`unpack` writes its state back into them. Used by :mod:`engine.packed_run`.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap


def capturable_adam(params, device: torch.device, **kwargs) -> torch.optim.Adam:
    """Adam whose step counter lives on the device on CUDA (``capturable``), so that a CUDA graph can
    capture its step; elsewhere the default. The update is the same either way."""
    return torch.optim.Adam(params, capturable=device.type == "cuda", **kwargs)


def set_capturable(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """After ``load_state_dict`` (which restores the saved flag): capturable exactly on CUDA, with the
    step counters where that mode needs them."""
    if "capturable" not in opt.defaults:
        return
    flag = device.type == "cuda"
    for group in opt.param_groups:
        group["capturable"] = flag
    for state in opt.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].to(device if flag else "cpu", torch.float32)


def clip_per_seed(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` applied to each seed's slice of stacked gradients: seed k's total norm is
    over its own slices only, and only its gradients are scaled (coefficient max_norm/(norm+1e-6), at
    most 1, as torch's). Returns the (K,) norms."""
    grads = [p.grad for p in params if p.grad is not None]
    # in at least float32 (bf16 gradients), in float64 where the gradients are
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1).to(torch.promote_types(g.dtype, torch.float32)), dim=1)
                         for g in grads])
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
    return total


def _stacked_buffer_names(module: nn.Module) -> list[str]:
    """Buffers that are per-seed state (the persistent ones: BN running statistics, α's leftover
    gradient); index buffers built from the structure are shared and stay unstacked."""
    persistent = set(module.state_dict().keys())
    return [n for n, _ in module.named_buffers() if n in persistent]


def _set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    (module.get_submodule(owner) if owner else module)._buffers[leaf] = value


def pack(methods: Sequence[Any]) -> Any:
    """One packed object for ``methods`` (K ≥ 1 solo objects of one class with equal options)."""
    first = methods[0]
    if not first.packable:
        raise ValueError(f"{type(first).__name__} does not pack: {first.solo_reason}")
    if any(m.options != first.options or type(m) is not type(first) for m in methods):
        raise ValueError("only seeds of one method with the same options can be packed")
    packed = copy.deepcopy(first)   # optimizers and parameter lists follow the copied parameters
    packed.pack_size = len(methods)
    for stale in ("_graph_warmup_done", "_graph_failed"):   # a solo object's CUDA-graph history is not the pack's
        packed.__dict__.pop(stale, None)
    packed._stacked_buffers = _stacked_buffer_names(packed)
    with torch.no_grad():
        for name, p in packed.named_parameters():
            p.data = torch.stack([m.get_parameter(name).detach() for m in methods])
            p.grad = None
        for name in packed._stacked_buffers:
            _set_buffer(packed, name, torch.stack([m.get_buffer(name) for m in methods]))
    for key, opt in packed.optimizers().items():
        opt.load_state_dict(_stacked_optimizer_state([m.optimizers()[key].state_dict() for m in methods]))
        set_capturable(opt, first.ctx.device)
    return packed


def unpack(packed: Any, methods: Sequence[Any]) -> None:
    """Copy seed k's slice of every stacked tensor and optimizer state into ``methods[k]``."""
    with torch.no_grad():
        params, buffers = dict(packed.named_parameters()), dict(packed.named_buffers())
        for k, m in enumerate(methods):
            for name, p in m.named_parameters():
                p.copy_(params[name][k])
            for name in packed._stacked_buffers:
                m.get_buffer(name).copy_(buffers[name][k])
    for key, opt in packed.optimizers().items():
        state = opt.state_dict()
        for k, m in enumerate(methods):
            m.optimizers()[key].load_state_dict(_seed_optimizer_state(state, k))
            set_capturable(m.optimizers()[key], m.ctx.device)


def _stacked_optimizer_state(states: list[dict]) -> dict:
    """The optimizer state dicts of K seeds as one: per-parameter tensors stacked; counters (equal
    across seeds, which take their steps together) taken from the first."""
    merged = copy.deepcopy(states[0])
    for pid, entry in merged["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                entry[key] = torch.stack([s["state"][pid][key] for s in states])
    return merged


def _seed_optimizer_state(state: dict, k: int) -> dict:
    out = {"param_groups": copy.deepcopy(state["param_groups"]), "state": {}}
    for pid, entry in state["state"].items():
        out["state"][pid] = {key: (v[k].clone() if isinstance(v, torch.Tensor) and v.dim() > 0 else
                                   (v.clone() if isinstance(v, torch.Tensor) else v)) for key, v in entry.items()}
    return out


def packed_forward(method: Any, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
    """``method.supernet`` on (K, B, ...) inputs with (K, ...) op weights → (K, B, classes): each seed's
    slice through its own parameters and BN statistics. ``active`` (host-side) is shared by all seeds."""
    net = method.supernet
    params = dict(net.named_parameters())
    prefix = "supernet."
    buffers = {n[len(prefix):]: method.get_buffer(n) for n in method._stacked_buffers if n.startswith(prefix)}

    def one_seed(p, b, xk, wk):
        return functional_call(net, (p, b), (xk, wk, active))

    run = vmap(one_seed)
    if method.ctx.amp_dtype is not None:
        with torch.autocast(method.ctx.device.type, dtype=method.ctx.amp_dtype):
            return run(params, buffers, x, weights).float()
    return run(params, buffers, x, weights)
