"""The MergeNAS cell (paper 000): one 3×3 kernel per edge, shared by NB201's two convolutions.

Each edge e owns a single kernel W_e (C×C×3×3). nor_conv_1x1 sees it through a mask that keeps
only the centre tap (a 3×3 conv whose only non-zero tap is the centre *is* a 1×1 conv with those
weights, padding 1 vs 0 giving the same output; the paper's Proposition 1), nor_conv_3x3 through a
mask of ones. By linearity of convolution the α-weighted sum of the two convs is one conv with the
merged kernel (paper eq. 7–8)::

    W̃_e = α_1x1·(M_1x1 ⊙ W_e) + α_3x3·(M_3x3 ⊙ W_e) [+ α_pool·P]
    edge_e(x) = α_none·0 + α_skip·x + BN(conv(ReLU(x), W̃_e))        (BN: affine=False)

Average pooling (``pool="merged"``, the paper's NB201 setting, §3.4/§4.2). The paper writes the
3×3 average pool as a separable conv (depthwise 1/9 box, pointwise identity), i.e. the fixed kernel
P = I_C ⊗ (1/9)·1₃ₓ₃, and adds α_pool·P to W̃. What the pool term then computes differs from
NB201's ``avg_pool_3x3`` in three ways, all inherent in merging it into the ReLU-Conv-BN branch:

1. it averages ReLU(x), not x;
2. the conv zero-pads, so border pixels are divided by 9 (count_include_pad=True) where NB201
   divides by the number of in-image taps (6 on edges, 4 in corners);
3. it is normalised by the branch's BN together with the convs.

So the search-time pool is a surrogate; the derived genotype's avg_pool_3x3 is NB201's real pool
(that is what the benchmark scores). ``pool="separate"`` keeps NB201's pool as its own term,
``α_pool·avg_pool_3x3(x)``, outside the merged kernel, for comparison.

BN and the op weights. With BN after the merged conv, BN(conv(ReLU x, c·W̃)) = BN(conv(ReLU x, W̃))
for any c > 0 (up to BN's ε): only the *ratios* of α_1x1, α_3x3 (and α_pool when merged) matter
to the branch, and the branch's total weight s = α_1x1 + α_3x3 [+ α_pool] gets no gradient through
it. This is the formula of docs/methods.md and the paper's Algorithm 1 (the conv output is added
as is). ``branch_scale="alpha-sum"`` multiplies the branch by s (folded into BN's scale, as
MixedCell does), which restores DARTS' α_o·o(x) weighting when one conv op dominates.

Computation: like :class:`~.mixed_cell.MixedCell`, the edges leaving the same node run as one
convolution with their merged kernels stacked along the output channels, then one BN call.
Parameters stay per edge (``kernels[e]``) so that analyses can address an edge's weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mixed_cell import OUT_EDGES, conv_weight_init, sum_over_sources
from .ops import NUM_EDGES, OP_INDEX
from .pooling import avg_pool_3x3

_SKIP, _C1, _C3, _POOL = (OP_INDEX[n] for n in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))
POOL_MODES = ("merged", "separate")
BRANCH_SCALES = ("none", "alpha-sum")


def kernel_masks(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(2, 3, 3): M_1x1 (only the centre tap is 1) and M_3x3 (all ones), the paper's Figure 1."""
    m1 = torch.zeros(3, 3, dtype=dtype)
    m1[1, 1] = 1.0
    return torch.stack([m1, torch.ones(3, 3, dtype=dtype)])


