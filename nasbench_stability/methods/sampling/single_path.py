"""What RSPS and SETN share: the uniformly random single-path cell each weight step trains, the
statistics of those cells over an epoch, and the end-of-epoch pick of the derived cell.

* The cell of step (epoch, step) is drawn from a generator seeded with
  ``derive_seed(seed, "uniform-path", epoch, step)``: a pure function of the step, so a resumed run
  draws the same cells without saved RNG state, and RSPS and SETN of one seed train the same
  sequence of paths (their comparison is not blurred by different draws). Each edge's op is uniform
  over NB201's five, independently (xautodl ``random_genotype``, ``dync_genotype(True)``:
  ``random.choice(op_names)`` per edge).
* A single-path forward runs the supernet with the cell's one-hot weights and ``active`` mask: only
  the sampled ops are computed (xautodl ``forward_dynamic``), so the other ops get no gradient.
  xautodl's ``none`` op is ``x.mul(0.)``, which keeps what it multiplies in the graph: every weight of
  the path, and of the stem, reductions and head, gets a gradient there, exactly 0 where it does not
  reach the loss (an op into a node whose only way out is ``none``; the whole network below a cell
  with no path from input to output), so SGD's weight decay and momentum still move it.
  :meth:`SinglePathSelection.complete_grads` gives those weights their zero gradient (nbs does not
  compute ``none``).
* :meth:`SinglePathSelection.select` scores ``select_num`` candidate cells, one valid batch each,
  with the shared weights in eval mode (:func:`.candidates.pick_best`); the first argmax is the
  epoch's derived cell. It is kept in a buffer (``picked_ops``), so a checkpoint carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ...data.pipeline import derive_seed
from ...ranges import BATCH_SIZE, BELOW_ONE, EPOCHS, NON_NEGATIVE, POSITIVE, Range
from ...space.genotype import Genotype
from ...space.mixed_cell import CONV_OPS
from ...space.ops import NUM_EDGES, NUM_OPS, OPS
from ..base import Batch
from ..options import option, reference
from .candidates import CandidatePick, pick_best, uniform_cell

UNSAMPLED = ("skipped", "decayed")
PATH_STREAM = "uniform-path"

CONFIGS = reference("AutoDL-Projects configs/nas-benchmark/algos/RANDOM.config and SETN.config (the same values)")
SCRIPTS = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/RANDOM-NAS.sh and SETN.sh")
BN_DOCS = reference("AutoDL-Projects docs/NAS-Bench-201.md (`RANDOM-NAS.sh cifar10 1 -1`, `SETN.sh cifar10 1 -1`: "
                    "BN=1)")
TORCH1_ZERO_GRAD = reference("AutoDL-Projects RANDOM-NAS.py and SETN.py as NB201's published runs ran them, on "
                             "PyTorch 1.x, whose zero_grad() zeroes .grad instead of dropping it (as gdas and enas)")


@dataclass(frozen=True)
class SinglePathOptions:
    """The weight side and the end-of-epoch pick, as RSPS and SETN share them in xautodl."""

    epochs: int = option(250, CONFIGS, "search epochs (epochs 250, warmup 0)", bounds=EPOCHS)
    batch_size: int = option(64, CONFIGS, "batch size of every stream", bounds=BATCH_SIZE)
    w_lr: float = option(0.025, CONFIGS, "SGD learning rate of the network weights (LR)", bounds=POSITIVE)
    w_lr_min: float = option(0.001, CONFIGS, "cosine annealing floor of the weight learning rate (eta_min)",
                             bounds=NON_NEGATIVE)
    w_momentum: float = option(0.9, CONFIGS, "SGD momentum", bounds=BELOW_ONE)
    w_nesterov: bool = option(True, CONFIGS, "Nesterov momentum")
    w_weight_decay: float = option(5e-4, CONFIGS, "weight decay of the network weights (decay)", bounds=NON_NEGATIVE)
    track_running_stats: bool = option(True, BN_DOCS, "BN running statistics in the searchable cells: the "
                                       "eval-mode scores of the candidates (hence the pick) depend on it")
    select_num: int = option(100, SCRIPTS, "candidate cells scored at the end of every epoch (--select_num 100), "
                             "one valid batch each (the upper end only catches typos)", bounds=Range(1, 100_000))
    select_batch_size: int = option(512, CONFIGS, "valid images per candidate (test_batch_size: the valid_loader's "
                                    "batch; at most the valid half)", bounds=BATCH_SIZE)
    unsampled_weights: str = option("decayed", TORCH1_ZERO_GRAD, "weights of the ops outside a step's path: "
                                    "skipped = no gradient, SGD leaves them (weight decay and momentum "
                                    "included); decayed = a zero gradient, so weight decay and momentum move "
                                    "them, as zero_grad() did before PyTorch 2.0 (NB201's published runs)",
                                    UNSAMPLED)


#: where RSPS and SETN alike depart from xautodl (each adds its own)
DEPARTURES = (
    "Random draws come from generators seeded per step and per epoch (resumable; RSPS and SETN of one seed "
    "train the same sequence of cells), not from Python's global random module.",
    "Candidates are scored on full batches of min(512, valid half) images from a fresh shuffle each epoch; "
    "xautodl's valid_loader keeps the last partial batch of each pass.",
    "unsampled_weights=decayed (the default) gives the ops outside a step's path a zero gradient, as xautodl's "
    "zero_grad() did on the PyTorch 1.x of NB201's runs (there only once an op had been sampled; here from the "
    "first step, a difference of the first few steps); skipped leaves them to SGD as PyTorch >= 2.0 does. "
    "Path ops that do not reach the output get a zero gradient, as xautodl's none (x·0) gives them.",
    "xautodl's search-cell convolutions carry a bias (bias=not affine), nbs's none: BN removes it in training "
    "mode, so no step differs; in eval mode BN's running mean lags it for the first updates of each op "
    "(0.9^n of the bias after n), so the first candidate scores can differ slightly.",
)


def path_cell(seed: int, epoch: int, step: int) -> Genotype:
    """The uniformly random cell that the weight step (epoch, step) of run ``seed`` trains."""
    return uniform_cell(torch.Generator().manual_seed(derive_seed(seed, PATH_STREAM, epoch, step)))


def give_zero_grads(params: list[torch.Tensor]) -> None:
    """A zero gradient for every weight without one: SGD then still applies weight decay and momentum
    to it (a weight whose gradient is None, SGD skips)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


