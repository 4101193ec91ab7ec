"""Dominant eigenvalue of ∇²_α L_valid (Zela et al., "Understanding and Robustifying DARTS").

Power iteration with exact Hessian-vector products (double backward) on a fixed set of valid
batches, so that the curve over epochs measures the landscape, not batch noise.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch


def hessian_vector_product(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                           vec: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vec))
    return [h.detach() for h in torch.autograd.grad(dot, params)]


def power_iteration(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], *, iters: int = 20,
                    tol: float = 1e-4, seed: int = 0) -> float:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_fn`` w.r.t. ``params``."""
    g = torch.Generator().manual_seed(seed)
    vec = [torch.randn(p.shape, generator=g).to(p.device, p.dtype) for p in params]
    norm = torch.sqrt(sum((v * v).sum() for v in vec))
    vec = [v / norm for v in vec]
    eig = 0.0
    for _ in range(iters):
        hv = hessian_vector_product(loss_fn, params, vec)
        new_eig = float(sum((h * v).sum() for h, v in zip(hv, vec)))
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if float(norm) == 0.0:
            return 0.0
        vec = [h / norm for h in hv]
        if abs(new_eig - eig) <= tol * max(abs(new_eig), 1e-12):
            return new_eig
        eig = new_eig
    return eig


def dominant_arch_eigenvalue(method, batches: list, iters: int = 20) -> float:
    """Dominant eigenvalue of the valid loss Hessian w.r.t. the method's architecture parameters.

    BN running statistics touched by the extra forward passes are restored afterwards, so
    measuring does not change the search.
    """
    buffers = {k: v.clone() for k, v in method.state_dict().items() if "running" in k or "num_batches" in k}
    params = [p for p in method.arch_parameters() if p.requires_grad]

    def loss_fn() -> torch.Tensor:
        return sum(method.arch_loss(x, y) for x, y in batches) / len(batches)

    try:
        return power_iteration(loss_fn, params, iters=iters)
    finally:
        method.load_state_dict(buffers, strict=False)
