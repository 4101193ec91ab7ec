"""DNAS / CAM (paper 002): one op-weight matrix per searchable cell, from decoupled parameters.

``ψ[k,i,j] = sigmoid(α[i,j]) · softmax_i(β[k,:])[i] · sigmoid(γ[k,j])`` (the paper's eq. 4-5):
α (6×O, edge × op) is shared, β (L×6, layer × edge) and γ (L×O, layer × op) modulate it per layer,
so L·6 + L·O + 6·O numbers give every cell its own weights. The candidate ops are NB201's four
non-``none`` ops by default (O = 4, 174 numbers for L = 15): the paper's edges have no zero op
("7 candidate operations", DARTS' 8 minus none), and with sigmoid gates a ``none`` column would get
no data gradient, so only the zero-one loss would move it — towards 0 or 1, winning argmaxes for
reasons unrelated to the data. ``include_none=true`` adds it (O = 5, 195 numbers). Cell k's edge i
outputs Σ_j ψ[k,i,j]·O_j(x): the fused MixedCell with the per-cell (L, E, 5) weights ``Supernet``
accepts, ``none``'s column 0 when it is not a candidate.

The numbers live in one flat parameter (DartsFamily's ``alpha``), viewed as (α, β, γ) by
:func:`cam_parts`. Adam is elementwise, so this equals three parameters under one optimizer, and
every DartsFamily step (first/second order, all modes), checkpointing and the Hessian apply unchanged.

FairDARTS' zero-one loss (which the paper adopts) is added to the architecture objective only:
``L_01 = −w·mean((σ − 0.5)²)`` over the sigmoid-activated numbers, σ(α) and σ(γ) (β is a softmax).
*Minimizing* it maximizes the squared distance of each sigmoid from 0.5, i.e. drives it to 0 or 1 —
the sign of FairDARTS' code (``loss + w·(−mse(σ, 0.5))``). It does not depend on w, so weight
gradients are untouched (and in the unrolled gradient its two Hessian terms cancel exactly).

Derivation: the benchmark scores uniform cells, so the derived cell — the record's ``genotype``,
its parameter-free count and its benchmark accuracy — is argmax_j σ(α[i,j]) (the shared part).
Each layer's cell is argmax_j ψ[k,i,j] (records: ``layer_genotypes``, how many are distinct), and
``majority_genotype`` their per-edge majority vote; ``lookup_exact`` says whether every layer's
cell equals the derived one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ...errors import ConfigError
from ...ranges import COUNT, NON_NEGATIVE
from ...space.genotype import Genotype
from ...space.ops import NUM_EDGES, OP_INDEX
from ...space.supernet import Supernet
from ..base import Batch, StepStats
from . import gates
from .darts_family import DartsFamily, DartsOptions
from .gates import candidate_ops
from .partial_channels import partial_channel_supernet
from ..options import NB201, PAPER, XAUTODL_NET, option
from ..registry import register


@dataclass(frozen=True)
class DnasOptions(DartsOptions):
    """NB201 reference optimizers and schedule (bi-level, first order); CAM and the zero-one loss."""

    activation: str = option("cam", PAPER, "ψ = sigmoid(α)·softmax_edges(β)·sigmoid(γ) (eq. 4-5)", ("cam",))
    alpha_init_std: float = option(1e-3, XAUTODL_NET, "α, β and γ initialised as std·N(0, 1) (xautodl's α init)",
                                   bounds=NON_NEGATIVE)
    zero_one_weight: float = option(10.0, PAPER, "weight w of FairDARTS' zero-one loss −w·mean((σ−0.5)²); "
                                                  "FairDARTS' default, adopted by the paper (0 = off)",
                                                  bounds=NON_NEGATIVE)
    partial_channels: int = option(1, NB201, "PC-DARTS: ops see 1/K of the channels (K=4 in PC-DARTS); "
                                            "1 = off, the docs' default on NB201", bounds=COUNT)
    include_none: bool = option(False, PAPER, "'none' among the candidate ops; the paper's edges have none of it "
                                              "('7 candidate operations', DARTS' 8 minus none): 4 ops, 174 "
                                              "parameters on NB201; true = 5 ops, 195")

    def __post_init__(self) -> None:
        if self.partial_channels < 1:
            raise ConfigError(f"dnas: partial_channels must be 1 (off) or K > 1, got {self.partial_channels}")


class CamParts(NamedTuple):
    alpha: torch.Tensor   # (E, O) edge × candidate op, shared by all layers
    beta: torch.Tensor    # (L, E) layer × edge
    gamma: torch.Tensor   # (L, O) layer × candidate op


def cam_size(layers: int, ops: int) -> int:
    """Number of architecture parameters: L·E + L·O + E·O (174 for NB201's L = 15, O = 4; 195 with none)."""
    return layers * NUM_EDGES + layers * ops + NUM_EDGES * ops


def cam_parts(flat: torch.Tensor, layers: int, ops: int) -> CamParts:
    """Views of the flat parameter vector (α first, then β, then γ); also splits its gradients."""
    a, b = NUM_EDGES * ops, layers * NUM_EDGES
    return CamParts(flat[:a].view(NUM_EDGES, ops), flat[a:a + b].view(layers, NUM_EDGES),
                    flat[a + b:].view(layers, ops))


def cam_weights(parts: CamParts) -> torch.Tensor:
    """ψ over the candidate ops, shape (L, E, O)."""
    return (torch.sigmoid(parts.alpha)[None]
            * torch.softmax(parts.beta, dim=-1)[:, :, None]
            * torch.sigmoid(parts.gamma)[:, None, :])


def zero_one_loss(parts: CamParts, weight: float) -> torch.Tensor:
    """FairDARTS' −w·mean((σ − 0.5)²) over σ(α) and σ(γ); minimizing it pushes each σ to 0 or 1."""
    sig = torch.cat([torch.sigmoid(parts.alpha).flatten(), torch.sigmoid(parts.gamma).flatten()])
    return gates.zero_one_loss(sig, weight)


def majority_vote(genotypes: list[Genotype]) -> Genotype:
    """Per edge, the op most layers chose; ties go to the first op in ``OPS`` order (deterministic)."""
    ops = []
    for e in range(NUM_EDGES):
        counts = Counter(g.ops[e] for g in genotypes)
        ops.append(max(counts, key=lambda op: (counts[op], -OP_INDEX[op])))
    return Genotype(tuple(ops))


class Dnas(DartsFamily):
    packable = False
    solo_reason = "its flat 174-parameter CAM vector is cut into parts by position, not yet written for a seed axis"

    def build_supernet(self) -> Supernet:
        return partial_channel_supernet("dnas", self.ctx.shape, self.options.partial_channels,
                                        self.options.track_running_stats)

    @property
    def layers(self) -> int:
        return self.ctx.shape.num_search_cells

    @property
    def candidates(self) -> tuple[int, ...]:
        return candidate_ops(self.options.include_none)

    def alpha_shape(self) -> tuple[int, ...]:
        return (cam_size(self.layers, len(self.candidates)),)

    def parts(self, flat: torch.Tensor | None = None) -> CamParts:
        return cam_parts(self.alpha if flat is None else flat, self.layers, len(self.candidates))

    def to_nb201(self, t: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """Candidate-op columns (last dim O) → NB201's five columns; the non-candidate 'none' gets ``fill``."""
        return gates.to_nb201(t, self.candidates, fill)

    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        """ψ as (L, E, 5) supernet weights: exactly 0 for a non-candidate op, which is then not computed."""
        return self.to_nb201(cam_weights(self.parts(alpha)))

    def arch_objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The task loss plus the zero-one loss (the weights' loss has no regularizer). In ``single-level``
        mode one loss serves both, so its recorded train loss includes it."""
        loss, logits = super().arch_objective(x, y)
        if self.options.zero_one_weight:
            loss = loss + zero_one_loss(self.parts(), self.options.zero_one_weight)
        return loss, logits

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        stats = super().step(batches, epoch, step, measure_gc)
        grads = self.parts(stats.op_grad)      # op_grad of the flat vector → the paper's three parts
        nan = float("nan")                     # a non-candidate op has no parameter, hence no gradient
        stats.op_grad = self.to_nb201(grads.alpha, nan)
        stats.extra.update(op_grad_beta=grads.beta, op_grad_gamma=self.to_nb201(grads.gamma, nan))
        return stats

    # ---- derivation and records ---------------------------------------------------------------
    def op_weights(self) -> np.ndarray:
        """σ(α), the shared (6, 5) part ('none' 0 unless a candidate): the derived cell's weights."""
        with torch.no_grad():
            return self.to_nb201(torch.sigmoid(self.parts().alpha)).float().cpu().numpy()

    def layer_op_weights(self) -> np.ndarray:
        """ψ, (L, 6, 5)."""
        with torch.no_grad():
            return self.activate(self.alpha).float().cpu().numpy()

    def layer_genotypes(self) -> list[Genotype]:
        return [self.genotype_of(w) for w in self.layer_op_weights()]

    def genotype_of(self, weights: np.ndarray) -> Genotype:
        # a non-candidate 'none' (weight 0) cannot win, even if every candidate's weight underflows to 0
        return Genotype.from_weights(weights, include_none=self.options.derive_none and self.options.include_none)

    def extra_records(self) -> dict[str, Any]:
        layers = self.layer_genotypes()
        derived = self.derive()
        with torch.no_grad():
            p = self.parts()
            beta, gamma = torch.softmax(p.beta, dim=-1), self.to_nb201(torch.sigmoid(p.gamma), float("nan"))
        return {
            "layer_op_weights": self.layer_op_weights(),
            "layer_edge_weights": beta.float().cpu().numpy(),    # softmax_i β[k, :]
            "layer_op_gates": gamma.float().cpu().numpy(),       # σ(γ[k, :]), NaN for a non-candidate op
            "layer_genotypes": [g.to_str() for g in layers],
            "distinct_layer_genotypes": len({g.to_str() for g in layers}),
            "layers_differing_from_lookup": sum(g != derived for g in layers),
            "majority_genotype": majority_vote(layers).to_str(),
            "lookup_exact": all(g == derived for g in layers),
        }


register(
    "dnas",
    summary="DNAS/CAM: per-layer op weights ψ = σ(α)·softmax(β)·σ(γ) (174 params), zero-one loss, bi-level",
    paper="Xu, He. DNAS: A Decoupled Global Neural Architecture Search Method. CVPR Workshops 2022 (paper 002)",
    options=DnasOptions,
    departures=(
        "NB201 search network (L = 15 cells of one type) instead of the DARTS global network with its "
        "normal and reduction blocks.",
        "Edge output Σ_j ψ·O_j (eq. 5), as docs/methods.md fixes it; eq. 1's normalization of σ^ψ over the "
        "ops is not applied.",
        "PC-DARTS partial channels (partial_channels=K): the first C/K channels go through the ops, then channel "
        "shuffle; the bypassed channels are weighted by the edge's total weight Σ_o ψ (PC-DARTS' edge "
        "normalization applies to whole edges; here ψ carries it). Off by default on NB201.",
        "No skip-connect dropout (the paper's 0.2, from its DARTS settings): NB201 reference runs have none.",
        "The benchmark scores uniform cells: the derived cell is the shared σ(α) cell (lookup_exact says "
        "whether all layers agree with it); the per-layer cells and their majority vote are recorded.",
        "Candidate ops: NB201's four non-'none' ops (the paper's op set has no zero op); include_none=true "
        "adds 'none' (its σ gate then gets no data gradient).",
    ),
    factory=Dnas,
)
