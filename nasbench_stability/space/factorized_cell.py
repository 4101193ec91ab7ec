"""Searchable NB201 cells for factorized architecture parameters (A-DARTS, paper 003).

A-DARTS splits the candidate ops into a regular group O1 (weights α) and a second group O2
(weights β). On NB201 we build three spaces:

* activation-factorized (``FactorizedActivationCell``): O1 = NB201's five ops, O2 = nine
  activations. A convolution's ReLU is replaced by the edge's activation mixture
  ``σ_e(x) = Σ_k b_e[k]·act_k(x)`` (paper eq. 2); both convs of an edge share it, the
  parameter-free ops get ``x`` unchanged (eq. 1).
* activation × conv pairs (``ActivationPairCell``): the paper's non-factorized ablation, every
  (activation, conv) pair is its own candidate with its own weights, next to none/skip/pool.
* kernel-factorized: O1 = {none, skip, conv, pool}, O2 = {1×1, 3×3}. Its edge
  ``a_conv·(b_1·conv1x1(x) + b_3·conv3x3(x))`` is exactly a NB201 mixed edge with op weights
  ``a_conv·b_k`` on the two convs, so it runs on the fused :class:`MixedCell`; this module only
  provides the weight mapping (:func:`kernel_factorized_weights`).

Weights. ``Supernet`` hands every cell one tensor (a shared ``(E, ·)`` matrix or a per-cell slice),
so the activation-factorized cell takes α- and β-weights *side by side* in one ``(E, 5 + 9)``
tensor (:func:`pack_activation_weights`): the forward stays a pure function of its arguments (no
β stored on the cell between calls), the supernet needs no change, and autograd reaches α and β
through the one tensor. ``active`` (single-path masks) indexes the op columns, as in MixedCell.
"""

from __future__ import annotations

from functools import reduce
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .mixed_cell import conv_weight_init
from .ops import EDGES, NUM_NODES, NUM_OPS, OP_INDEX, OPS
from .pooling import avg_pool_3x3

# A-DARTS' activation group, in the paper's order; ReLU first, the NB201 default.
ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "celu", "selu", "swish")
NUM_ACTIVATIONS = len(ACTIVATIONS)
# NB201's parameterized ops and their kernel sizes, by op-matrix column.
CONV_OPS: tuple[tuple[str, int], ...] = (("nor_conv_1x1", 1), ("nor_conv_3x3", 3))

# Kernel factorization of NB201's op set.
KERNEL_O1: tuple[str, ...] = ("none", "skip_connect", "conv", "avg_pool_3x3")
KERNEL_O2: tuple[str, ...] = tuple(name for name, _ in CONV_OPS)

# Non-factorized candidates: the three parameter-free ops, then every (activation, conv) pair.
PAIR_SEPARATOR = "+"
PAIR_CANDIDATES: tuple[str, ...] = ("none", "skip_connect", "avg_pool_3x3") + tuple(
    f"{act}{PAIR_SEPARATOR}{op}" for op, _ in CONV_OPS for act in ACTIVATIONS)


def pair_parts(candidate: str) -> tuple[str, str | None]:
    """``'selu+nor_conv_3x3'`` → ``('nor_conv_3x3', 'selu')``; a parameter-free op → ``(op, None)``."""
    if PAIR_SEPARATOR in candidate:
        act, op = candidate.split(PAIR_SEPARATOR)
        return op, act
    return candidate, None


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------
class Swish(nn.Module):
    """``x·sigmoid(b·x)`` with a learned ``b`` (A-DARTS; Ramachandran et al.), initialised to 1."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.b * x)


class SeededRReLU(nn.Module):
    """torch's RReLU (slope ~ U(lower, upper) per element in training, the mean slope in eval) drawing
    its noise from an explicit generator.

    ``F.rrelu`` takes no generator and would consume the global RNG, so the noise would depend on
    whatever else draws from it. The search method owns the generator and reseeds it from
    (seed, epoch, step) before every step: the slopes are then a function of the step alone, and a
    resumed run redraws exactly the slopes of the uninterrupted one. ``None`` = global RNG.
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.lower, self.upper, self.generator = lower, upper, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            u = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            slope = self.lower + (self.upper - self.lower) * u
        else:
            slope = (self.lower + self.upper) / 2
        return torch.where(x >= 0, x, x * slope)


