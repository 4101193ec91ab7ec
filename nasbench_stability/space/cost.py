"""Parameters and FLOPs of the discrete NB201 network of one cell (C=16, N=5 as in the benchmark)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .genotype import Genotype
from .reference_cell import DiscreteCell
from .supernet import NetworkShape, Supernet


@dataclass(frozen=True)
class NetworkCost:
    params_m: float   # millions of parameters (all of the network, classifier included)
    flops_m: float    # millions of multiply-accumulates of one 32×32 image (NB201 counts MACs as FLOPs)


def discrete_network(genotype: Genotype, shape: NetworkShape = NetworkShape()) -> Supernet:
    return Supernet(shape, lambda c: DiscreteCell(c, genotype.ops))


def count_cost(genotype: Genotype, shape: NetworkShape = NetworkShape(), image_size: int = 32) -> NetworkCost:
    """Counts conv and linear multiply-accumulates with forward hooks (BN/ReLU/pool are not counted)."""
    net = discrete_network(genotype, shape).eval()
    macs = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += out.numel() * k

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        net(torch.zeros(1, 3, image_size, image_size), None)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in net.parameters())
    return NetworkCost(params / 1e6, macs / 1e6)
