"""The NB201 searchable cell with mixed edges, computed per source node for speed.

Mathematically every edge e = (i→j) computes Σ_o w[e,o]·o(x_i) over NB201's five ops, exactly as
xautodl's ``NAS201SearchCell``. The implementation groups the edges that leave the same node:

* ``none`` is never computed (it adds w·0; its α still gets a gradient through the activation),
* the ReLU in front of the convolutions and the 3×3 average pool are computed once per source node
  instead of once per edge,
* the convolutions of all edges leaving a node run as one convolution with stacked kernels, and
  the op weight is folded into the following BatchNorm as its per-channel scale (BN has
  ``affine=False`` in searchable cells, so the scale slot is free, and BN is per-channel so a
  stacked BN equals separate ones).

Parameters stay per edge (``conv1x1[e]``, ``conv3x3[e]``) so that analyses can address the
weights of one (edge, op), e.g. for gradient correlation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .ops import EDGES, NUM_NODES, OP_INDEX
from .pooling import avg_pool_3x3

_SKIP, _C1, _C3, _POOL = (OP_INDEX[n] for n in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))
# Edges grouped by source node, in the order nodes become available.
OUT_EDGES: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((e, t) for e, (s, t) in enumerate(EDGES) if s == src) for src in range(NUM_NODES - 1)
)
CONV_OPS: tuple[tuple[int, int], ...] = ((_C1, 1), (_C3, 3))  # (op column, kernel size)


def conv_weight_init(c_out: int, c_in: int, kernel: int) -> nn.Parameter:
    """A conv kernel with nn.Conv2d's default initialisation. Stacked kernels get the same
    distribution as separate ones (the fan-in is c_in·k·k either way)."""
    w = torch.empty(c_out, c_in, kernel, kernel)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return nn.Parameter(w)


class MixedCell(nn.Module):
    """NB201 cell whose edges are weighted sums of all five ops. ``forward(x, weights[E, O])``."""

    def __init__(self, channels: int, track_running_stats: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.track_running_stats = track_running_stats
        self.eps = eps
        self.conv1x1 = nn.ParameterList([conv_weight_init(channels, channels, 1) for _ in EDGES])
        self.conv3x3 = nn.ParameterList([conv_weight_init(channels, channels, 3) for _ in EDGES])
        for src, outs in enumerate(OUT_EDGES):
            self.register_buffer(f"_edges_from{src}", torch.tensor([e for e, _ in outs]), persistent=False)
            if track_running_stats:
                for op, _ in CONV_OPS:
                    self.register_buffer(f"running_mean_{src}_{op}", torch.zeros(len(outs) * channels))
                    self.register_buffer(f"running_var_{src}_{op}", torch.ones(len(outs) * channels))

    def conv_weights(self, edge: int, op: int) -> list[nn.Parameter]:
        """The weights of conv op ``op`` on ``edge`` (gradient-correlation groups)."""
        return [(self.conv1x1 if op == _C1 else self.conv3x3)[edge]]

    def _bn(self, y: torch.Tensor, scale: torch.Tensor, src: int, op: int, rows: slice | None) -> torch.Tensor:
        """BatchNorm (affine=False) times the op weight of each edge, as one call over stacked edges."""
        mean = var = None
        if self.track_running_stats:
            mean = getattr(self, f"running_mean_{src}_{op}")
            var = getattr(self, f"running_var_{src}_{op}")
            if rows is not None:  # views: F.batch_norm updates the stats of just these edges in place
                mean, var = mean[rows], var[rows]
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(y, mean, var, scale.repeat_interleave(self.channels), None,
                            use_batch_stats, 0.1, self.eps)

    def _convs_of(self, x: torch.Tensor, relu_x: torch.Tensor, weights: torch.Tensor, src: int,
                  outs: tuple[tuple[int, int], ...], active) -> dict[int, list[torch.Tensor]]:
        """Weighted conv outputs of every edge leaving ``src``: {edge: [tensors to add]}."""
        result: dict[int, list[torch.Tensor]] = {e: [] for e, _ in outs}
        c = self.channels
        for op, kernel in CONV_OPS:
            chosen = [k for k, (e, _) in enumerate(outs) if active is None or active[e][op]]
            if not chosen:
                continue
            params = self.conv1x1 if op == _C1 else self.conv3x3
            if len(chosen) == len(outs):
                kernels = torch.cat([params[e] for e, _ in outs]) if len(outs) > 1 else params[outs[0][0]]
                scale = weights[:, op].index_select(0, getattr(self, f"_edges_from{src}"))
                y = self._bn(F.conv2d(relu_x, kernels, padding=kernel // 2), scale, src, op, None)
                # split, not slicing: its backward is one cat instead of a zero-filled tensor per slice
                for (e, _), part in zip(outs, y.split(c, dim=1)):
                    result[e].append(part)
            else:  # a subset (single-path methods): one conv per chosen edge
                for k in chosen:
                    e = outs[k][0]
                    y = F.conv2d(relu_x, params[e], padding=kernel // 2)
                    result[e].append(self._bn(y, weights[e, op:op + 1], src, op, slice(k * c, (k + 1) * c)))
        return result

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        def edge_terms(src: int, xi: torch.Tensor):
            outs = OUT_EDGES[src]
            wants = (lambda op: any(active is None or active[e][op] for e, _ in outs))
            relu_x = F.relu(xi) if wants(_C1) or wants(_C3) else None
            pooled = avg_pool_3x3(xi) if wants(_POOL) else None
            convs = self._convs_of(xi, relu_x, weights, src, outs, active) if relu_x is not None else {}
            return convs, [(_SKIP, xi), (_POOL, pooled)]

        return sum_over_sources(x, weights, active, edge_terms, self.node_scalars(weights, active),
                                self.edge_scale(x))

    def node_scalars(self, weights: torch.Tensor, active) -> torch.Tensor | None:
        """Scalars added to the nodes (``(NUM_NODES,)``, entry 0 unused), or None: nothing to add.
        GDAS' cell (:mod:`.gdas_cell`) adds the skipped ops' zero-valued weights, for their gradient."""
        return None

    def edge_scale(self, x: torch.Tensor) -> torch.Tensor | None:
        """Per-sample factors (E, B) of each edge's whole output, or None (every factor 1): the hook of
        DropPath cells (:mod:`.drop_path_cell`)."""
        return None


def sum_over_sources(x: torch.Tensor, weights: torch.Tensor, active, edge_terms,
                     node_scalars: torch.Tensor | None = None,
                     edge_scale: torch.Tensor | None = None) -> torch.Tensor:
    """The cell's DAG, source node by source node: node j = Σ_{i<j} edge(i→j)(node i); returns node 3.

    ``edge_terms(src, x_src)`` returns ``(terms, weighted)``: ``terms`` maps an edge leaving ``src`` to
    tensors already weighted (its conv branches), ``weighted`` lists ``(op, tensor)`` pairs of
    parameter-free outputs shared by every edge leaving ``src``, each multiplied here by
    ``weights[e, op]`` (skipped where ``active`` rules the op out, or the tensor is None).
    ``node_scalars[j]``, if given, is added to node j (broadcast over the whole tensor).
    ``edge_scale`` (E, B): edge e's whole output is multiplied by ``edge_scale[e, b]`` for sample b.
    """
    partial: list[torch.Tensor | None] = [None] * NUM_NODES
    nodes = [x]
    for src, outs in enumerate(OUT_EDGES):
        xi = nodes[src]
        terms, weighted = edge_terms(src, xi)
        for e, target in outs:
            if edge_scale is None:   # summed straight into the target node: no tensor per edge
                partial[target] = _add_edge(partial[target], e, terms, weighted, weights, active)
                continue
            own = _add_edge(None, e, terms, weighted, weights, active)
            if own is not None:
                own = own * edge_scale[e].view(-1, *[1] * (own.dim() - 1))
                partial[target] = own if partial[target] is None else partial[target] + own
        nxt = partial[src + 1]
        if nxt is None:
            nxt = torch.zeros_like(x)
        if node_scalars is not None:
            nxt = nxt + node_scalars[src + 1]
        nodes.append(nxt)
    return nodes[-1]


def _add_edge(acc: torch.Tensor | None, e: int, terms, weighted, weights: torch.Tensor, active) -> torch.Tensor | None:
    """``acc`` plus edge ``e``'s output (see :func:`sum_over_sources`); None if both are empty."""
    for t in terms.get(e, ()):
        acc = t if acc is None else acc + t
    for op, value in weighted:
        if value is None or (active is not None and not active[e][op]):
            continue
        acc = value * weights[e, op] if acc is None else torch.addcmul(acc, value, weights[e, op])
    return acc
