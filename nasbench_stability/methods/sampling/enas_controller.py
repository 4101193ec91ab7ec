"""ENAS' LSTM controller on the NB201 cell, and its REINFORCE training (xautodl
``xautodl/models/cell_searchs/search_model_enas_utils.py`` ``Controller`` and ``exps/NAS-Bench-201-algos/ENAS.py``
``train_controller``).

The policy is autoregressive over the six edges in arch-string order: a 2-layer LSTM (hidden 32) reads a
learned start vector, its output gives the logits of the first edge's op, the chosen op's embedding is
the next input, and so on. Logits are ``tanh_constant · tanh(w_pred(h) / temperature)`` (2.5 and 5.0), so
each decision's probability stays within [e^-5/(e^-5 + 4), e^5/(e^5 + 4)] whatever the weights. A
sample's log-probability and entropy are the sums over the six decisions (the entropy of each decision's
categorical given the ops drawn before it).

Parameter names and initialisation are xautodl's (``input_vars``, ``w_lstm``, ``w_embd``, ``w_pred``; U(-0.1,
0.1) on the start vector, the first LSTM layer's weights, the embedding and ``w_pred``'s weight, PyTorch's
defaults elsewhere), so a state dict moves between the two unchanged (tests/test_method_enas.py does).
Sampling takes an explicit generator, so a run's draws are a function of (seed, epoch, step) and a resumed
run draws the same cells; without one it draws from the global RNG exactly the cells xautodl's does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ...space.genotype import Genotype
from ...space.ops import NUM_EDGES, NUM_OPS

BASELINE_UPDATES = ("xautodl", "per-sample")


@dataclass
class Decisions:
    """``n`` walks of the policy: the op of each edge, and each decision's distribution given the ops before it."""

    ops: torch.Tensor          # (n, E) long, on the controller's device
    log_prob: torch.Tensor     # (n,): Σ_e log p_e(op_e)
    entropy: torch.Tensor      # (n,): Σ_e H(p_e)
    probs: torch.Tensor        # (n, E, O): p_e along each walk

    def cells(self) -> list[Genotype]:
        return [Genotype.from_op_indices(row) for row in self.ops.tolist()]   # the one host sync


class Controller(nn.Module):
    def __init__(self, num_edges: int = NUM_EDGES, num_ops: int = NUM_OPS, lstm_size: int = 32,
                 lstm_num_layers: int = 2, tanh_constant: float = 2.5, temperature: float = 5.0) -> None:
        super().__init__()
        self.num_edges, self.num_ops = num_edges, num_ops
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.input_vars = nn.Parameter(torch.empty(1, 1, lstm_size))
        self.w_lstm = nn.LSTM(input_size=lstm_size, hidden_size=lstm_size, num_layers=lstm_num_layers)
        self.w_embd = nn.Embedding(num_ops, lstm_size)
        self.w_pred = nn.Linear(lstm_size, num_ops)
        for p in (self.input_vars, self.w_lstm.weight_hh_l0, self.w_lstm.weight_ih_l0, self.w_embd.weight,
                  self.w_pred.weight):
            nn.init.uniform_(p, -0.1, 0.1)

    def decision_logits(self, lstm_out: torch.Tensor) -> torch.Tensor:
        return self.tanh_constant * torch.tanh(self.w_pred(lstm_out) / self.temperature)

    def walk(self, choose: Callable[[int, torch.Tensor], torch.Tensor], n: int = 1) -> Decisions:
        """``n`` independent walks at once (the LSTM's batch axis); ``choose(edge, probs[n, O])`` returns the
        (n,) op indices. Walks share no state, so n walks are n draws of the policy."""
        inputs, state = self.input_vars.expand(1, n, -1), None
        ops, log_probs, entropies, probs = [], [], [], []
        for e in range(self.num_edges):
            out, state = self.w_lstm(inputs, state)
            log_p = F.log_softmax(self.decision_logits(out[0]), dim=-1)      # (n, O)
            p = log_p.exp()
            op = choose(e, p.detach())
            ops.append(op)
            log_probs.append(log_p.gather(1, op[:, None])[:, 0])
            entropies.append(-(p * log_p).sum(-1))
            probs.append(p)
            inputs = self.w_embd(op)[None]
        return Decisions(torch.stack(ops, 1), torch.stack(log_probs, 1).sum(1), torch.stack(entropies, 1).sum(1),
                         torch.stack(probs, 1))

    def sample(self, generator: torch.Generator | None = None, n: int = 1) -> Decisions:
        """``n`` cells drawn from the policy (xautodl ``Controller.forward``: ``Categorical(logits).sample()``,
        which for n = 1 draws the same cells from the same RNG state)."""
        return self.walk(lambda e, p: torch.multinomial(p, 1, generator=generator)[:, 0], n)

    def score(self, genotype: Genotype) -> Decisions:
        """The decisions that produce ``genotype`` (teacher-forced): its log-probability and entropies."""
        ops = torch.tensor(genotype.op_indices(), device=self.input_vars.device)
        return self.walk(lambda e, p: ops[e:e + 1])

    def greedy(self) -> Decisions:
        """The most likely op at each decision, given the greedy ops before it."""
        return self.walk(lambda e, p: p.argmax(-1))

    @torch.no_grad()
    def joint(self) -> torch.Tensor:
        """The exact probability of every cell, shape (O,)*E (5^6 = 15,625 cells): the prefix tree is
        walked level by level, the LSTM run once on all 5^e prefixes of level e (3,125 at the last)."""
        inputs, state = self.input_vars, None
        log_p = torch.zeros(1, device=inputs.device)
        for e in range(self.num_edges):
            out, state = self.w_lstm(inputs, state)
            step = F.log_softmax(self.decision_logits(out)[0], dim=-1)        # (prefixes, O)
            log_p = (log_p[:, None] + step).reshape(-1)                       # row = prefix·O + op
            if e + 1 < self.num_edges:
                prefixes = step.shape[0]
                state = tuple(s.repeat_interleave(self.num_ops, dim=1) for s in state)
                ops = torch.arange(self.num_ops, device=inputs.device).repeat(prefixes)
                inputs = self.w_embd(ops)[None]
        return log_p.exp().view((self.num_ops,) * self.num_edges)


