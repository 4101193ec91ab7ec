"""RSPS: random search with parameter sharing (Li & Talwalkar, UAI 2019), as xautodl runs it on NB201.

xautodl ``exps/NAS-Bench-201-algos/RANDOM-NAS.py`` with ``search_model_random.py``:

* every weight step draws a uniformly random cell (each edge's op uniform over the five) and trains
  the shared weights of that single path on a train batch: zero_grad, forward (only the cell's ops:
  ``forward_dynamic``), backward, clip of the gradient norm to 5, SGD. There is no α;
* after every epoch, ``search_find_best``: ``select_num`` = 100 more random cells, each scored on
  one valid batch (of the config's ``test_batch_size`` 512, no augmentation) with the shared
  weights in eval mode; the first best is the epoch's cell (``genotypes[epoch]``), recorded and
  looked up in the benchmark every epoch;
* the supernet valid accuracy (``valid_func``) is that of a new random cell on each valid batch.

``op_weights`` records the sampling distribution, uniform 1/5 (RSPS has no architecture
parameters); ``path_op_freq`` the frequencies of the ops actually trained in the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...data.pipeline import derive_seed
from ...ranges import NON_NEGATIVE
from ...space.genotype import Genotype
from ...space.mixed_cell import MixedCell
from ...space.ops import NUM_EDGES, NUM_OPS
from ...space.supernet import Supernet
from ..base import Batch, SearchContext, SearchMethod, StepStats
from ..gradient.darts_family import LR_SCHEDULES, cosine_lr, schedule_progress
from ..options import XAUTODL_LR, option, reference
from ..registry import register
from .candidates import uniform_cell
from .single_path import DEPARTURES, SinglePathOptions, SinglePathSelection

RANDOM_NAS = reference("AutoDL-Projects exps/NAS-Bench-201-algos/RANDOM-NAS.py")


@dataclass(frozen=True)
class RspsOptions(SinglePathOptions):
    lr_schedule: str = option("per-epoch", XAUTODL_LR, "cosine annealing of the weight lr: per-epoch = changed "
                              "once per epoch; per-step = the same curve advanced every step", LR_SCHEDULES)
    grad_clip: float = option(5.0, RANDOM_NAS, "gradient-norm clip of the weights (clip_grad_norm_(network."
                              "parameters(), 5); 0 = off)", bounds=NON_NEGATIVE)


class Rsps(SinglePathSelection, SearchMethod):
    streams = ("train",)

    def __init__(self, options: RspsOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        track = options.track_running_stats
        self.supernet = Supernet(ctx.shape, lambda c: MixedCell(c, track_running_stats=track))
        self._init_selection()
        self.to(ctx.device)
        if ctx.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.w_params = list(self.supernet.parameters())
        self.w_opt = torch.optim.SGD(self.w_params, lr=options.w_lr, momentum=options.w_momentum,
                                     nesterov=options.w_nesterov, weight_decay=options.w_weight_decay)
        self._valid_cells = self._eval_generator(0)

    def _forward(self, x: torch.Tensor, weights: torch.Tensor, active) -> torch.Tensor:
        if self.ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.ctx.amp_dtype is None:
            return self.supernet(x, weights, active)
        with torch.autocast(self.ctx.device.type, dtype=self.ctx.amp_dtype):
            return self.supernet(x, weights, active).float()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"w": self.w_opt}

    def _set_lr(self, epoch: int, step: int) -> None:
        opts = self.options
        progress = schedule_progress(opts.lr_schedule, epoch, step, self.ctx.steps_per_epoch, self.ctx.epochs)
        for group in self.w_opt.param_groups:
            group["lr"] = cosine_lr(opts.w_lr, opts.w_lr_min, progress)

    def learning_rates(self) -> dict[str, float]:
        return {"lr_w": float(self.w_opt.param_groups[0]["lr"])}

    # ---- one step -----------------------------------------------------------------------------
    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        """RANDOM-NAS.py ``search_func``: a random cell, then zero_grad, forward, backward, clip, SGD."""
        self._set_lr(epoch, step)
        cell = self.draw_path(epoch, step)
        x, y = batches["train"]
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.path_logits(x, cell)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.complete_grads(cell)
        if self.options.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.w_params, self.options.grad_clip)
        self.w_opt.step()
        return StepStats(loss.detach() * y.shape[0], (logits.argmax(-1) == y).sum(), y.shape[0])

    # ---- evaluation and the pick --------------------------------------------------------------
    def _eval_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.ctx.seed, "rsps-valid", epoch))

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._valid_cells = self._eval_generator(epoch)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """RANDOM-NAS.py ``valid_func``: a new random cell for every valid batch (the same ones on resume)."""
        return self.path_logits(x, uniform_cell(self._valid_cells))

    def candidates(self, epoch: int) -> list[Genotype]:
        g = torch.Generator().manual_seed(derive_seed(self.ctx.seed, "rsps-select", epoch))
        return [uniform_cell(g) for _ in range(self.options.select_num)]

    # ---- no architecture parameters -----------------------------------------------------------
    def op_weights(self) -> np.ndarray:
        """The distribution the cells are drawn from: uniform over the five ops of every edge."""
        return np.full((NUM_EDGES, NUM_OPS), 1.0 / NUM_OPS)

    def arch_parameters(self) -> list[torch.Tensor]:
        return []


register(
    "rsps",
    summary="RSPS: random search with parameter sharing; uniform single-path weight steps, best of 100 "
            "random cells on the shared weights every epoch",
    paper="Li, Talwalkar. Random Search and Reproducibility for Neural Architecture Search. UAI 2019 "
          "(NB201 setting: xautodl RANDOM-NAS.py)",
    options=RspsOptions,
    departures=(
        "The paper's RSPS searches the DARTS space with its own schedule and a final evaluation stage; this is "
        "NB201's version (xautodl RANDOM-NAS.py), which picks among random cells by one valid batch each.",
        "No pick before the first epoch and no separate final pick: the last epoch's pick is the result "
        "(xautodl runs search_find_best once more after the last epoch, on new random cells).",
    ) + DEPARTURES,
    factory=Rsps,
)
