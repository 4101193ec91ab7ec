"""Fixed (non-searchable) parts of the NB201 network: stem, residual reduction block, head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU → Conv → BN, NB201's ``nor_conv`` op (no conv bias: the BN that follows removes it)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block with stride 2 between stages (xautodl ``ResNetBasicblock``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Stem(nn.Sequential):
    def __init__(self, c_out: int) -> None:
        super().__init__(nn.Conv2d(3, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


class Head(nn.Module):
    """BN + ReLU, global average pool, linear classifier."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(x))
        return self.classifier(x.mean(dim=(2, 3)))