def marginals(joint: torch.Tensor) -> torch.Tensor:
    """(E, O): P(edge e runs op o) under the policy, summing the joint over the other edges."""
    dims = range(joint.dim())
    return torch.stack([joint.sum(dim=tuple(d for d in dims if d != e)) for e in dims])


def reinforce_loss(log_prob: torch.Tensor, entropy: torch.Tensor, accuracy: torch.Tensor,
                   previous: torch.Tensor | None, entropy_weight: float, decay: float,
                   detach_baseline: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reward, baseline) of one sample, as xautodl ``train_controller`` writes them:

    reward R = accuracy + w_H·H (H keeps its gradient: the entropy bonus acts through the reward);
    baseline b = accuracy when there is none yet, else b_prev − (1 − decay)·(b_prev − R);
    loss = −log π(a)·(R − b).

    ``detach_baseline``: b is a constant for autograd (TF ENAS' baseline variable); xautodl leaves R's
    gradient in b, which scales the whole loss by ``decay``: R − b = decay·(R − b_prev).
    """
    reward = accuracy + entropy_weight * entropy
    baseline = accuracy if previous is None else previous - (1 - decay) * (previous - reward)
    if detach_baseline:
        baseline = baseline.detach()
    return -log_prob * (reward - baseline), reward, baseline


@dataclass(frozen=True)
class ControllerSettings:
    steps: int                 # optimizer steps per epoch (--controller_train_steps)
    aggregate: int             # samples whose gradients one step averages (--controller_num_aggregate)
    entropy_weight: float
    decay: float               # baseline decay (--controller_bl_dec)
    baseline_update: str       # "xautodl" | "per-sample", see train_controller
    grad_clip: float           # 0 = off


@dataclass
class ControllerTrace:
    """Per-sample values of one controller phase (device tensors) and the baseline it ends with."""

    accuracy: torch.Tensor
    reward: torch.Tensor
    baseline: torch.Tensor
    entropy: torch.Tensor
    loss: torch.Tensor
    grad_norm: torch.Tensor    # per optimizer step, before clipping
    final_baseline: torch.Tensor


def train_controller(controller: Controller, optimizer: torch.optim.Optimizer,
                     accuracy_of: Callable[[Genotype, tuple[torch.Tensor, torch.Tensor]], torch.Tensor],
                     batches: Iterator | Iterable, generator: torch.Generator, settings: ControllerSettings,
                     baseline: torch.Tensor | None) -> ControllerTrace:
    """``settings.steps`` optimizer steps, each on ``settings.aggregate`` sampled cells scored by
    ``accuracy_of(cell, batch)`` (a fraction in [0, 1], no gradient) on a batch of their own: the sum of
    their losses divided by ``aggregate``, clipped, one optimizer step.

    ENAS.py draws, scores and back-propagates the samples one at a time; the controller does not change
    between the samples of one step, so drawing them as one batch of walks and back-propagating their
    summed loss once gives the same distribution and the same gradient, with one LSTM pass per step.

    ``baseline`` is the carried baseline (None before the first phase). ``xautodl``: every sample's
    baseline is computed from the value carried into this phase (ENAS.py never updates
    ``config.baseline`` inside the loop), and the phase ends with the last sample's; ``per-sample``: the
    moving average is updated after every sample and detached (TF ENAS, the paper's EMA).
    """
    per_sample = settings.baseline_update == "per-sample"
    params = list(controller.parameters())
    controller.train()
    optimizer.zero_grad(set_to_none=False)
    batches = iter(batches)
    rows, norms = [], []
    carried = baseline
    for _ in range(settings.steps):
        drawn = controller.sample(generator, settings.aggregate)
        accuracy = torch.stack([accuracy_of(cell, next(batches)) for cell in drawn.cells()])
        losses = []
        for k in range(settings.aggregate):
            loss, reward, b = reinforce_loss(drawn.log_prob[k], drawn.entropy[k], accuracy[k], carried,
                                             settings.entropy_weight, settings.decay, per_sample)
            if per_sample:
                carried = b
            losses.append(loss)
            rows.append(torch.stack([accuracy[k], reward, b, drawn.entropy[k], loss]).detach())
        (torch.stack(losses).sum() / settings.aggregate).backward()
        norms.append(_clip(params, settings.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
    table = torch.stack(rows).T
    return ControllerTrace(*table, grad_norm=torch.stack(norms), final_baseline=table[2, -1])


def _clip(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The gradient norm before clipping (xautodl records clip_grad_norm_'s return); no clip at 0."""
    if max_norm > 0:
        return nn.utils.clip_grad_norm_(params, max_norm)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
