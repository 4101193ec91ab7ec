"""CDARTS, cyclic differentiable architecture search (Yu et al., TPAMI 2022), on the NB201 cell as its authors'
NB201 code runs it (microsoft/Cream ``CDARTS/benchmark201``: ``search.py``, ``core/search_function.py``,
``models/cdarts_controller.py``, ``models/loss.py``, ``configs/config.py``).

A search network (α-weighted supernet) and an evaluation network (the cell α derives) share a stem and two
distillation heads (:mod:`.cdarts_network`). An nbs epoch is one of their search iterations:

* the first ``pretrain_epochs`` (their ``retrain_warmup(train_loader, ..., super_flag=True)``): weight steps
  of the search network on train batches, α fixed;
* every later one: (1) derive the cell (argmax of α over all five ops, ``none`` included), point the
  evaluation network at it and build fresh optimizers (SGD for each network, Adam for α: their loop makes
  new ones every iteration, so no momentum carries over); (2) ``eval_warmup`` passes of evaluation-network
  steps on valid batches (cross-entropy); (3) the cyclic steps, each on one valid and one train batch:
  both networks on the valid batch, loss = (CE_search + CE_eval)/loss_alpha + loss_alpha·T²·KL(eval ‖ search)
  over the heads' and final logits, one backward, a clip, a step of the evaluation network and of α; then a
  weight step of the search network on the train batch.

Each pass reads a fraction of the data: ``int(batches·sample_ratio) + 1`` batches (their ``step_num``).
Learning rates are constant: their search.py builds cosine schedulers but never steps them.

Gradients follow the authors' ``zero_grad`` calls exactly, because their clips read them: every clip is
``clip_grad_norm_(model.parameters(), 5)`` over *all* parameters, so the search network's clip also counts α's
and the evaluation network's gradients left from the valid half of the step, the evaluation step's clip the
search weights' left from the last weight step, and during pretraining α's gradient, never zeroed, sums up
over every step. ``zero_grad`` zeroes in place, as on the PyTorch 1.x the authors ran (SETUP.md: pytorch ≥ 1.2),
so the heads, which get no gradient from the weight step, still take its weight decay and momentum there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...ranges import BATCH_SIZE, BELOW_ONE, EPOCHS, NON_NEGATIVE, POSITIVE, Range
from ...space.genotype import Genotype
from ...space.ops import NUM_EDGES, NUM_OPS
from ..base import Batch, SearchContext, SearchMethod, StepStats
from ..options import OURS, option, reference
from ..registry import register
from .cdarts_network import INTERACTIONS, CyclicNetworks, ensemble, interactive_loss

CONFIG = reference("Cream CDARTS/benchmark201/configs/config.py (SearchConfig defaults)")
SEARCH_PY = reference("Cream CDARTS/benchmark201/search.py")
STEP_PY = reference("Cream CDARTS/benchmark201/core/search_function.py")
CONTROLLER = reference("Cream CDARTS/benchmark201/models/cdarts_controller.py")
ZERO_GRAD = ("zero", "none")


@dataclass(frozen=True)
class CdartsOptions:
    """The authors' NB201 search (benchmark201/configs/config.py defaults; their run script is not published)."""

    epochs: int = option(30, OURS, "search iterations, pretraining included (--search_iter). A reading: config.py's "
                         "default 5 equals pretrain_epochs, which leaves no cyclic iteration, and the NB201 run "
                         "script is not in the repository; 30 = config.py's 5 pretraining epochs + 25 cyclic "
                         "iterations, the SEARCH_ITER=25 of the CIFAR-10 search log published beside the code "
                         "(benchmark201/search/cifar10-search/cifar10-search.log)", bounds=EPOCHS)
    pretrain_epochs: int = option(5, CONFIG, "first epochs that only train the search network's weights on "
                                  "train batches (--pretrain_epochs)", bounds=Range(0, 100_000))
    batch_size: int = option(128, CONFIG, "batch size of the train and valid batches (--batch_size)",
                             bounds=BATCH_SIZE)
    sample_ratio: float = option(0.2, CONFIG, "each pass reads int(batches·ratio) + 1 batches of its half "
                                 "(--sample_ratio; their step_num, applied to CIFAR too)",
                                 bounds=Range(0, 1, lo_open=True))
    # the search network
    w_lr: float = option(0.05, CONFIG, "SGD learning rate of the search network, constant (--w_lr; the cosine "
                         "scheduler search.py builds is never stepped)", bounds=POSITIVE)
    w_momentum: float = option(0.9, CONFIG, "SGD momentum of both networks (--w_momentum)", bounds=BELOW_ONE)
    w_nesterov: bool = option(False, SEARCH_PY, "Nesterov momentum of both networks (torch.optim.SGD without "
                              "nesterov)")
    w_weight_decay: float = option(3e-4, CONFIG, "weight decay of both networks (--w_weight_decay)",
                                   bounds=NON_NEGATIVE)
    grad_clip: float = option(5.0, CONFIG, "gradient-norm clip before every step, over all parameters "
                              "(--w_grad_clip; 0 = off)", bounds=NON_NEGATIVE)
    track_running_stats: bool = option(True, CONTROLLER, "BN running statistics in the search network's cells "
                                       "(CDARTSController(track_running_stats=True); affine off, --bn_affine)")
    # the evaluation network
    eval_lr: float = option(0.1, CONFIG, "SGD learning rate of the evaluation network, constant (--nasnet_lr)",
                            bounds=POSITIVE)
    eval_warmup: int = option(5, CONFIG, "passes of evaluation-network steps on valid batches before each "
                              "iteration's cyclic steps (--nasnet_warmup)", bounds=Range(0, 1_000))
    # the architecture
    a_lr: float = option(6e-4, CONFIG, "Adam learning rate of α (--alpha_lr)", bounds=POSITIVE)
    a_beta1: float = option(0.5, SEARCH_PY, "Adam β1 of α (betas=(0.5, 0.999))", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, SEARCH_PY, "Adam β2 of α", bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, CONFIG, "Adam weight decay of α (--alpha_weight_decay)",
                                   bounds=NON_NEGATIVE)
    alpha_init_std: float = option(1e-3, CONTROLLER, "α initialised as std·N(0, 1)", bounds=NON_NEGATIVE)
    # the distillation
    loss_alpha: float = option(1.0, CONFIG, "loss = (CE_search + CE_eval)/loss_alpha + loss_alpha·interaction "
                               "(--loss_alpha)", bounds=POSITIVE)
    temperature: float = option(2.0, CONFIG, "temperature T of the interaction, which is scaled by T² (--loss_T)",
                                bounds=POSITIVE)
    interaction: str = option("kl", CONFIG, "--interactive_type 0..3: kl = KLDivLoss(log_softmax(search/T), "
                              "softmax(eval/T)) at its default mean reduction; cosine, mse, smooth-l1",
                              INTERACTIONS)
    zero_grad: str = option("zero", STEP_PY, "what the authors' zero_grad() calls do: zero = fill .grad with "
                            "zeros (PyTorch 1.x, their runs), so SGD still applies weight decay and momentum to "
                            "a weight without gradient; none = set it to None (PyTorch ≥ 2), SGD skips it",
                            ZERO_GRAD)


