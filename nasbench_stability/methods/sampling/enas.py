"""ENAS (Pham et al., ICML 2018) on the NB201 cell, as xautodl ``exps/NAS-Bench-201-algos/ENAS.py`` runs it.

One epoch, in the reference's order:

1. ``step`` (``train_shared_cnn``): per train batch, the controller draws a cell (no gradient) and the
   shared weights take one SGD step on that single-path cell; only its ops are computed (the cell's
   ``active`` mask with one-hot weights), clip 5 on the network's gradients.
2. ``select`` (``train_controller``, then ``get_best_arch``), on shuffled valid batches with the training
   augmentation (ENAS.py gives the valid loader the train transform), the shared network in eval mode
   and without gradients: ``controller_train_steps × controller_num_aggregate`` sampled cells, each
   scored on its own batch, train the controller by REINFORCE (:func:`.enas_controller.train_controller`:
   reward = top-1 fraction + 1e-4·entropy, the baseline, the gradient averaged over 20 samples and
   clipped at 5, Adam); then ``select_samples`` cells drawn from the trained controller are scored on one
   batch each and the best is the epoch's derived cell (``final_samples`` = 100 in the last epoch).
3. The engine's supernet evaluation (ENAS.py ``valid_func``) scores that derived cell on the valid half.

Records beyond the common ones: ``op_weights`` is the (6, 5) matrix of the controller policy's exact
marginals P(edge e runs op o). The policy is autoregressive (each decision depends on the ops drawn
before it), so no single softmax is "the" weight of an edge; the marginal sums the policy over all
5^5 cells of the other edges, which :meth:`.Controller.joint` enumerates exactly (15,625 cells, one
batched LSTM pass per edge) instead of estimating from samples. ``controller_greedy_*`` is the cell of
argmax decisions with each decision's distribution along that path, ``controller_mode_*`` the single most
likely cell, ``controller_policy_entropy`` the joint's entropy (nats; ln 15,625 ≈ 9.66 when uniform);
``controller_reward_mean``, ``controller_baseline`` (carried into the next epoch), ``controller_entropy_mean``
(sample entropy), ``controller_sample_acc`` (%, the sampled cells' mean top-1), ``controller_grad_norm``
(mean before clipping), and ``shared_op_freq``, how often each op ran on each edge in the weight steps;
plus the candidates scored and the pick (:meth:`.candidates.CandidatePick.to_record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ...data.pipeline import derive_seed
from ...ranges import BATCH_SIZE, BELOW_ONE, COUNT, EPOCHS, FRACTION, NON_NEGATIVE, POSITIVE, Range
from ...space.genotype import Genotype
from ...space.mixed_cell import MixedCell
from ...space.supernet import Supernet
from ..base import Batch, SearchContext, SearchMethod, StepStats
from ..options import option, reference
from ..registry import register
from .candidates import CandidatePick, pick_best
from .enas_controller import BASELINE_UPDATES, Controller, ControllerSettings, ControllerTrace, marginals, train_controller
from .single_path import UNSAMPLED, give_path_grads

ENAS_PY = reference("AutoDL-Projects exps/NAS-Bench-201-algos/ENAS.py")
ENAS_CONFIG = reference("AutoDL-Projects configs/nas-benchmark/algos/ENAS.config")
ENAS_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/ENAS.sh")
ENAS_CONTROLLER = reference("AutoDL-Projects xautodl/models/cell_searchs/search_model_enas_utils.py (Controller)")
ENAS_BN = reference("AutoDL-Projects docs/NAS-Bench-201.md (`ENAS.sh cifar10 1 -1`: BN=1)")


@dataclass(frozen=True)
class EnasOptions:
    """xautodl's NB201 ENAS setting (ENAS.config, ENAS.sh, ENAS.py, the Controller's defaults)."""

    epochs: int = option(250, ENAS_CONFIG, "search epochs", bounds=EPOCHS)
    batch_size: int = option(128, ENAS_CONFIG, "batch size of the train and valid batches", bounds=BATCH_SIZE)
    # shared weights
    w_lr: float = option(0.05, ENAS_CONFIG, "SGD learning rate of the shared weights (LR)", bounds=POSITIVE)
    w_lr_min: float = option(5e-4, ENAS_CONFIG, "floor of the cosine (eta_min)", bounds=NON_NEGATIVE)
    lr_t_max: int = option(10, ENAS_CONFIG, "T_max of xautodl's CosineAnnealingLR: lr(e) = w_lr_min + (w_lr − "
                           "w_lr_min)(1 + cos(π e/T_max))/2 at every epoch e, changed once per epoch. ENAS.config "
                           "sets T_max = 10 with 250 epochs, so the rate reaches its floor at epoch 10, is back at "
                           "w_lr at 20, and so on (a cosine of period 20, no restarts); 0 = T_max = epochs",
                           bounds=Range(0, 100_000))
    w_momentum: float = option(0.9, ENAS_CONFIG, "SGD momentum", bounds=BELOW_ONE)
    w_nesterov: bool = option(True, ENAS_CONFIG, "Nesterov momentum")
    w_weight_decay: float = option(2.5e-4, ENAS_CONFIG, "weight decay of the shared weights (decay)",
                                   bounds=NON_NEGATIVE)
    grad_clip: float = option(5.0, ENAS_PY, "gradient-norm clip of the shared weights (train_shared_cnn: "
                              "clip_grad_norm_(shared_cnn.parameters(), 5); 0 = off)", bounds=NON_NEGATIVE)
    unsampled_weights: str = option("decayed", ENAS_PY, "weights of the ops outside a step's cell: decayed = "
                                    "ENAS.py's optimizer.zero_grad() on the PyTorch 1.x of NB201's published runs, "
                                    "which zeroes gradients instead of dropping them: an op once trained keeps a "
                                    "zero gradient, so SGD's weight decay and momentum move it in every later step; "
                                    "skipped = the PyTorch ≥ 2 zero_grad(): SGD leaves them alone (the same option and "
                                    "default as gdas, rsps and setn)", UNSAMPLED)
    track_running_stats: bool = option(True, ENAS_BN, "BN running statistics in the searchable cells. Here they "
                                       "matter for the search itself: the controller's rewards and the pick "
                                       "are computed in eval mode (ENAS.py shared_cnn.eval())")
    # controller: network
    lstm_size: int = option(32, ENAS_CONTROLLER, "LSTM hidden size (and embedding size)", bounds=Range(1, 4096))
    lstm_layers: int = option(2, ENAS_CONTROLLER, "LSTM layers", bounds=Range(1, 64))
    tanh_constant: float = option(2.5, ENAS_CONTROLLER, "logits = tanh_constant·tanh(w_pred(h)/temperature)",
                                  bounds=POSITIVE)
    temperature: float = option(5.0, ENAS_CONTROLLER, "see tanh_constant", bounds=POSITIVE)
    # controller: optimizer
    a_lr: float = option(1e-3, ENAS_CONFIG, "Adam learning rate of the controller (controller_lr)", bounds=POSITIVE)
    a_beta1: float = option(0.0, ENAS_CONFIG, "Adam β1 of the controller (controller_betas)", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, ENAS_CONFIG, "Adam β2 of the controller (controller_betas)", bounds=BELOW_ONE)
    a_eps: float = option(1e-3, ENAS_CONFIG, "Adam ε of the controller (controller_eps)", bounds=POSITIVE)
    a_weight_decay: float = option(0.0, ENAS_PY, "Adam weight decay of the controller (ENAS.py passes none)",
                                   bounds=NON_NEGATIVE)
    a_grad_clip: float = option(5.0, ENAS_PY, "gradient-norm clip of the controller before each step "
                                "(train_controller: clip_grad_norm_(controller.parameters(), 5.0); 0 = off)",
                                bounds=NON_NEGATIVE)
    # controller: REINFORCE
    controller_train_steps: int = option(50, ENAS_SH, "controller optimizer steps per epoch", bounds=COUNT)
    controller_num_aggregate: int = option(20, ENAS_SH, "sampled cells (one valid batch each) whose gradients one "
                                           "controller step averages", bounds=COUNT)
    entropy_weight: float = option(1e-4, ENAS_SH, "reward = top-1 fraction + entropy_weight·(sum of the six "
                                   "decisions' entropies) (--controller_entropy_weight)", bounds=NON_NEGATIVE)
    baseline_decay: float = option(0.99, ENAS_SH, "d in baseline = b − (1 − d)(b − reward) (--controller_bl_dec)",
                                   bounds=FRACTION)
    baseline_update: str = option("xautodl", ENAS_PY, "xautodl = every sample of an epoch's controller phase uses "
                                  "the baseline carried into that phase (ENAS.py never updates config.baseline in "
                                  "its loop; the first epoch has none, so each sample's baseline is its own "
                                  "accuracy), and the phase passes on its last sample's; per-sample = the moving "
                                  "average updated after every sample, detached (TF ENAS, the paper)",
                                  BASELINE_UPDATES)
    # the pick
    select_samples: int = option(10, ENAS_PY, "cells drawn and scored (one valid batch each) for each epoch's "
                                 "derived cell (get_best_arch's default n_samples)", bounds=COUNT)
    final_samples: int = option(100, ENAS_SH, "cells drawn and scored for the last epoch's derived cell "
                                "(--controller_num_samples, the final pick)", bounds=COUNT)
    valid_augment: bool = option(True, ENAS_PY, "the controller phase and the pick read valid batches with the "
                                 "training augmentation (ENAS.py sets the valid loader's transform to the train one)")


class Enas(SearchMethod):
    streams = ("train",)
    packable = False
    solo_reason = ("each seed's controller draws its own cell every step (computed on the host: the single-path "
                   "mask) and trains on its own REINFORCE loop")
    evaluates_discrete_cells = True
    step_text = ("weight step on a train batch through a cell the controller draws; after the epoch's steps, "
                 "the controller's REINFORCE phase and the pick of the derived cell on valid batches")

    def __init__(self, options: EnasOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        track = options.track_running_stats
        self.supernet = Supernet(ctx.shape, lambda c: MixedCell(c, track_running_stats=track))
        self.controller = Controller(lstm_size=options.lstm_size, lstm_num_layers=options.lstm_layers,
                                     tanh_constant=options.tanh_constant, temperature=options.temperature)
        # the REINFORCE baseline carried between epochs; NaN = none yet (ENAS.py starts with None)
        self.register_buffer("baseline", torch.tensor(math.nan))
        self.to(ctx.device)
        if ctx.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.select_augment = options.valid_augment
        self.w_params = list(self.supernet.parameters())
        self.w_opt = torch.optim.SGD(self.w_params, lr=options.w_lr, momentum=options.w_momentum,
                                     nesterov=options.w_nesterov, weight_decay=options.w_weight_decay)
        self.a_opt = torch.optim.Adam(self.controller.parameters(), lr=options.a_lr,
                                      betas=(options.a_beta1, options.a_beta2), eps=options.a_eps,
                                      weight_decay=options.a_weight_decay)
        self._epoch = 0
        self._pick: CandidatePick | None = None
        self._trace: ControllerTrace | None = None

    def graph_blocker(self) -> str | None:
        return "the controller draws each step's cell, and the cell's op mask is host-side"

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"w": self.w_opt, "controller": self.a_opt}

    def arch_parameters(self) -> list[torch.Tensor]:
        return []   # no α: the architecture is a policy, the valid loss is not differentiable in it

    # ---- schedule ---------------------------------------------------------------------------
    def _set_lr(self, epoch: int, step: int = 0) -> None:
        """xautodl CosineAnnealingLR at ``epoch`` (its per-step update only acts during a warm-up, 0 here)."""
        o = self.options
        t_max = o.lr_t_max or self.ctx.epochs
        lr = o.w_lr_min + (o.w_lr - o.w_lr_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2
        for group in self.w_opt.param_groups:
            group["lr"] = lr

    def learning_rates(self) -> dict[str, float]:
        return {"lr_w": float(self.w_opt.param_groups[0]["lr"]), "lr_controller": float(self.a_opt.param_groups[0]["lr"])}

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._set_lr(epoch)
        self._pick = self._trace = None

    # ---- the shared weights -----------------------------------------------------------------
    def _generator(self, stream: str, *keys: int) -> torch.Generator:
        """Draws are a function of (seed, stream, keys): a resumed run draws the same cells."""
        return torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, stream, *keys))

    def discrete_logits(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        """The single-path cell ``genotype``: one-hot weights, only its ops computed."""
        one_hot = genotype.one_hot()
        weights = torch.from_numpy(one_hot).to(x.device)
        if self.ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.ctx.amp_dtype is not None:
            with torch.autocast(self.ctx.device.type, dtype=self.ctx.amp_dtype):
                return self.supernet(x, weights, one_hot > 0).float()
        return self.supernet(x, weights, one_hot > 0)

    def sample_cell(self, epoch: int, step: int) -> Genotype:
        """The cell of weight step (epoch, step), drawn from the controller without gradients."""
        with torch.no_grad():
            return self.controller.sample(self._generator("enas-shared", epoch, step)).cells()[0]

    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        x, y = batches["train"]
        cell = self.sample_cell(epoch, step)
        self.w_opt.zero_grad(set_to_none=self.options.unsampled_weights == "skipped")
        logits = self.discrete_logits(x, cell)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        # xautodl's none is x·0, which keeps the whole path in its graph: a (zero) gradient for its weights
        # that do not reach the loss, which nbs does not compute
        give_path_grads(self.supernet, self.w_params, cell)
        if self.options.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.w_params, self.options.grad_clip)
        self.w_opt.step()
        n = y.shape[0]
        stats = StepStats(loss.detach() * n, (logits.argmax(-1) == y).sum(), n)
        stats.extra["shared_op_freq"] = torch.from_numpy(cell.one_hot()).to(x.device)
        return stats

    # ---- the controller and the pick --------------------------------------------------------
    def pick_samples(self, epoch: int) -> int:
        return self.options.final_samples if epoch == self.ctx.epochs - 1 else self.options.select_samples

    @property
    def select_batches(self) -> int:  # type: ignore[override]  (the engine reads it each epoch)
        o = self.options
        return o.controller_train_steps * o.controller_num_aggregate + self.pick_samples(self._epoch)

    def _accuracy(self, cell: Genotype, batch: Batch) -> torch.Tensor:
        """Top-1 fraction of ``cell`` on ``batch`` with the shared weights, no gradient (the reward's term)."""
        x, y = batch
        with torch.no_grad():
            return (self.discrete_logits(x, cell).argmax(-1) == y).float().mean()

    def select(self, batches: Iterator[Batch], epoch: int) -> None:
        o = self.options
        batches = iter(batches)
        self.supernet.eval()   # ENAS.py: shared_cnn.eval() in train_controller and get_best_arch
        settings = ControllerSettings(o.controller_train_steps, o.controller_num_aggregate, o.entropy_weight,
                                      o.baseline_decay, o.baseline_update, o.a_grad_clip)
        carried = None if torch.isnan(self.baseline) else self.baseline.clone()
        self._trace = train_controller(self.controller, self.a_opt, self._accuracy, batches,
                                       self._generator("enas-controller", epoch), settings, carried)
        self.baseline.copy_(self._trace.final_baseline.detach())
        self.controller.eval()   # get_best_arch: controller.eval(), cells drawn (not argmax) without gradients
        with torch.no_grad():
            cells = self.controller.sample(self._generator("enas-pick", epoch), self.pick_samples(epoch)).cells()
        self._pick = pick_best(cells, batches, self.discrete_logits)

    def greedy(self):
        with torch.no_grad():
            return self.controller.greedy()

    def derive(self) -> Genotype:
        """This epoch's pick; the controller's greedy cell in an epoch without one (a diverged epoch)."""
        return self._pick.best if self._pick is not None else self.greedy().cells()[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.discrete_logits(x, self.derive())

    def op_weights(self) -> np.ndarray:
        return marginals(self.controller.joint()).cpu().numpy()

    def extra_records(self) -> dict[str, Any]:
        joint = self.controller.joint().double()
        greedy = self.greedy()
        mode = np.unravel_index(int(joint.argmax()), tuple(joint.shape))
        record = {
            "controller_greedy_genotype": greedy.cells()[0].to_str(),
            "controller_greedy_probs": greedy.probs[0].double().cpu().numpy(),
            "controller_greedy_prob": float(greedy.log_prob[0].exp()),
            "controller_mode_genotype": Genotype.from_op_indices(mode).to_str(),
            "controller_mode_prob": float(joint.max()),
            "controller_policy_entropy": float(-(joint * joint.clamp_min(1e-300).log()).sum()),
            "controller_baseline": float(self.baseline),
            **self._trace_record(),
        }
        record.update(self._pick.to_record() if self._pick is not None else NO_PICK)
        return record

    def _trace_record(self) -> dict[str, float]:
        t = self._trace
        if t is None:
            return dict.fromkeys(("controller_reward_mean", "controller_entropy_mean", "controller_sample_acc",
                                  "controller_loss_mean", "controller_grad_norm"), math.nan)
        return {"controller_reward_mean": float(t.reward.mean()), "controller_entropy_mean": float(t.entropy.mean()),
                "controller_sample_acc": 100.0 * float(t.accuracy.mean()),
                "controller_loss_mean": float(t.loss.mean()), "controller_grad_norm": float(t.grad_norm.mean())}

    # ---- checkpointing ----------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        # which weights hold a (zero) .grad: with unsampled_weights=decayed SGD keeps moving them, so a resumed
        # run must have them too (the optimizer state alone does not say so when momentum is 0)
        return {**super().checkpoint_state(), "w_grad_held": [p.grad is not None for p in self.w_params]}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        for p, held in zip(self.w_params, state["w_grad_held"], strict=True):
            p.grad = torch.zeros_like(p) if held else None


# the pick's record columns in an epoch without a pick (same columns and types every epoch)
NO_PICK = {"candidate_genotypes": [], "candidate_valid_acc": np.zeros(0), "picked_index": -1,
           "picked_valid_acc": math.nan, "candidates_distinct": 0}

register(
    "enas",
    summary="ENAS: an LSTM controller samples cells; shared weights train on its samples, the controller by "
            "REINFORCE on their valid accuracy",
    paper="Pham et al., ICML 2018 (Efficient Neural Architecture Search via Parameter Sharing); NB201 setting "
          "and code from xautodl exps/NAS-Bench-201-algos/ENAS.py (Dong & Yang, ICLR 2020)",
    options=EnasOptions,
    departures=(
        "Derived cell every epoch: ENAS.py picks one every epoch (get_best_arch, n_samples=10) and after the last "
        "epoch once more from --controller_num_samples 100 cells; nbs records the 100-cell pick as the last "
        "epoch's cell in place of that epoch's 10-cell pick (the reference logs both; its answer is the 100-cell one).",
        "Cells are drawn with generators seeded from (seed, epoch, step) instead of the global RNG: the same "
        "distribution, and a resumed run draws the same cells.",
        "Valid batches of the controller phase and the pick come from one shuffled stream that continues into a "
        "fresh pass when it runs out; ENAS.py's get_best_arch starts a new shuffle of its valid loader.",
        "The recorded valid_acc of the pick (ENAS.py valid_func) is the engine's evaluation: valid images without "
        "augmentation (eval_batches of them); ENAS.py's valid loader carries the train augmentation there too. "
        "It is a record only and does not steer the search.",
        "xautodl's search-cell convolutions carry a bias (bias=not affine), nbs's none: training-mode BN removes "
        "it, so no weight step differs; in eval mode (the controller's rewards, the pick) BN's running mean lags "
        "it for the first updates of each op, so early scores can differ slightly.",
        "The paper's controller also picks each node's inputs (with skip attention in the macro space); on the NB201 "
        "cell the inputs are fixed, so it makes one op decision per edge, as xautodl's NB201 controller does.",
    ),
)(Enas)

