"""Shared machinery of the gradient-based methods with one α matrix shared by all cells.

DARTS-V1/V2 and Single-DARTS differ only in the activation on α, the optimization mode, the order
of the α gradient and the step order, so they are one class with different option defaults. Later
methods (MergeNAS, EDAS, DNAS, factorized) subclass :class:`DartsFamily` and override the cell, the
weights or the architecture factors.

Optimization modes (Single-DARTS Table 4):
* ``bilevel``: the α step uses a batch of the ``valid`` half, the w step a batch of ``train``;
* ``single-level-two-batches``: both from ``train``, different batches;
* ``single-level``: one forward/backward on one ``train`` batch gives ∇w and ∇α; both step.

Step order in the two-batch modes (``step_order``): ``w-alpha`` takes the weight step first, so the
α step sees the updated weights (xautodl ``DARTS-V1.py``, NATS ``search-cell.py``, A-DARTS'
Algorithm 1); ``alpha-w`` takes the α step first (xautodl ``DARTS-V2.py``, the DARTS code).

Gradient clip (``clip_includes_alpha``): xautodl clips ``network.parameters()``, which include the
architecture parameters, and at that moment α's ``.grad`` holds the gradient of the last α step
plus ∇α L_train of the weight step's backward. That (small) term enters the total norm; nbs
reproduces it where the reference is xautodl, so that its steps equal the reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...ranges import BATCH_SIZE, BELOW_ONE, EPOCHS, EVERY, NON_NEGATIVE, POSITIVE
from ...space.genotype import Genotype
from ...space.mixed_cell import MixedCell
from ...space.ops import NUM_EDGES, NUM_OPS, OP_INDEX
from ...space.supernet import Supernet
from ..base import Batch, SearchContext, SearchMethod, StepStats
from ..packing import capturable_adam, clip_per_seed, packed_forward, set_capturable
from ..options import (OURS, SINGLE_DARTS_ABLATION, XAUTODL_BN, XAUTODL_CONFIG, XAUTODL_LR, XAUTODL_NET, XAUTODL_SH,
                      XAUTODL_V1, XAUTODL_V2, option)

MODES = ("bilevel", "single-level-two-batches", "single-level")
ACTIVATIONS = ("softmax", "sigmoid")
STEP_ORDERS = ("w-alpha", "alpha-w")
LR_SCHEDULES = ("per-epoch", "per-step")
ARCH_OPTIMIZERS = ("adam", "sgd")
# the batch the architecture step uses, by optimization mode
ARCH_STREAM = {"bilevel": "valid", "single-level-two-batches": "train2", "single-level": "train"}
_LEARNABLE = (OP_INDEX["nor_conv_1x1"], OP_INDEX["nor_conv_3x3"])


@dataclass(frozen=True)
class DartsOptions:
    """Defaults are the NB201 reference (xautodl DARTS-V1) unless a subclass says otherwise."""

    epochs: int = option(50, XAUTODL_CONFIG, "search epochs", bounds=EPOCHS)
    batch_size: int = option(64, XAUTODL_CONFIG, "batch size of every stream", bounds=BATCH_SIZE)
    mode: str = option("bilevel", XAUTODL_V1, "optimization mode", MODES)
    activation: str = option("softmax", XAUTODL_NET, "activation on α", ACTIVATIONS)
    order: int = option(1, XAUTODL_V1, "1 = first-order α gradient, 2 = unrolled second order", (1, 2))
    step_order: str = option("w-alpha", XAUTODL_V1, "two-batch modes: w-alpha = weight step on the train batch, "
                             "then the α step at the updated weights; alpha-w = α step first", STEP_ORDERS)
    w_lr: float = option(0.025, XAUTODL_CONFIG, "SGD learning rate of the network weights", bounds=POSITIVE)
    w_lr_min: float = option(0.001, XAUTODL_CONFIG, "cosine annealing floor of the weight learning rate",
                             bounds=NON_NEGATIVE)
    lr_schedule: str = option("per-epoch", XAUTODL_LR, "cosine annealing of the weight lr: per-epoch = "
                              "lr(e) = min + (lr - min)(1 + cos(π e/E))/2, changed once per epoch; per-step = "
                              "the same curve with e advanced every step", LR_SCHEDULES)
    w_momentum: float = option(0.9, XAUTODL_CONFIG, "SGD momentum", bounds=BELOW_ONE)
    w_nesterov: bool = option(True, XAUTODL_CONFIG, "Nesterov momentum")
    w_weight_decay: float = option(5e-4, XAUTODL_CONFIG, "weight decay of the network weights", bounds=NON_NEGATIVE)
    grad_clip: float = option(5.0, XAUTODL_V1, "gradient-norm clip (--gradient_clip 5; 0 = off)", bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(True, XAUTODL_V1, "the clip's total norm also counts α's gradient as "
                                       "the reference leaves it in .grad (clip_grad_norm_(network.parameters())): "
                                       "the last α step's gradient + ∇α L_train; false = the weights alone")
    track_running_stats: bool = option(True, XAUTODL_BN, "BN running statistics in the searchable cells. The "
                                       "search (w, α) is the same either way (training-mode BN normalises "
                                       "with batch statistics); it changes the eval-mode supernet valid "
                                       "accuracy and the discrete-cell ranking analyses")
    a_optimizer: str = option("adam", XAUTODL_V1, "optimizer of α: adam (a_beta1, a_beta2) or sgd (momentum "
                              "a_momentum, fixed lr; Single-DARTS' ablations, Tables 4 and 5)", ARCH_OPTIMIZERS)
    a_lr: float = option(3e-4, XAUTODL_SH, "learning rate of α, fixed (--arch_learning_rate)", bounds=POSITIVE)
    a_momentum: float = option(0.9, SINGLE_DARTS_ABLATION, "momentum of α's SGD (a_optimizer=sgd only)",
                               bounds=BELOW_ONE)
    a_beta1: float = option(0.5, XAUTODL_V1, "Adam β1 of α", bounds=BELOW_ONE)
    a_beta2: float = option(0.999, XAUTODL_V1, "Adam β2 of α", bounds=BELOW_ONE)
    a_weight_decay: float = option(1e-3, XAUTODL_SH, "Adam weight decay (L2) of α (--arch_weight_decay)",
                                   bounds=NON_NEGATIVE)
    alpha_init_std: float = option(1e-3, XAUTODL_NET, "α initialised as std·N(0, 1)", bounds=NON_NEGATIVE)
    unrolled_eps: float = option(0.01, XAUTODL_V2, "finite-difference ε numerator for order 2 (DARTS: 0.01/‖∇w'L‖)",
                                 bounds=POSITIVE)
    gc_every: int = option(10, OURS, "measure gradient correlation every k steps (0 = never)", bounds=EVERY)
    derive_none: bool = option(True, XAUTODL_NET, "'none' takes part in the argmax derivation; false leaves it out "
                               "(with sigmoid α, 'none' gets no gradient and can win by standing still)")


def arch_optimizer(params, options: DartsOptions, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer of an architecture factor: Adam (the reference) or SGD with momentum (``a_optimizer``)."""
    if options.a_optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.a_lr, momentum=options.a_momentum,
                               weight_decay=options.a_weight_decay)
    return capturable_adam(params, device, lr=options.a_lr, betas=(options.a_beta1, options.a_beta2),
                           weight_decay=options.a_weight_decay)


