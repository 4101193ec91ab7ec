"""The NAS-Bench-201 operation set and cell topology, as constants.

Every other module takes op names and edge order from here, so that the arch-string order, the
op-weight matrix columns and the NASLib codes are defined in exactly one place.
"""

from __future__ import annotations

# Column order of every (edge x op) weight matrix in nbs. This is NB201's own order
# (xautodl `NAS_BENCH_201`), so α tensors read the same as in the reference code.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_OPS = len(OPS)
OP_INDEX = {name: i for i, name in enumerate(OPS)}

# Ops without weights; a cell dominated by them is the signature of DARTS collapse.
PARAM_FREE_OPS = frozenset({"none", "skip_connect", "avg_pool_3x3"})

NUM_NODES = 4
# Edges (source, target) in arch-string order: 0→1 | 0→2, 1→2 | 0→3, 1→3, 2→3.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_EDGES = len(EDGES)
EDGE_INDEX = {edge: i for i, edge in enumerate(EDGES)}

# NASLib op codes (naslib/search_spaces/nasbench201): 0=skip, 1=none, 2=conv3x3, 3=conv1x1, 4=pool.
NASLIB_CODE_TO_OP: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_OP_TO_CODE = {name: i for i, name in enumerate(NASLIB_CODE_TO_OP)}
# NASLib tuple position k holds the op of edge NASLIB_TUPLE_EDGES[k]: (o0..o5) is
# |o0~0|+|o1~0|o3~1|+|o2~0|o4~1|o5~2|, i.e. tuple order 0→1, 0→2, 0→3, 1→2, 1→3, 2→3.
NASLIB_TUPLE_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
