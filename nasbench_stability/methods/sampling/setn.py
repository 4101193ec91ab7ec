"""SETN: self-evaluated template network (Dong & Yang, ICCV 2019), as xautodl runs it on NB201.

xautodl ``exps/NAS-Bench-201-algos/SETN.py`` with ``search_model_setn.py``, per step:

1. weight step on a train batch through a uniformly random single-path cell (``dync_genotype(True)``,
   ``set_cal_mode("dynamic", ...)``: only the cell's ops are computed); SGD, **no gradient clip**;
2. α step on a valid batch through the softmax-mixed cell (``set_cal_mode("joint")``: Σ_o
   softmax(α_e)_o·o(x), DARTS' mixed edge), first order, Adam.

After every epoch (``get_best_arch``) the candidates are the ``select_num`` = 100 **most probable**
cells under softmax(α) (``return_topK``: all 5^6 cells ranked by Σ_e log softmax(α_e)[op_e]), not
cells sampled from it, as the paper and docs/baselines.md say (``candidates=sampled`` is that
reading). Each is scored on one valid batch with the shared weights in eval mode; the first best is
the epoch's cell, recorded and looked up every epoch, and the supernet valid accuracy is that
cell's (``valid_func`` after ``set_cal_mode("dynamic", genotype)``).

The α step, its optimizer, checkpointing and the α-Hessian (of the joint cell's valid loss) are
DartsFamily's; the weight step is DartsFamily's with the single-path network
(:meth:`Setn.loss_and_logits`). Gradient correlation compares ∇w_o of the single-path train loss
with that of the joint valid loss, for the ops the path trains (NaN elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data.pipeline import derive_seed
from ...ranges import BELOW_ONE, NON_NEGATIVE, POSITIVE, Range
from ...space.genotype import Genotype
from ...space.ops import NUM_EDGES, NUM_OPS
from ..base import Batch, SearchContext, StepStats
from ..gradient.darts_family import ARCH_OPTIMIZERS, DartsFamily, DartsOptions
from ..options import option, reference
from ..registry import register
from ...space.live_ops import reaching_output
from .single_path import DEPARTURES, SinglePathOptions, SinglePathSelection

SETN_PY = reference("AutoDL-Projects exps/NAS-Bench-201-algos/SETN.py")
SETN_NET = reference("AutoDL-Projects xautodl/models/cell_searchs/search_model_setn.py")
SETN_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/SETN.sh")
CANDIDATES = ("top-k", "sampled")
NUM_CELLS = NUM_OPS ** NUM_EDGES


@dataclass(frozen=True)
class SetnOptions(SinglePathOptions, DartsOptions):
    """SinglePathOptions' values (the weights, the pick) over DartsOptions' (α), then SETN's own."""

    mode: str = option("bilevel", SETN_PY, "weight step on a train batch, α step on a valid batch", ("bilevel",))
    activation: str = option("softmax", SETN_NET, "the α step's mixed cell: softmax(α) ('joint' mode)",
                             ("softmax",))
    order: int = option(1, SETN_PY, "first-order α gradient (backward of the valid loss at the current w)", (1,))
    step_order: str = option("w-alpha", SETN_PY, "weight step, then the α step at the updated weights",
                             ("w-alpha",))
    grad_clip: float = option(0.0, SETN_PY, "gradient-norm clip of the weights: SETN's search_func has none "
                              "(0 = off)", bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(False, SETN_PY, "a clip (if set) covers the weights alone: the weight "
                                       "optimizer holds get_weights(), without α", (False,))
    a_optimizer: str = option("adam", SETN_PY, "optimizer of α (adam: torch.optim.Adam in SETN.py)", ARCH_OPTIMIZERS)
    a_lr: float = option(3e-4, SETN_SH, "learning rate of α, fixed (--arch_learning_rate 0.0003)", bounds=POSITIVE)
    a_beta1: float = option(0.5, SETN_PY, "Adam β1 of α (betas=(0.5, 0.999))", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, SETN_PY, "Adam β2 of α", bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, SETN_SH, "Adam weight decay (L2) of α (--arch_weight_decay 0.001)",
                                   bounds=NON_NEGATIVE)
    alpha_init_std: float = option(1e-3, SETN_NET, "α initialised as std·N(0, 1)", bounds=NON_NEGATIVE)
    derive_none: bool = option(True, SETN_NET, "'none' is an op of the ranked cells (Structure.gen_all)", (True,))
    select_num: int = option(100, SETN_SH, "candidate cells scored at the end of every epoch (--select_num 100), "
                             "one valid batch each (at most all 15,625 cells)", bounds=Range(1, NUM_CELLS))
    candidates: str = option("top-k", SETN_PY, "top-k = the select_num most probable cells under softmax(α) "
                             "(get_best_arch: return_topK); sampled = select_num cells drawn from softmax(α), "
                             "each edge independently (the paper's description)", CANDIDATES)


def cell_log_probs(alpha: torch.Tensor) -> torch.Tensor:
    """log P(cell) = Σ_e log softmax(α_e)[op_e] of all 5^6 cells, in xautodl's ``Structure.gen_all``
    order (the op of edge 0→1 varies slowest, of 2→3 fastest: index = Σ_e op_e·5^(5−e)), summed
    edge by edge in α's dtype as ``get_log_prob`` does, so that ties and near-ties order alike."""
    lp = torch.log_softmax(alpha.detach(), dim=-1).cpu()
    total = lp[0].view(NUM_OPS, *[1] * (NUM_EDGES - 1))
    for e in range(1, NUM_EDGES):
        shape = [1] * NUM_EDGES
        shape[e] = NUM_OPS
        total = total + lp[e].view(shape)
    return total.reshape(-1)


def cell_of_index(index: int) -> Genotype:
    """The cell at ``index`` of the gen_all order (see :func:`cell_log_probs`)."""
    return Genotype.from_op_indices(np.unravel_index(index, (NUM_OPS,) * NUM_EDGES))


def top_cells(alpha: torch.Tensor, k: int) -> list[Genotype]:
    """xautodl ``return_topK(k)``: the k most probable cells, ties in gen_all order (a stable sort)."""
    scores = cell_log_probs(alpha).numpy()
    return [cell_of_index(int(i)) for i in np.argsort(-scores, kind="stable")[:k]]


def sampled_cells(alpha: torch.Tensor, k: int, generator: torch.Generator) -> list[Genotype]:
    """k cells drawn from softmax(α), each edge independently (xautodl ``dync_genotype(False)``)."""
    probs = torch.softmax(alpha.detach().double().cpu(), dim=-1)
    ops = torch.multinomial(probs, k, replacement=True, generator=generator)   # (edges, k)
    return [Genotype.from_op_indices(ops[:, j].tolist()) for j in range(k)]


class Setn(SinglePathSelection, DartsFamily):
    def __init__(self, options: SetnOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self._init_selection()
        self._cell: Genotype | None = None             # the single path of the current weight step
        self._learnable_groups = self._gc_groups        # every (edge, conv op); _gc_groups: this step's
        self._candidate_log_probs: np.ndarray | None = None

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        self._cell = self.draw_path(epoch, step)
        if measure_gc:   # only the ops the path trains (and that reach the output) get a weight gradient
            live = reaching_output(self._cell.one_hot() > 0)
            self._gc_groups = {k: v for k, v in self._learnable_groups.items() if live[k]}
        try:
            return super().step(batches, epoch, step, measure_gc)
        finally:
            self._cell, self._gc_groups = None, self._learnable_groups

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor, arch_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight step's single path (α does not enter it: ``clip_includes_alpha`` is off), else
        the joint softmax-mixed cell of the α step and of the Hessian."""
        if arch_grad or self._cell is None:
            return super().loss_and_logits(x, y, arch_grad)
        logits = self.path_logits(x, self._cell)
        return self.task_loss(logits, y), logits

    def _clip(self, with_alpha: bool) -> None:
        # between the weight step's backward and its SGD step (DartsFamily._weight_step)
        self.complete_grads(self._cell)
        super()._clip(with_alpha)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """SETN.py ``valid_func`` after ``set_cal_mode("dynamic", genotype)``: the epoch's pick."""
        return self.path_logits(x, self.derive())

    def candidates(self, epoch: int) -> list[Genotype]:
        k = self.options.select_num
        if self.options.candidates == "sampled":
            g = torch.Generator().manual_seed(derive_seed(self.ctx.seed, "setn-select", epoch))
            cells = sampled_cells(self.alpha, k, g)
        else:
            cells = top_cells(self.alpha, k)
        scores = cell_log_probs(self.alpha).numpy()
        self._candidate_log_probs = np.array([scores[np.ravel_multi_index(c.op_indices(), (NUM_OPS,) * NUM_EDGES)]
                                              for c in cells], dtype=np.float64)
        return cells

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._candidate_log_probs = None

    def extra_records(self) -> dict[str, Any]:
        records = super().extra_records()
        if self._candidate_log_probs is not None and "candidate_genotypes" in records:
            # log P(candidate) under softmax(α), for the candidates scored (pick_best may stop early)
            records["candidate_log_prob"] = self._candidate_log_probs[:len(records["candidate_genotypes"])]
        return records


register(
    "setn",
    summary="SETN: uniform single-path weight steps, softmax-mixed α steps; best of the 100 most probable "
            "cells on the shared weights every epoch",
    paper="Dong, Yang. One-Shot Neural Architecture Search via Self-Evaluated Template Network. ICCV 2019 "
          "(NB201 setting: xautodl SETN.py)",
    options=SetnOptions,
    departures=(
        "Candidates: the select_num most probable cells under softmax(α) (xautodl SETN.py get_best_arch → "
        "return_topK), not cells sampled from the template, as the paper and docs/baselines.md describe; "
        "candidates=sampled draws them instead.",
        "The paper searches the DARTS space with its own schedule; this is NB201's version (xautodl SETN.py).",
        "No pick before the first epoch (xautodl logs one as genotypes[-1]) and no separate final pick: the "
        "last epoch's pick is the result (xautodl's final get_best_arch ranks the same α and, from the same "
        "weights, differs only by its valid batches).",
    ) + DEPARTURES,
    factory=Setn,
)
