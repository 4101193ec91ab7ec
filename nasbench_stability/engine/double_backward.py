"""Convolution and batch normalization whose *double* backward does only the work a Hessian needs.

The exact α-Hessian (:mod:`.hessian`) differentiates the gradient once more, once per α entry. In an
NB201 supernet at the `cpu` preset, two of PyTorch's generic double backwards took most of that time
(benchmarks/hessian_cost.py has the breakdown):

* **BatchNorm with batch statistics.** ``batchnorm_double_backward`` handles every case (affine or not,
  running statistics, training or not) with some thirty full-size products per call. Here it is written
  out for the one case the Hessian meets. Per channel, with means over batch × height × width,
  x̂ = (x − μ)·s, s = 1/√(var + ε), P(v) = v − mean(v) − x̂·mean(v·x̂), and g the gradient arriving at y:

      forward   y  = γ x̂ + β
      backward  dx = γ s · P(g),   dγ = Σ g x̂
      double    ∂⟨u, dx⟩/∂g = γ s · P(u)
                ∂⟨u, dx⟩/∂x = −γ s² · [ c x̂ + mean(g x̂) P(u) + mean(u x̂) P(g) ],
                              c = mean(u g) − ū ḡ − mean(u x̂) mean(g x̂)
                ∂⟨u, dx⟩/∂γ = s · n · c                  (n = batch × height × width)
                ∂⟨w, dγ⟩/∂g = w x̂,   ∂⟨w, dγ⟩/∂x = w s · P(g)

  (P is symmetric, which gives the first line; the rest follow from ∂s/∂x = −s² x̂/n and ∂x̂/∂x = s·P.)
  Collected per channel, each double backward is about eight passes over the tensor.
* **Convolution.** ``_convolution_double_backward`` computes the weight's term even when the weight
  needs no gradient (a constant pooling kernel; a supernet weight while only α is differentiated), and
  for a grouped convolution it does so one group at a time: the depthwise 3×3 pool became 8–32 small
  convolutions per call. Here each term is computed only when its input needs it.

The forward passes are PyTorch's own kernels, so a measurement's loss is bit-for-bit that of the model;
the Hessian rows agree with PyTorch's double backward to rounding (tests/test_engine_hessian.py, float64).

:class:`LeanDoubleBackward` routes ``F.conv2d`` and ``F.batch_norm`` through these while it is active and
autograd is recording; anything else (BN with running statistics, which is affine in its input; string
padding) goes to PyTorch unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

_convolution_backward = torch.ops.aten.convolution_backward.default


# ---------------------------------------------------------------------------------------------------
# batch normalization with batch statistics
# ---------------------------------------------------------------------------------------------------
def _channels(x: torch.Tensor) -> list[int]:
    return [1, -1] + [1] * (x.dim() - 2)


def _reduced(x: torch.Tensor) -> list[int]:
    return [0] + list(range(2, x.dim()))


class _BatchNormTrain(torch.autograd.Function):
    """y = BN(x) with batch statistics; running statistics (if given) updated as PyTorch does."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        y, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        dbias = g.sum(_reduced(x)) if needs_b else None
        if torch.is_grad_enabled():          # create_graph: the Hessian's first backward
            dx, dweight = _BatchNormTrainBackward.apply(g, x, weight, mean, invstd)
            return dx, dweight if needs_w else None, dbias, None, None, None, None
        dx, dweight, _ = torch.ops.aten.native_batch_norm_backward(
            g, x, weight, None, None, mean, invstd, True, ctx.eps, [needs_x, needs_w and weight is not None, False])
        return dx, dweight, dbias, None, None, None, None


class _BatchNormTrainBackward(torch.autograd.Function):
    """(g, x, γ) ↦ (dx, dγ) of batch-statistics BN, differentiable once more by the closed forms above."""

    @staticmethod
    def forward(ctx, g, x, weight, mean, invstd):
        dims, shape = _reduced(x), _channels(x)
        s = invstd.reshape(shape)
        xhat = (x - mean.reshape(shape)) * s
        g_mean, g_xhat = g.mean(dims, keepdim=True), (g * xhat).mean(dims, keepdim=True)
        pg = g - g_mean - xhat * g_xhat
        gamma_s = s if weight is None else weight.reshape(shape) * s
        ctx.save_for_backward(g, xhat, s, gamma_s, g_mean, g_xhat)
        ctx.count = x.numel() // x.shape[1]
        return gamma_s * pg, (None if weight is None else g_xhat.reshape(-1) * ctx.count)

    @staticmethod
    @once_differentiable
    def backward(ctx, u, u_weight):
        g, xhat, s, gamma_s, g_mean, g_xhat = ctx.saved_tensors
        dims = _reduced(xhat)
        grad_g = grad_x = grad_weight = None
        # grad_g = kg_u·u + kg_x·x̂ + kg_0 and grad_x = kx_u·u + kx_g·g + kx_x·x̂ + kx_0, per channel
        kg_u = kg_x = kg_0 = kx_u = kx_g = kx_x = kx_0 = 0.0
        if u is not None:
            u_mean, u_xhat = u.mean(dims, keepdim=True), (u * xhat).mean(dims, keepdim=True)
            c = (u * g).mean(dims, keepdim=True) - u_mean * g_mean - u_xhat * g_xhat
            kg_u, kg_x, kg_0 = gamma_s, -gamma_s * u_xhat, -gamma_s * u_mean
            k = -gamma_s * s
            kx_u, kx_g = k * g_xhat, k * u_xhat
            kx_x, kx_0 = k * (c - 2 * u_xhat * g_xhat), -k * (g_xhat * u_mean + u_xhat * g_mean)
            if ctx.needs_input_grad[2]:
                grad_weight = (s * c).reshape(-1) * ctx.count
        if u_weight is not None:
            w = u_weight.reshape(s.shape)
            kg_x = kg_x + w
            kx_g, kx_x, kx_0 = kx_g + w * s, kx_x - w * s * g_xhat, kx_0 - w * s * g_mean
        if ctx.needs_input_grad[0]:
            grad_g = _combine(kg_0, (kg_u, u), (kg_x, xhat))
        if ctx.needs_input_grad[1]:
            grad_x = _combine(kx_0, (kx_u, u), (kx_g, g), (kx_x, xhat))
        return grad_g, grad_x, grad_weight, None, None