class Cdarts(SearchMethod):
    streams = ("train", "valid")
    packable = False
    solo_reason = "its evaluation network changes with each seed's derived cell every epoch"
    step_text = ("pretraining epochs: weight steps of the search network; then each epoch: the derived cell's "
                 "evaluation network warmed up on valid batches, then steps that train it and α on a valid batch "
                 "(cross-entropy of both networks + distillation between them) and the search network on a "
                 "train batch")

    def __init__(self, options: CdartsOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self.nets = CyclicNetworks(ctx.shape, options.track_running_stats)
        self.alpha = nn.Parameter(options.alpha_init_std * torch.randn(NUM_EDGES, NUM_OPS))
        self.to(ctx.device)
        if ctx.channels_last:
            self.nets.to(memory_format=torch.channels_last)
        self.eval_ops: tuple[int, ...] | None = None   # the evaluation network's cell this epoch
        self._build_optimizers()

    def graph_blocker(self) -> str | None:
        return "its epochs switch between phases and rebuild the evaluation network and the optimizers"

    def _build_optimizers(self) -> None:
        o = self.options
        self.w_opt = torch.optim.SGD(self.nets.search_parameters(), lr=o.w_lr, momentum=o.w_momentum,
                                     nesterov=o.w_nesterov, weight_decay=o.w_weight_decay)
        self.a_opt = torch.optim.Adam([self.alpha], lr=o.a_lr, betas=(o.a_beta1, o.a_beta2),
                                      weight_decay=o.a_weight_decay)
        ops = self.eval_ops or (0,) * NUM_EDGES
        self.e_opt = torch.optim.SGD(self.nets.eval_parameters(ops), lr=o.eval_lr, momentum=o.w_momentum,
                                     nesterov=o.w_nesterov, weight_decay=o.w_weight_decay)

    # ---- the epoch's shape ---------------------------------------------------------------------------
    def cyclic(self, epoch: int) -> bool:
        return epoch >= self.options.pretrain_epochs

    def epoch_steps(self, epoch: int, steps: int) -> int:
        """One pass of int(steps·ratio) + 1 batches (at most all of them) while pretraining; in a cyclic epoch
        ``eval_warmup`` such passes for the evaluation network, then one of cyclic steps."""
        return self.pass_steps(steps) * (1 + (self.options.eval_warmup if self.cyclic(epoch) else 0))

    def pass_steps(self, steps: int) -> int:
        """Steps of one pass over a half of ``steps`` batches: int(steps·ratio) + 1, at most ``steps``."""
        return min(int(steps * self.options.sample_ratio) + 1, steps)

    def begin_epoch(self, epoch: int) -> None:
        if not self.cyclic(epoch):
            self.eval_ops = None
            return
        self.eval_ops = tuple(int(i) for i in self.derive().op_indices())
        # the authors build the evaluation layers afresh each iteration (no gradient yet) and new optimizers
        for p in self.nets.eval_layers.parameters():
            p.grad = None
        self._build_optimizers()

    # ---- steps -------------------------------------------------------------------------------------
    def _zero(self, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=self.options.zero_grad == "none")

    def _clip(self) -> None:
        if self.options.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters(), self.options.grad_clip)

    def _autocast(self):
        if self.ctx.amp_dtype is None:
            return torch.autocast(self.ctx.device.type, enabled=False)
        return torch.autocast(self.ctx.device.type, dtype=self.ctx.amp_dtype)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.ctx.channels_last else x

    def _full_precision(self, logits: torch.Tensor, aux: list[torch.Tensor]):
        """Logits out of autocast in float32 (losses in full precision); without autocast as they are."""
        if self.ctx.amp_dtype is None:
            return logits, aux
        return logits.float(), [a.float() for a in aux]

    def _search_logits(self, x: torch.Tensor, with_heads: bool = False):
        with self._autocast():
            out = self.nets.search(self._input(x), torch.softmax(self.alpha, dim=-1), with_heads)
        return self._full_precision(*out)

    def _eval_logits(self, x: torch.Tensor, with_heads: bool = False):
        assert self.eval_ops is not None
        with self._autocast():
            out = self.nets.evaluate(self._input(x), self.eval_ops, with_heads)
        return self._full_precision(*out)

    def _descend(self, opt: torch.optim.Optimizer, logits_of, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One cross-entropy step of ``opt`` as their retrain_warmup and weight step take it: zero_grad, forward,
        backward, the clip over every gradient, step. Returns (loss, logits), detached."""
        x, y = batch
        self._zero(opt)
        logits, _ = logits_of(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self._clip()
        opt.step()
        return loss.detach(), logits.detach()

    def _weight_step(self, batch: Batch) -> StepStats:
        """The search network's step on a train batch (pretraining, and the second half of a cyclic step).
        Their forward also computes the heads, whose output this loss does not read: skipped here."""
        loss, logits = self._descend(self.w_opt, self._search_logits, batch)
        y = batch[1]
        return StepStats(loss * y.numel(), (logits.argmax(-1) == y).sum(), y.numel())

    def _eval_warmup_step(self, batch: Batch) -> StepStats:
        loss, logits = self._descend(self.e_opt, self._eval_logits, batch)
        y = batch[1]
        zero = torch.zeros((), device=y.device)
        return StepStats(zero, zero.long(), 0, extra={"eval_warmup_loss": loss,
                                                      "eval_warmup_acc": 100.0 * (logits.argmax(-1) == y).float().mean()})

    def _cyclic_step(self, valid: Batch, train: Batch) -> StepStats:
        o = self.options
        x, y = valid
        self._zero(self.a_opt)
        self._zero(self.e_opt)
        search_logits, search_aux = self._search_logits(x, with_heads=True)
        eval_logits, eval_aux = self._eval_logits(x, with_heads=True)
        cls = (F.cross_entropy(search_logits, y) + F.cross_entropy(eval_logits, y)) / o.loss_alpha
        interaction = interactive_loss(ensemble(search_aux, search_logits), ensemble(eval_aux, eval_logits),
                                       o.temperature, o.interaction) * o.loss_alpha
        (cls + interaction).backward()
        self._clip()
        op_grad = self.alpha.grad.detach().clone()
        self.e_opt.step()
        self.a_opt.step()
        stats = self._weight_step(train)
        stats.op_grad = op_grad
        stats.extra = {"eval_loss": F.cross_entropy(eval_logits.detach(), y),
                       "eval_acc": 100.0 * (eval_logits.detach().argmax(-1) == y).float().mean(),
                       "valid_step_acc": 100.0 * (search_logits.detach().argmax(-1) == y).float().mean(),
                       "distill_loss": interaction.detach()}
        return stats

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        if not self.cyclic(epoch):
            return self._weight_step(batches["train"])
        if step < self.options.eval_warmup * self.pass_steps(self.ctx.steps_per_epoch):
            return self._eval_warmup_step(batches["valid"])
        return self._cyclic_step(batches["valid"], batches["train"])

    # ---- what is recorded --------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._search_logits(x)[0]

    def op_weights(self) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.alpha, dim=-1).float().cpu().numpy()

    def derive(self) -> Genotype:
        """Argmax of α over all five ops, ``none`` included (their ``genotype()``)."""
        return Genotype.from_weights(self.op_weights(), include_none=True)

    def learning_rates(self) -> dict[str, float]:
        return {"lr_w": float(self.w_opt.param_groups[0]["lr"]), "lr_alpha": float(self.a_opt.param_groups[0]["lr"]),
                "lr_eval": float(self.e_opt.param_groups[0]["lr"])}

    def extra_records(self) -> dict[str, Any]:
        cell = Genotype.from_op_indices(self.eval_ops).to_str() if self.eval_ops is not None else ""
        return {"cdarts_phase": "cyclic" if self.eval_ops is not None else "pretrain", "eval_cell": cell}

    def arch_parameters(self) -> list[torch.Tensor]:
        return [self.alpha]

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The search network's cross-entropy under softmax(α) (the Hessian indicator; α's own objective also
        holds the evaluation network's term and the distillation)."""
        return F.cross_entropy(self._search_logits(x)[0], y)

    def shift_invariant_groups(self) -> list[list[int]] | None:
        return [list(range(e * NUM_OPS, (e + 1) * NUM_OPS)) for e in range(NUM_EDGES)]

    # ---- checkpointing -------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"w": self.w_opt, "alpha": self.a_opt, "eval": self.e_opt}

    def checkpoint_state(self) -> dict[str, Any]:
        """The weights, the search optimizer (its momentum carries across pretraining epochs; a cyclic epoch
        builds new optimizers) and every gradient left in .grad, which the next clips read."""
        grads = {name: p.grad.detach().clone() for name, p in self.named_parameters() if p.grad is not None}
        return {"module": self.state_dict(), "w_opt": self.w_opt.state_dict(), "grads": grads}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["module"])
        self.w_opt.load_state_dict(state["w_opt"])
        params = dict(self.named_parameters())
        for name, grad in state["grads"].items():
            params[name].grad = grad.to(params[name].device)


