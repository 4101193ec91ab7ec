"""The exact spectrum of ∇²_α L_valid (Zela et al., "Understanding and Robustifying DARTS").

Their collapse indicator is the *largest algebraic* eigenvalue of the Hessian of the valid loss
w.r.t. α. An architecture has few parameters (30 for DARTS, 174 for DNAS), so the Hessian is built
exactly, one Hessian-vector product per entry, and the whole spectrum is kept: no power iteration,
whose answer is the eigenvalue of largest *magnitude* (the wrong one when a negative one dominates).

The engine measures on the same fixed valid batches every time, so the curve over epochs follows
the landscape, not batch noise; measuring leaves the method exactly as it found it.

Cost: one Hessian-vector product per α entry per batch, each a double backward, is the floor for a
general α. Three things take it below half of PyTorch's defaults (benchmarks/epoch_breakdown.py): only α
asks for a gradient while measuring (a supernet weight that says it needs one makes PyTorch's convolution
double backward compute a term nobody reads); convolutions and batch-statistics BatchNorms take the lean
double backwards of :mod:`.double_backward`; and where α reaches the loss through a softmax per edge, the
directions that shift a whole edge are known null directions, so only the others are multiplied
(:func:`hessian_of`). The matrix is the same to rounding (tests/test_engine_double_backward.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from contextlib import nullcontext
from typing import Iterable, Sequence

import numpy as np
import torch

from ..methods.base import SearchMethod
from .double_backward import LeanDoubleBackward

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True, eq=False)
class HessianSpectrum:
    """Eigenvalues of a symmetric Hessian, ascending (float64, read-only)."""

    eigenvalues: np.ndarray

    def __post_init__(self) -> None:
        values = np.array(self.eigenvalues, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError("a Hessian spectrum needs at least one eigenvalue")
        values.setflags(write=False)
        object.__setattr__(self, "eigenvalues", values)

    @property
    def largest(self) -> float:
        """The algebraic maximum (the R-DARTS indicator), not the largest magnitude."""
        return float(self.eigenvalues[-1])

    @property
    def smallest(self) -> float:
        """The algebraic minimum (negative where the valid loss curves down along some direction)."""
        return float(self.eigenvalues[0])


def spectrum_of(matrix: torch.Tensor | np.ndarray) -> HessianSpectrum:
    """Eigenvalues of (H + Hᵀ)/2 in float64: autograd's rows are symmetric only up to rounding, and
    ``eigvalsh`` reads one triangle, so symmetrising keeps both halves' information."""
    h = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1]:
        raise ValueError(f"a Hessian must be square, got shape {tuple(h.shape)}")
    return HessianSpectrum(torch.linalg.eigvalsh((h + h.T) / 2).numpy())


def hessian_of(losses: Iterable[torch.Tensor], params: Sequence[torch.Tensor],
               flat_groups: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """Σ of the Hessians of ``losses`` w.r.t. ``params`` (flattened and concatenated in order), as an
    n × n float64 CPU tensor, row i being the Hessian-vector product with the i-th unit vector.

    ``losses`` is consumed one at a time (pass a generator to keep one batch's graph alive at once).
    Each loss is differentiated once with ``create_graph`` and all n rows come from that one graph:
    one forward per loss instead of n, and a forward that draws noise (RReLU slopes) still gives
    the Hessian of one function rather than rows of different ones.

    ``flat_groups``: disjoint index groups along whose common shift every loss is constant (α behind a
    softmax per edge). Then H·1_g = 0 for each group, so with Q an orthonormal basis of the complement
    of those k directions, H = (HQ)Qᵀ exactly: n − k products instead of n (24 instead of 30 for DARTS).
    """
    n = sum(p.numel() for p in params)
    basis = _complement_basis(n, flat_groups) if flat_groups else None
    total = torch.zeros(n, n, dtype=torch.float64)
    for loss in losses:
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        flat = flat_gradient(grads, params)
        if not flat.requires_grad:       # gradient constant in the parameters: no curvature
            continue
        if basis is None:
            rows = [flat_gradient(torch.autograd.grad(flat[i], params, retain_graph=True, allow_unused=True), params)
                    for i in range(n)]
            total += torch.stack(rows).detach().to("cpu", torch.float64)
        else:
            directions = basis.to(flat.device, flat.dtype)
            rows = [flat_gradient(torch.autograd.grad(flat, params, grad_outputs=q, retain_graph=True,
                                                      allow_unused=True), params) for q in directions.T]
            total += basis @ torch.stack(rows).detach().to("cpu", torch.float64)   # Q (Qᵀ H) = H
        del grads, flat, rows            # free this loss's graph before the next forward
    return total


def _complement_basis(n: int, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """n × (n − k) orthonormal columns spanning the complement of the k group indicators (float64)."""
    ones = torch.zeros(n, len(groups), dtype=torch.float64)
    for j, group in enumerate(groups):
        ones[list(group), j] = 1.0 / len(group) ** 0.5
    if not torch.allclose(ones.T @ ones, torch.eye(len(groups), dtype=torch.float64)):
        raise ValueError("flat_groups must be disjoint and non-empty")
    values, vectors = torch.linalg.eigh(torch.eye(n, dtype=torch.float64) - ones @ ones.T)
    return vectors[:, values > 0.5]


def flat_gradient(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """One vector of ``grads``, zeros where a parameter does not reach the output."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def arch_parameter_count(method: SearchMethod) -> int:
    """Entries of the flattened architecture parameters: the Hessian's side and the spectrum's length."""
    return sum(p.numel() for p in method.arch_parameters())


def arch_hessian(method: SearchMethod, batches: Sequence[Batch], *, lean: bool = True) -> torch.Tensor:
    """∇²_α of the mean of ``method.arch_loss`` over ``batches`` (α = ``method.arch_parameters()``,
    flattened), float64, not yet symmetrised.

    Runs in whatever train/eval mode the method is in. The extra forward passes move BN running
    statistics; every buffer, every module's mode and every weight's ``requires_grad`` is put back
    afterwards, so measuring does not change the search. ``torch.autograd.grad`` writes no ``.grad``,
    so none is left on α or w. ``lean=False`` uses PyTorch's own double backwards with every weight
    asking for a gradient (the reference the tests and benchmarks/hessian_cost.py compare with).
    """
    if not batches:
        raise ValueError("the Hessian needs at least one valid batch")
    params = list(method.arch_parameters())
    arch = {id(p) for p in params}
    weights = [p for p in method.parameters() if p.requires_grad and id(p) not in arch] if lean else []
    buffers = [(b, b.detach().clone()) for b in method.buffers()]
    modes = [(m, m.training) for m in method.modules()]
    try:
        for w in weights:
            w.requires_grad_(False)
        with torch.enable_grad(), (LeanDoubleBackward() if lean else nullcontext()):
            promise = getattr(method, "shift_invariant_groups", None)   # a SearchMethod's; duck-typed models: none
            groups = promise() if lean and promise is not None else None
            return hessian_of((method.arch_loss(x, y) / len(batches) for x, y in batches), params, groups)
    finally:
        for w in weights:
            w.requires_grad_(True)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training


def arch_hessian_spectrum(method: SearchMethod, batches: Sequence[Batch], *, lean: bool = True) -> HessianSpectrum:
    """The ascending eigenvalues of the method's α-Hessian on ``batches`` (see :func:`arch_hessian`)."""
    return spectrum_of(arch_hessian(method, batches, lean=lean))