def give_path_grads(supernet: nn.Module, params: list[torch.Tensor], cell: Genotype) -> None:
    """A zero gradient for every weight in ``params`` without one, except the convs of the ops off ``cell``'s
    path (in every cell of ``supernet``): the weights xautodl's graph of a single-path step holds (module doc)."""
    ops = cell.op_indices()
    off = {id(p) for c in supernet.search_cells for e in range(NUM_EDGES) for op, _ in CONV_OPS
           if op != ops[e] for p in c.conv_weights(e, op)}
    give_zero_grads([p for p in params if id(p) not in off])


class PathTally:
    """Statistics of the single-path cells trained in one epoch (host-side: the cells are drawn there)."""

    def __init__(self) -> None:
        self.counts = np.zeros((NUM_EDGES, NUM_OPS), dtype=np.int64)
        self.param_free = 0
        self.cells: set[Genotype] = set()

    def add(self, cell: Genotype) -> None:
        self.counts[np.arange(NUM_EDGES), cell.op_indices()] += 1
        self.param_free += cell.param_free_count
        self.cells.add(cell)

    def records(self) -> dict[str, Any]:
        n = int(self.counts[0].sum())
        return {"paths_trained": n,
                "paths_distinct": len(self.cells),
                "path_param_free_mean": self.param_free / n if n else float("nan"),
                # (edge, op) frequency of the trained cells: uniform 1/5 up to sampling noise
                "path_op_freq": self.counts / n if n else np.full((NUM_EDGES, NUM_OPS), np.nan)}


class SinglePathSelection:
    """Mixin of a SearchMethod (with ``supernet``, ``w_params``, ``_forward(x, weights, active)`` and
    the options ``select_num``, ``select_batch_size``, ``unsampled_weights``): single-path steps and the end-of-epoch pick. Call
    :meth:`_init_selection` after ``nn.Module.__init__``; define :meth:`candidates`."""

    packable = False
    solo_reason = ("each step trains a randomly drawn single-path cell, so the seeds compute different ops "
                   "(a host-side mask), which one vmapped network cannot express")

    def graph_blocker(self) -> str | None:
        return "the single-path cell of each step is drawn on the host"

    def _init_selection(self) -> None:
        self.select_batches = self.options.select_num
        self.select_batch_size = self.options.select_batch_size
        # the last pick's op indices (-1: none yet); a buffer, so that checkpoints carry it
        self.register_buffer("picked_ops", torch.full((NUM_EDGES,), -1, dtype=torch.long, device=self.ctx.device))
        self._tally = PathTally()
        self._pick: CandidatePick | None = None   # this epoch's candidates and scores

    # ---- the single path of a step ------------------------------------------------------------
    def draw_path(self, epoch: int, step: int) -> Genotype:
        cell = path_cell(self.ctx.seed, epoch, step)
        self._tally.add(cell)
        return cell

    def path_logits(self, x: torch.Tensor, cell: Genotype) -> torch.Tensor:
        """The shared weights' output of the discrete cell ``cell``: one-hot weights (exactly 1 on the
        cell's ops, in ``x``'s dtype) and only those ops computed."""
        one_hot = cell.one_hot()
        return self._forward(x, torch.from_numpy(one_hot).to(x.device, x.dtype), one_hot > 0)

    evaluates_discrete_cells = True

    def discrete_logits(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        return self.path_logits(x, genotype)

    def complete_grads(self, cell: Genotype) -> None:
        """After the backward of the single-path step on ``cell``: a zero gradient for every weight
        xautodl's graph holds without it reaching the loss (see the module doc). With
        ``unsampled_weights=decayed`` for the ops outside the path too, as ``zero_grad()`` left the
        gradients of earlier steps before PyTorch 2.0."""
        if self.options.unsampled_weights == "decayed":
            give_zero_grads(self.w_params)
            return
        give_path_grads(self.supernet, self.w_params, cell)

    # ---- the end-of-epoch pick ----------------------------------------------------------------
    def candidates(self, epoch: int) -> list[Genotype]:
        raise NotImplementedError

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._tally = PathTally()
        self._pick = None

    def select(self, batches: Iterator[Batch], epoch: int) -> None:
        """xautodl ``search_find_best`` / ``get_best_arch``: ``network.eval()``, no gradients, each
        candidate on the next valid batch, top-1 accuracy, first argmax."""
        self.eval()
        self._pick = pick_best(self.candidates(epoch), batches, self.path_logits)
        self.picked_ops.copy_(torch.tensor(self._pick.best.op_indices()))

    def picked(self) -> Genotype | None:
        ops = self.picked_ops.tolist()
        return None if ops[0] < 0 else Genotype(tuple(OPS[k] for k in ops))

    def derive(self) -> Genotype:
        """The last pick; before any (a run diverged in its first epoch) the argmax of ``op_weights``."""
        return self.picked() or Genotype.from_weights(self.op_weights())

    def extra_records(self) -> dict[str, Any]:
        records = self._tally.records()
        if self._pick is not None:   # no pick in an epoch whose training diverged
            records.update(self._pick.to_record())
        return records