def _combine(constant, *terms) -> torch.Tensor:
    """constant + Σ k·t over the terms whose coefficient is not the literal 0 (k and the constant per
    channel, t full size): one addcmul, one pass over the tensor, per term."""
    out = constant
    for k, t in terms:
        if isinstance(k, float):
            continue
        out = torch.addcmul(out, k, t) if not isinstance(out, float) else k * t + out
    return out


# ---------------------------------------------------------------------------------------------------
# 2-d convolution
# ---------------------------------------------------------------------------------------------------
class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return torch.ops.aten.convolution.default(x, weight, bias, stride, padding, dilation, False, [0, 0], groups)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        dbias = g.sum((0, 2, 3)) if needs_b and ctx.has_bias else None
        if torch.is_grad_enabled():
            dx, dweight = _Conv2dBackward.apply(g, x, weight, ctx.geometry, (needs_x, needs_w))
            return dx, dweight, dbias, None, None, None, None
        dx, dweight, _ = _convolution_backward(g, x, weight, None, *ctx.geometry[:3], False, [0, 0],
                                               ctx.geometry[3], [needs_x, needs_w, False])
        return dx, dweight, dbias, None, None, None, None


class _Conv2dBackward(torch.autograd.Function):
    """(g, x, W) ↦ (dx, dW); each term of its own backward only where its input needs it."""

    @staticmethod
    def forward(ctx, g, x, weight, geometry, mask):
        ctx.save_for_backward(g, x, weight)
        ctx.geometry = geometry
        dx, dweight, _ = _convolution_backward(g, x, weight, None, *geometry[:3], False, [0, 0], geometry[3],
                                               [mask[0], mask[1], False])
        return dx, dweight

    @staticmethod
    @once_differentiable
    def backward(ctx, u_x, u_w):
        g, x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        needs_g, needs_x, needs_w = ctx.needs_input_grad[:3]
        grad_g = grad_x = grad_weight = None
        if needs_g:   # ⟨u_x, dx⟩ + ⟨u_w, dW⟩ is conv(u_x, W) + conv(x, u_w) against g
            parts = [torch.ops.aten.convolution.default(a, b, None, stride, padding, dilation, False, [0, 0], groups)
                     for a, b in ((u_x, weight), (x, u_w)) if a is not None and b is not None]
            grad_g = sum(parts[1:], parts[0]) if parts else None
        if needs_x and u_w is not None:   # dW is bilinear in (x, g): its x-derivative is dx with u_w as kernel
            grad_x = _convolution_backward(g, x, u_w, None, stride, padding, dilation, False, [0, 0], groups,
                                           [True, False, False])[0]
        if needs_w and u_x is not None:   # dx is bilinear in (g, W): its W-derivative is dW with u_x as input
            grad_weight = _convolution_backward(g, u_x, weight, None, stride, padding, dilation, False, [0, 0],
                                                groups, [False, True, False])[1]
        return grad_g, grad_x, grad_weight, None, None


# ---------------------------------------------------------------------------------------------------
# the switch
# ---------------------------------------------------------------------------------------------------
class LeanDoubleBackward(TorchFunctionMode):
    """While active (and autograd recording), ``F.conv2d`` and batch-statistics ``F.batch_norm`` go
    through the functions above; everything else is untouched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if torch.is_grad_enabled():
            if func is F.batch_norm:
                lean = _lean_batch_norm(*args, **kwargs)
                if lean is not None:
                    return lean
            elif func is F.conv2d:
                lean = _lean_conv2d(*args, **kwargs)
                if lean is not None:
                    return lean
        return func(*args, **kwargs)


def _lean_batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                     eps=1e-5):
    if not (training or running_mean is None or running_var is None) or input.dim() < 2:
        return None        # running statistics: BN is affine in its input, PyTorch's double backward is cheap
    keep = training and running_mean is not None and running_var is not None
    return _BatchNormTrain.apply(input, weight, bias, running_mean if keep else None,
                                 running_var if keep else None, 0.0 if momentum is None else momentum, eps)


def _lean_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str) or input.dim() != 4:
        return None
    return _Conv2d.apply(input, weight, bias, list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)),
                         groups)