def cosine_lr(base: float, floor: float, progress: float) -> float:
    """Cosine annealing from ``base`` to ``floor`` as ``progress`` goes 0 → 1."""
    return floor + (base - floor) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2


def schedule_progress(schedule: str, epoch: int, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Where in the cosine curve (epoch, step) is. ``per-epoch`` is xautodl's CosineAnnealingLR, whose
    rate depends on the epoch alone (its per-step ``current_iter`` only acts during warm-up)."""
    within = step / max(steps_per_epoch, 1) if schedule == "per-step" else 0.0
    return (epoch + within) / max(epochs, 1)


class DartsFamily(SearchMethod):
    """Solo (``pack_size`` None) or K seeds packed (:func:`methods.packing.pack`): every parameter,
    buffer and optimizer state then has a leading seed axis of length K, batches are (K, B, ...), the
    loss is the per-seed mean loss summed over seeds (so each seed's gradient is its solo gradient),
    and clip norms, finite-difference ε and gradient correlation are per seed."""

    packable = True

    def __init__(self, options: DartsOptions, ctx: SearchContext) -> None:
        super().__init__(options, ctx)
        self.supernet = self.build_supernet()
        self.alpha = nn.Parameter(options.alpha_init_std * torch.randn(*self.alpha_shape()))
        # the gradient of the last α step, as xautodl leaves it in α.grad until its next weight step's
        # clip (clip_includes_alpha); a buffer, so that a resumed run clips exactly as an uninterrupted one
        self.register_buffer("alpha_grad_left", torch.zeros_like(self.alpha.detach()))
        self.to(ctx.device)
        if ctx.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.streams = {"bilevel": ("train", "valid"), "single-level-two-batches": ("train", "train2"),
                        "single-level": ("train",)}[options.mode]
        self.w_params = [p for p in self.supernet.parameters()]
        self.w_opt = torch.optim.SGD(self.w_params, lr=options.w_lr, momentum=options.w_momentum,
                                     nesterov=options.w_nesterov, weight_decay=options.w_weight_decay)
        self.a_opt = arch_optimizer(self.arch_parameters(), options, ctx.device)
        self._gc_groups = self._learnable_op_params()

    # ---- construction hooks -----------------------------------------------------------------
    def build_supernet(self) -> Supernet:
        track = self.options.track_running_stats
        return Supernet(self.ctx.shape, lambda c: MixedCell(c, track_running_stats=track))

    def alpha_shape(self) -> tuple[int, ...]:
        return (NUM_EDGES, NUM_OPS)

    def arch_parameters(self) -> list[torch.Tensor]:
        return [self.alpha]

    def shift_invariant_groups(self) -> list[list[int]] | None:
        """Each edge's row of α, when α reaches the loss only through the softmax over that edge's ops.
        A subclass that changes how α reaches the loss (its activation, forward or loss) makes no promise
        unless it says so itself."""
        cls = type(self)
        same_path = all(getattr(cls, name) is getattr(DartsFamily, name)
                        for name in ("activate", "arch_loss", "arch_parameters", "_forward", "loss_and_logits"))
        if self.options.activation != "softmax" or not same_path or self.pack_size is not None:
            return None
        edges, ops = self.alpha.shape[-2], self.alpha.shape[-1]
        return [list(range(e * ops, (e + 1) * ops)) for e in range(edges)]

    def arch_factors(self) -> list[tuple[str, nn.Parameter, torch.optim.Optimizer]]:
        """(name, parameter, optimizer) of each architecture factor, in update order (A-DARTS adds β)."""
        return [("alpha", self.alpha, self.a_opt)]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"w": self.w_opt, "alpha": self.a_opt}

    def load_checkpoint_state(self, state) -> None:
        super().load_checkpoint_state(state)
        for opt in self.optimizers().values():   # the saved flag is the saving device's
            set_capturable(opt, self.ctx.device)

    def graph_blocker(self) -> str | None:
        if self.options.lr_schedule == "per-step":   # the lr is a host-side constant of the captured step
            return "lr_schedule=per-step changes the learning rate every step"
        return None

    def _learnable_op_params(self) -> dict[tuple[int, int], list[nn.Parameter]]:
        """(edge, op) → that op's weights in every cell (the w_o of gradient correlation)."""
        groups: dict[tuple[int, int], list[nn.Parameter]] = {}
        for cell in self.supernet.search_cells:
            if not hasattr(cell, "conv_weights"):
                return {}
            for e in range(NUM_EDGES):
                for op in _LEARNABLE:
                    groups.setdefault((e, op), []).extend(cell.conv_weights(e, op))
        return groups

    # ---- architecture -----------------------------------------------------------------------
    def activate(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha) if self.options.activation == "sigmoid" else torch.softmax(alpha, dim=-1)

    def op_weights(self) -> np.ndarray:
        with torch.no_grad():
            return self.activate(self.alpha).float().cpu().numpy()

    def genotype_of(self, weights: np.ndarray) -> Genotype:
        """The argmax cell of an (edges, ops) weight matrix under this method's derivation option."""
        return Genotype.from_weights(weights, include_none=self.options.derive_none)

    def derive(self) -> Genotype:
        return self.genotype_of(self.op_weights())

    def _forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        if self.pack_size is not None:
            return packed_forward(self, x, weights, active)
        if self.ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.ctx.amp_dtype is not None:
            with torch.autocast(self.ctx.device.type, dtype=self.ctx.amp_dtype):
                return self.supernet(x, weights, active).float()
        return self.supernet(x, weights, active)

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor, arch_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The task loss; ``arch_grad``: differentiable in α (else α is a constant for autograd)."""
        weights = self.activate(self.alpha)
        logits = self._forward(x, weights if arch_grad else weights.detach())
        return self.task_loss(logits, y), logits

    def task_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the batch: a scalar, or (K,) per seed when packed (callers
        differentiate its sum, whose gradient in each seed's parameters is that seed's alone)."""
        if self.pack_size is None:
            return F.cross_entropy(logits, y)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(-1)

    def _per_seed(self, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A per-seed scalar (scalar solo, (K,) packed) shaped to broadcast against ``like``."""
        return value if self.pack_size is None else value.view(-1, *[1] * (like.dim() - 1))

    def _seed_flat(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` flattened per seed: (n,) solo, (K, n) packed."""
        return t.reshape(-1) if self.pack_size is None else t.reshape(t.shape[0], -1)

    def arch_objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the α step minimises: the task loss, plus a method's regularizers (DNAS' zero-one loss)."""
        return self.loss_and_logits(x, y, arch_grad=True)

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task loss as a function of α, without regularizers (the Hessian indicator's loss)."""
        return self.loss_and_logits(x, y, arch_grad=True)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.activate(self.alpha).detach())

    # every cell of this family is weighted by an NB201 (edge × op) matrix, so a one-hot matrix is
    # the discrete cell, computing only its ops
    evaluates_discrete_cells = True

    def discrete_logits(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        one_hot = genotype.one_hot()
        return self._forward(x, torch.from_numpy(one_hot).to(x.device), one_hot > 0)

    # ---- schedule ---------------------------------------------------------------------------
    def _set_lr(self, epoch: int, step: int) -> None:
        opts = self.options
        progress = schedule_progress(opts.lr_schedule, epoch, step, self.ctx.steps_per_epoch, self.ctx.epochs)
        lr = cosine_lr(opts.w_lr, opts.w_lr_min, progress)
        for group in self.w_opt.param_groups:
            group["lr"] = lr

    def learning_rates(self) -> dict[str, float]:
        return {"lr_w": float(self.w_opt.param_groups[0]["lr"]), "lr_alpha": float(self.a_opt.param_groups[0]["lr"])}

    # ---- one step ---------------------------------------------------------------------------
    def step(self, batches: dict[str, Batch], epoch: int, step: int, measure_gc: bool) -> StepStats:
        self._set_lr(epoch, step)
        measure_gc = measure_gc and bool(self._gc_groups)
        if self.options.mode == "single-level":
            return self._single_level_step(batches["train"], measure_gc)
        train, arch = batches["train"], batches[ARCH_STREAM[self.options.mode]]
        if self.options.step_order == "w-alpha":
            # gc compares both batches' gradients at the weights the weight step sees: one extra backward
            arch_weight_grads = self._weight_grads(arch) if measure_gc else {}
            stats, raw = self._weight_step(train, keep_raw_grads=measure_gc)
            grads, _ = self._arch_phase(train, arch, with_weight_grads=False)
        else:
            grads, arch_weight_grads = self._arch_phase(train, arch, with_weight_grads=measure_gc)
            stats, raw = self._weight_step(train, keep_raw_grads=measure_gc)
        stats.op_grad = grads.pop("alpha")
        stats.extra.update({f"{name}_grad": g for name, g in grads.items()})
        if measure_gc:
            stats.gc_inner, stats.gc_cos = self._gradient_correlation(raw, arch_weight_grads)
        return stats

    def _gc_params(self) -> list[nn.Parameter]:
        """Every weight of a learnable (edge, op), in ``_gc_groups`` order (gradient correlation)."""
        return [p for ps in self._gc_groups.values() for p in ps]

    def _clip(self, with_alpha: bool) -> None:
        """Clip the weights' gradient norm; ``with_alpha`` counts (and scales) α's .grad too, as
        xautodl's clip_grad_norm_(network.parameters()) does."""
        if self.options.grad_clip > 0:
            params = self.w_params + ([self.alpha] if with_alpha else [])
            if self.pack_size is None:
                nn.utils.clip_grad_norm_(params, self.options.grad_clip)
            else:
                clip_per_seed(params, self.options.grad_clip)

    def _weight_step(self, batch: Batch, keep_raw_grads: bool = False) -> tuple[StepStats, dict]:
        x, y = batch
        with_alpha = self.options.clip_includes_alpha and self.options.grad_clip > 0
        self.w_opt.zero_grad(set_to_none=True)
        self.alpha.grad = None
        loss, logits = self.loss_and_logits(x, y, arch_grad=with_alpha)
        loss.sum().backward()
        # gradient correlation compares raw gradients: copy them before clipping scales them in place
        raw = {p: p.grad.detach().clone() for p in self._gc_params()} if keep_raw_grads else {}
        if with_alpha:   # α.grad as xautodl has it here: the last α step's gradient + ∇α L_train
            left = self.alpha_grad_left
            self.alpha.grad = left.clone() if self.alpha.grad is None else self.alpha.grad.add_(left)
        self._clip(with_alpha)
        self.w_opt.step()
        self.alpha.grad = None
        return self._stats(loss, logits, y), raw

    @staticmethod
    def _stats(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, **more) -> StepStats:
        """Loss sum and correct count of a batch (per seed when packed; B = y's last dimension)."""
        b = y.shape[-1]
        return StepStats(loss.detach() * b, (logits.argmax(-1) == y).sum(-1), b, **more)

    def _weight_grads(self, batch: Batch) -> dict[nn.Parameter, torch.Tensor]:
        """∇w_o of the architecture objective on ``batch`` at the current weights (gradient correlation)."""
        params = self._gc_params()
        loss, _ = self.arch_objective(*batch)
        return dict(zip(params, torch.autograd.grad(loss.sum(), params)))

    def _arch_phase(self, train: Batch, arch: Batch, with_weight_grads: bool):
        """One step per architecture factor on ``arch``, each seeing the factors stepped before it.

        Returns ({factor: gradient its optimizer saw}, {w_o: ∇w L(B_α)} when ``with_weight_grads``).
        """
        grads: dict[str, torch.Tensor] = {}
        weight_grads: dict = {}
        for name, param, opt in self.arch_factors():
            opt.zero_grad(set_to_none=True)
            if name == "alpha" and self.options.order == 2:
                grad = self._unrolled_alpha_grad(train, arch)
                if with_weight_grads:  # ∇w L(B_α) at the current w (not at the virtual w'): one extra backward
                    weight_grads = self._weight_grads(arch)
            else:
                gc_params = self._gc_params() if with_weight_grads and not grads else []
                loss, _ = self.arch_objective(*arch)
                # only ∂/∂factor (and the op weights when measuring): the convs skip their weight gradients
                out = torch.autograd.grad(loss.sum(), [param] + gc_params)
                grad = out[0]
                weight_grads = weight_grads or dict(zip(gc_params, out[1:]))
            param.grad = grad
            opt.step()
            grads[name] = grad.detach()
            if name == "alpha":
                self.alpha_grad_left.copy_(grad.detach())
        return grads, weight_grads

    def _unrolled_alpha_grad(self, train: Batch, arch: Batch) -> torch.Tensor:
        """DARTS second order: ∇α L_val(w', α) − ξ·(∇α L_train(w⁺) − ∇α L_train(w⁻)) / 2ε.

        w' = w − ξ·(momentum·buf + ∇w L_train + wd·w), ξ the current weight lr (xautodl DARTS-V2.py
        ``backward_step_unrolled``; Nesterov is ignored there too); w± = w ± ε·∇w' L_val with
        ε = 0.01 / ‖∇w' L_val‖ (``_hessian_vector_product``).
        """
        opts, params = self.options, self.w_params
        xi = self.w_opt.param_groups[0]["lr"]
        loss, _ = self.loss_and_logits(*train, arch_grad=False)
        grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, g in zip(params, grads):
                d = (g if g is not None else torch.zeros_like(p)) + opts.w_weight_decay * p
                buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    d = d + opts.w_momentum * buf
                p.sub_(xi * d)
        val_loss, _ = self.arch_objective(*arch)
        val_grads = torch.autograd.grad(val_loss.sum(), [self.alpha] + params, allow_unused=True)
        d_alpha = val_grads[0]
        d_w = [g if g is not None else torch.zeros_like(p) for p, g in zip(params, val_grads[1:])]
        # ε per seed: each seed's own ‖∇w' L_val‖
        eps = opts.unrolled_eps / (torch.sqrt(sum(self._seed_flat(g * g).sum(-1) for g in d_w)) + 1e-12)

        def alpha_grad_at(sign: float) -> torch.Tensor:
            with torch.no_grad():
                for p, b, g in zip(params, backup, d_w):
                    p.copy_(b + sign * self._per_seed(eps, g) * g)
            loss_t, _ = self.loss_and_logits(*train, arch_grad=True)
            return torch.autograd.grad(loss_t.sum(), [self.alpha])[0]

        g_pos, g_neg = alpha_grad_at(1.0), alpha_grad_at(-1.0)
        with torch.no_grad():
            for p, b in zip(params, backup):
                p.copy_(b)
        return d_alpha - xi * (g_pos - g_neg) / (2 * self._per_seed(eps, d_alpha))

    def _single_level_step(self, batch: Batch, measure_gc: bool) -> StepStats:
        x, y = batch
        self.w_opt.zero_grad(set_to_none=True)
        for _, _, opt in self.arch_factors():
            opt.zero_grad(set_to_none=True)
        loss, logits = self.arch_objective(x, y)
        loss.sum().backward()
        gc = None
        if measure_gc:  # B_w = B_α: gc_o = ‖∇w_o L‖², cosine 1 (computed, not assumed)
            g = {p: p.grad for p in self._gc_params()}
            gc = self._gradient_correlation(g, g)
        self._clip(self.options.clip_includes_alpha)   # with α: its step is scaled along with the weights'
        self.w_opt.step()
        grads = {}
        for name, param, opt in self.arch_factors():
            grads[name] = param.grad.detach().clone()
            opt.step()
        self.alpha_grad_left.copy_(grads["alpha"])
        stats = self._stats(loss, logits, y, op_grad=grads.pop("alpha"))
        stats.extra.update({f"{name}_grad": g for name, g in grads.items()})
        if gc is not None:
            stats.gc_inner, stats.gc_cos = gc
        return stats

    def _gradient_correlation(self, g_w: dict, g_a: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (edge, op): ⟨∇w_o L(B_w), ∇w_o L(B_α)⟩ summed over cells, and its cosine (per seed when packed)."""
        lead = () if self.pack_size is None else (self.pack_size,)
        inner = torch.full((*lead, NUM_EDGES, NUM_OPS), float("nan"), device=self.alpha.device)
        cos = inner.clone()
        for (e, op), params in self._gc_groups.items():
            self._put_correlation(inner, cos, e, op, [g_w[p] for p in params], [g_a[p] for p in params])
        return inner, cos

    def _put_correlation(self, inner: torch.Tensor, cos: torch.Tensor, e: int, op: int,
                         g_w: list[torch.Tensor], g_a: list[torch.Tensor]) -> None:
        """Write the inner product and cosine of two gradient lists at (edge ``e``, ``op``)."""
        a = torch.cat([self._seed_flat(g) for g in g_w], dim=-1).float()
        b = torch.cat([self._seed_flat(g) for g in g_a], dim=-1).float()
        dot = (a * b).sum(-1)
        inner[..., e, op] = dot
        cos[..., e, op] = dot / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)
