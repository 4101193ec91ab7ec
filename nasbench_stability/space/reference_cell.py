"""A literal, unfused NB201 mixed cell (one module per edge and op, as in xautodl).

It exists to check :class:`MixedCell` against the obvious implementation, and to build discrete
networks (one op per edge) for parameter and FLOP counting.
"""

from __future__ import annotations

import torch
from torch import nn

from .ops import EDGES, NUM_NODES, OPS
from .pooling import avg_pool_3x3


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool_3x3(x)


def make_op(name: str, channels: int, affine: bool = False, track_running_stats: bool = False) -> nn.Module:
    from .blocks import ReLUConvBN

    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return AvgPool()
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[name]
    return ReLUConvBN(channels, channels, kernel, 1, affine=affine, track_running_stats=track_running_stats)


class ReferenceCell(nn.Module):
    """Every edge holds ``ops`` (all five by default); forward computes Σ_o w[e,o]·o(x) literally."""

    def __init__(self, channels: int, ops: tuple[str, ...] = OPS, affine: bool = False,
                 track_running_stats: bool = False) -> None:
        super().__init__()
        self.ops = ops
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(o, channels, affine, track_running_stats) for o in ops) for _ in EDGES
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        nodes = [x]
        for target in range(1, NUM_NODES):
            total = 0
            for e, (s, t) in enumerate(EDGES):
                if t == target:
                    total = total + sum(w * op(nodes[s]) for op, w in zip(self.edges[e], weights[e]))
            nodes.append(total)
        return nodes[-1]


class DiscreteCell(nn.Module):
    """One op per edge (a derived NB201 cell); used for parameter / FLOP counting."""

    def __init__(self, channels: int, genotype_ops: tuple[str, ...]) -> None:
        super().__init__()
        self.ops_names = genotype_ops
        self.edges = nn.ModuleList(make_op(o, channels, affine=True, track_running_stats=True) for o in genotype_ops)

    def forward(self, x: torch.Tensor, weights=None, active=None) -> torch.Tensor:
        nodes = [x]
        for target in range(1, NUM_NODES):
            total = 0
            for e, (s, t) in enumerate(EDGES):
                if t == target and self.ops_names[e] != "none":
                    total = total + self.edges[e](nodes[s])
            nodes.append(total if isinstance(total, torch.Tensor) else torch.zeros_like(x))
        return nodes[-1]