def pool_kernel(channels: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(C, C, 3, 3): I_C ⊗ (1/9)·1₃ₓ₃, the 3×3 average pool as a dense conv kernel (paper §3.4)."""
    eye = torch.eye(channels, dtype=dtype, device=device)
    return eye[:, :, None, None] * torch.full((3, 3), 1.0 / 9.0, dtype=dtype, device=device)


class MergedCell(nn.Module):
    """NB201 cell with MergeNAS edges. ``forward(x, weights[E, O], active=None)`` as MixedCell."""

    def __init__(self, channels: int, pool: str = "merged", branch_scale: str = "none",
                 track_running_stats: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        if pool not in POOL_MODES:
            raise ValueError(f"pool must be one of {POOL_MODES}, got {pool!r}")
        if branch_scale not in BRANCH_SCALES:
            raise ValueError(f"branch_scale must be one of {BRANCH_SCALES}, got {branch_scale!r}")
        self.channels, self.pool, self.branch_scale = channels, pool, branch_scale
        self.track_running_stats, self.eps = track_running_stats, eps
        self.kernels = nn.ParameterList([conv_weight_init(channels, channels, 3) for _ in range(NUM_EDGES)])
        # exact 0/1 masks: a buffer (follows .to()/.double()), not saved. The pool kernel (1/9) is built
        # in the kernels' dtype at each use instead, so that float64 checks are not limited to float32's 1/9.
        self.register_buffer("masks", kernel_masks(), persistent=False)
        # the op columns that live inside the merged conv branch
        self.branch_ops = (_C1, _C3, _POOL) if pool == "merged" else (_C1, _C3)
        if track_running_stats:
            for src, outs in enumerate(OUT_EDGES):
                self.register_buffer(f"running_mean_{src}", torch.zeros(len(outs) * channels))
                self.register_buffer(f"running_var_{src}", torch.ones(len(outs) * channels))

    def conv_weights(self, edge: int, op: int) -> list[nn.Parameter]:
        """The weights of (edge, conv op): the edge's one shared kernel, whichever conv is asked."""
        return [self.kernels[edge]]

    def merged_kernel(self, edges: list[int], weights: torch.Tensor) -> torch.Tensor:
        """W̃ of ``edges`` stacked along the output channels: (len(edges)·C, C, 3, 3)."""
        w = weights[edges]                                              # (k, O)
        mask = w[:, _C1, None, None] * self.masks[0] + w[:, _C3, None, None] * self.masks[1]   # (k, 3, 3)
        stacked = torch.stack([self.kernels[e] for e in edges])        # (k, C, C, 3, 3)
        merged = stacked * mask[:, None, None].to(stacked.dtype)
        if self.pool == "merged":
            box = pool_kernel(self.channels, stacked.dtype, stacked.device)
            merged = merged + w[:, _POOL].view(-1, 1, 1, 1, 1) * box
        return merged.flatten(0, 1)

    def _branch_scale(self, edges: list[int], weights: torch.Tensor) -> torch.Tensor | None:
        if self.branch_scale == "none":
            return None
        return weights[edges][:, list(self.branch_ops)].sum(1).repeat_interleave(self.channels)

    def _bn(self, y: torch.Tensor, src: int, positions: list[int], scale: torch.Tensor | None) -> list[torch.Tensor]:
        """BatchNorm (affine=False, optional per-edge scale) of the stacked edges; one part per edge."""
        c, use_batch_stats = self.channels, self.training or not self.track_running_stats
        if not self.track_running_stats:
            return list(F.batch_norm(y, None, None, scale, None, True, 0.1, self.eps).split(c, dim=1))
        mean, var = getattr(self, f"running_mean_{src}"), getattr(self, f"running_var_{src}")
        if len(positions) * c == mean.numel():
            return list(F.batch_norm(y, mean, var, scale, None, use_batch_stats, 0.1, self.eps).split(c, dim=1))
        parts = []  # a subset of the edges: per edge, on views, so the stats of just these edges update
        for i, (k, part) in enumerate(zip(positions, y.split(c, dim=1))):
            rows = slice(k * c, (k + 1) * c)
            s = None if scale is None else scale[i * c:(i + 1) * c]
            parts.append(F.batch_norm(part, mean[rows], var[rows], s, None, use_batch_stats, 0.1, self.eps))
        return parts

    def _branches(self, xi: torch.Tensor, weights: torch.Tensor, src: int, active) -> dict[int, torch.Tensor]:
        """BN(conv(ReLU(x_src), W̃_e)) of every edge leaving ``src`` whose branch is in use: {edge: output}."""
        outs = OUT_EDGES[src]
        chosen = [(k, e) for k, (e, _) in enumerate(outs)
                  if active is None or any(active[e][op] for op in self.branch_ops)]
        if not chosen:
            return {}
        edges = [e for _, e in chosen]
        y = F.conv2d(F.relu(xi), self.merged_kernel(edges, weights), padding=1)
        parts = self._bn(y, src, [k for k, _ in chosen], self._branch_scale(edges, weights))
        return dict(zip(edges, parts))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        def edge_terms(src: int, xi: torch.Tensor):
            branches = self._branches(xi, weights, src, active)
            separate = [(_SKIP, xi)]
            if self.pool == "separate" and any(active is None or active[e][_POOL] for e, _ in OUT_EDGES[src]):
                separate.append((_POOL, avg_pool_3x3(xi)))
            return {e: [t] for e, t in branches.items()}, separate

        return sum_over_sources(x, weights, active, edge_terms)