def make_activation(name: str, generator: torch.Generator | None = None) -> nn.Module:
    """One activation of :data:`ACTIVATIONS` with PyTorch's default constants (A-DARTS is PyTorch
    code and names no other values): LeakyReLU slope 0.01, PReLU one slope initialised to 0.25,
    RReLU U(1/8, 1/3), ELU/CELU α = 1."""
    simple: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU,
        "elu": nn.ELU, "celu": nn.CELU, "selu": nn.SELU, "swish": Swish,
    }
    if name == "rrelu":
        return SeededRReLU(generator=generator)
    if name not in simple:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return simple[name]()


class ActivationMixture(nn.Module):
    """``σ(x) = Σ_k w[k]·act_k(x)`` (A-DARTS eq. 2). One per edge: PReLU and Swish carry per-edge
    parameters, like every other op weight in the supernet."""

    def __init__(self, generator: torch.Generator | None = None, names: tuple[str, ...] = ACTIVATIONS) -> None:
        super().__init__()
        self.acts = nn.ModuleList(make_activation(n, generator) for n in names)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = weights[0] * self.acts[0](x)
        for w, act in zip(weights[1:], self.acts[1:]):
            out = torch.addcmul(out, act(x), w)
        return out


class ConvBN(nn.Sequential):
    """Conv → BN (affine=False), NB201's nor_conv without its leading ReLU (the cell supplies it)."""

    def __init__(self, channels: int, kernel: int, track_running_stats: bool) -> None:
        super().__init__(nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(channels, affine=False, track_running_stats=track_running_stats))

    @property
    def weight(self) -> nn.Parameter:
        return self[0].weight


