"""PC-DARTS partial channels on the NB201 cell (Xu et al., ICLR 2020), for DNAS's option.

Each edge sends only the first C/K channels of its input through the mixed op; the other channels
bypass it, the two parts are concatenated and channel-shuffled (groups = K), so that the next cell
sees a different channel fraction through the ops. Convolutions therefore have C/K channels.

PC-DARTS weights every edge output by its edge-normalization weight. DNAS's ψ already holds that
(softmax over the edges of a layer, inside ψ), but only on the op outputs; so that the bypassed
channels of the edges entering a node do not simply pile up, they are weighted by the edge's total
op weight Σ_o ψ[e, o] (our choice; it is the edge normalization when the ops' gates sum to one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mixed_cell import OUT_EDGES, MixedCell, sum_over_sources
from .ops import OP_INDEX
from .pooling import avg_pool_3x3

_SKIP, _C1, _C3, _POOL = (OP_INDEX[n] for n in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class PartialChannelCell(nn.Module):
    """``forward(x, weights[E, O], active=None)`` like :class:`MixedCell`, ops on C/K channels."""

    def __init__(self, channels: int, k: int, track_running_stats: bool = False) -> None:
        super().__init__()
        if k < 1 or channels % k:
            raise ValueError(f"partial channels: {channels} channels are not divisible by K={k}")
        self.k, self.part = k, channels // k
        # the fused per-source convolutions of MixedCell, on the C/K channels that go through the ops
        self.ops = MixedCell(self.part, track_running_stats=track_running_stats)

    def conv_weights(self, edge: int, op: int) -> list[nn.Parameter]:
        return self.ops.conv_weights(edge, op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        def edge_terms(src: int, xi: torch.Tensor):
            outs = OUT_EDGES[src]
            part, rest = xi[:, :self.part], xi[:, self.part:]
            wants = (lambda op: any(active is None or active[e][op] for e, _ in outs))
            convs = self.ops._convs_of(part, F.relu(part), weights, src, outs, active) if wants(_C1) or wants(_C3) else {}
            pooled = avg_pool_3x3(part) if wants(_POOL) else None
            terms = {}
            for e, _ in outs:
                y = sum(convs.get(e, []), torch.zeros_like(part))
                for op, value in ((_SKIP, part), (_POOL, pooled)):
                    if value is not None and (active is None or active[e][op]):
                        y = torch.addcmul(y, value, weights[e, op])
                bypass = rest * weights[e].sum()
                terms[e] = [channel_shuffle(torch.cat([y, bypass], dim=1), self.k)]
            return terms, []

        return sum_over_sources(x, weights, active, edge_terms)