register(
    "cdarts",
    summary="CDARTS: search and evaluation networks trained in a cycle with distillation between them "
            "(the authors' NB201 code); 5 pretraining + 25 cyclic iterations",
    paper="Yu, Peng, Huang, Fu, Du, Wang, Ling. Cyclic Differentiable Architecture Search. TPAMI 2022 "
          "(arXiv:2006.10724); code: microsoft/Cream CDARTS/benchmark201",
    options=CdartsOptions,
    departures=(
        "The authors' NB201 run script is not published and config.py's defaults (5 iterations, 5 of them "
        "pretraining) search nothing: the 30 epochs (25 cyclic) are a reading; every other default is config.py's.",
        "A C-channel stem (NB201's): config.py's stem_multiplier 3 cannot run their SearchCell (module "
        "cdarts_network).",
        "Batches come from nbs' streams, one shuffle per epoch continued across passes; theirs restart the valid "
        "loader for each warm-up pass with the same five shuffles every iteration (set_epoch(0..4)).",
        "The weight steps skip the distillation heads' forward, whose logits their loss does not read (only the "
        "heads' BN statistics differ; the heads never run in eval mode).",
        "The evaluation network's op pool keeps its BN running statistics across iterations (theirs copies "
        "parameters only); the evaluation network only ever runs in training mode, so nothing reads them.",
        "valid_acc is the search network's (softmax(α)) in eval mode, like every nbs method; the evaluation "
        "network's accuracy on the cyclic steps' valid batches is recorded as eval_acc.",
    ),
    factory=Cdarts,
)