# ---------------------------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------------------------
def _sum(terms: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return reduce(torch.add, terms) if terms else torch.zeros_like(like)


class EdgeSumCell(nn.Module):
    """The NB201 DAG with a pluggable edge: node j = Σ_{i<j} edge(i→j)(node i), output node 3.

    Subclasses name their weight columns (``SKIP``, ``POOL``) and implement :meth:`edge_terms`;
    ``none`` is never computed (it adds w·0; its weight still gets a gradient through the
    softmax), as in :class:`MixedCell`.
    """

    SKIP: int
    POOL: int

    def edge_terms(self, e: int, x: torch.Tensor, w: torch.Tensor, keep: Callable[[int], bool]) -> list[torch.Tensor]:
        raise NotImplementedError

    def conv_weights(self, edge: int, op: int) -> list[nn.Parameter]:
        """The weights of NB201 op column ``op`` (a conv) on ``edge`` (gradient correlation groups)."""
        raise NotImplementedError

    def _free_terms(self, x: torch.Tensor, w: torch.Tensor, keep: Callable[[int], bool]) -> list[torch.Tensor]:
        terms = [w[self.SKIP] * x] if keep(self.SKIP) else []
        if keep(self.POOL):
            terms.append(w[self.POOL] * avg_pool_3x3(x))
        return terms

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        nodes = [x]
        for target in range(1, NUM_NODES):
            terms: list[torch.Tensor] = []
            for e, (source, t) in enumerate(EDGES):
                if t == target:
                    row = None if active is None else active[e]
                    terms += self.edge_terms(e, nodes[source], weights[e],
                                             lambda col, row=row: row is None or bool(row[col]))
            nodes.append(_sum(terms, x))
        return nodes[-1]


def pack_activation_weights(op_weights: torch.Tensor, act_weights: torch.Tensor) -> torch.Tensor:
    """(…, E, 5) NB201 op weights and (…, E, 9) activation weights → the (…, E, 14) cell input."""
    return torch.cat([op_weights, act_weights], dim=-1)


class FactorizedActivationCell(EdgeSumCell):
    """A-DARTS cell on NB201: ``Σ_o a[o]·o(σ_e^o(x))``, σ_e the activation mixture for the convs.

    ``weights`` is (E, 5 + 9): NB201 op weights (``OPS`` order), then activation weights
    (``ACTIVATIONS`` order); see :func:`pack_activation_weights`.
    """

    SKIP, POOL = OP_INDEX["skip_connect"], OP_INDEX["avg_pool_3x3"]
    COLUMNS: tuple[str, ...] = OPS + ACTIVATIONS

    def __init__(self, channels: int, track_running_stats: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.mixtures = nn.ModuleList(ActivationMixture(generator) for _ in EDGES)
        self.convs = nn.ModuleList(
            nn.ModuleDict({op: ConvBN(channels, k, track_running_stats) for op, k in CONV_OPS}) for _ in EDGES)

    def conv_weights(self, edge: int, op: int) -> list[nn.Parameter]:
        return [self.convs[edge][OPS[op]].weight]

    def edge_terms(self, e, x, w, keep):
        terms = self._free_terms(x, w, keep)
        wanted = [(OP_INDEX[op], conv) for op, conv in self.convs[e].items() if keep(OP_INDEX[op])]
        if wanted:
            mixed = self.mixtures[e](x, w[NUM_OPS:])
            terms += [w[col] * conv(mixed) for col, conv in wanted]
        return terms


class ActivationPairCell(EdgeSumCell):
    """Non-factorized ablation: ``weights`` (E, 21) over :data:`PAIR_CANDIDATES`; each
    (activation, conv) pair is a separate op ``BN(conv(act(x)))`` with its own conv weights and its
    own activation (PReLU/Swish parameters are not shared between pairs).

    For speed the nine pairs of one conv kind run as one grouped convolution over the nine stacked
    activations, with the candidate weights folded into the BatchNorm as its per-channel scale (BN
    is per channel and affine-free, so this equals nine separate ops — a test checks it). The conv
    weights of pair j are rows ``j·C:(j+1)·C`` of ``kernels[e][op]``.
    """

    SKIP, POOL = PAIR_CANDIDATES.index("skip_connect"), PAIR_CANDIDATES.index("avg_pool_3x3")
    COLUMNS = PAIR_CANDIDATES
    FIRST_PAIR = 3

    def __init__(self, channels: int, track_running_stats: bool = False, eps: float = 1e-5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.channels, self.track_running_stats, self.eps = channels, track_running_stats, eps
        n = NUM_ACTIVATIONS
        self.acts = nn.ModuleList(
            nn.ModuleDict({op: nn.ModuleList(make_activation(a, generator) for a in ACTIVATIONS) for op, _ in CONV_OPS})
            for _ in EDGES)
        self.kernels = nn.ModuleList(
            nn.ParameterDict({op: conv_weight_init(n * channels, channels, k) for op, k in CONV_OPS}) for _ in EDGES)
        if track_running_stats:
            for e in range(len(EDGES)):
                for op, _ in CONV_OPS:
                    self.register_buffer(f"running_mean_{e}_{op}", torch.zeros(n * channels))
                    self.register_buffer(f"running_var_{e}_{op}", torch.ones(n * channels))

    def columns(self, op: str) -> range:
        """The weight columns of the nine (activation, ``op``) pairs, in :data:`ACTIVATIONS` order."""
        first = PAIR_CANDIDATES.index(f"{ACTIVATIONS[0]}{PAIR_SEPARATOR}{op}")
        return range(first, first + NUM_ACTIVATIONS)

    def conv_weights(self, edge: int, op: int) -> list[nn.Parameter]:
        return [self.kernels[edge][OPS[op]]]

    def _pairs(self, e: int, op: str, kernel: int, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Σ_j scale[j]·BN(conv_j(act_j(x))) over the nine activations."""
        stacked = torch.cat([act(x) for act in self.acts[e][op]], dim=1)
        y = F.conv2d(stacked, self.kernels[e][op], padding=kernel // 2, groups=NUM_ACTIVATIONS)
        mean = var = None
        if self.track_running_stats:
            mean, var = getattr(self, f"running_mean_{e}_{op}"), getattr(self, f"running_var_{e}_{op}")
        y = F.batch_norm(y, mean, var, scale.repeat_interleave(self.channels), None,
                         self.training or not self.track_running_stats, 0.1, self.eps)
        return y.unflatten(1, (NUM_ACTIVATIONS, self.channels)).sum(1)

    def edge_terms(self, e, x, w, keep):
        terms = self._free_terms(x, w, keep)
        for op, kernel in CONV_OPS:
            cols = self.columns(op)
            if any(keep(c) for c in cols):   # inactive pairs have weight 0: computing them adds 0
                terms.append(self._pairs(e, op, kernel, x, w[cols.start:cols.stop]))
        return terms


def kernel_factorized_weights(o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
    """(…, E, 4) weights over :data:`KERNEL_O1` and (…, E, 2) over :data:`KERNEL_O2` → the (…, E, 5)
    NB201 op weights of the same edge: ``[a_none, a_skip, a_conv·b_1x1, a_conv·b_3x3, a_pool]``.

    Exact, not an approximation: ``a_conv·Σ_k b_k·conv_k(x)`` distributes over the two convs.
    """
    conv = o1[..., KERNEL_O1.index("conv"), None] * o2
    return torch.cat([o1[..., :2], conv, o1[..., 3:]], dim=-1)

