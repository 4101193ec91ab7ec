"""REINFORCE (Williams, 1992) on the table, as xautodl's reinforce.py runs it on NB201.

The policy is factorized: one categorical distribution per edge, softmax of an (edges × ops) logit
matrix initialised as 1e-3·N(0, 1). Each step samples a cell, queries its signal as the reward
(accuracy in %), updates the baseline — an exponential moving average with bias correction (its value
is Σ m^k (1-m) r / Σ m^k (1-m), so the first value is the first reward, not (1-m)·r) — *before*
using it, and takes one Adam step on −Σ_edges log π(op_e) · (reward − baseline). The engine keeps the
best cell queried (xautodl: ``max(trace)``, not the policy's argmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...ranges import BELOW_ONE, POSITIVE
from ...space.ops import NUM_EDGES, NUM_OPS
from ..options import option
from ..registry import register
from .base import (BUDGET_DEPARTURE, SIGNAL_DEPARTURE, XAUTODL_REINFORCE, XAUTODL_REINFORCE_SH, Cell, Oracle,
                   TableSearch, TableSearchOptions)

_PAPER = ("Williams. Simple statistical gradient-following algorithms for connectionist reinforcement learning. "
          "Machine Learning 1992; on NB201 as in Dong & Yang, ICLR 2020 §5 (xautodl exps/NAS-Bench-201-algos/"
          "reinforce.py)")


@dataclass(frozen=True)
class ReinforceOptions(TableSearchOptions):
    lr: float = option(0.001, XAUTODL_REINFORCE_SH, "Adam learning rate of the policy logits: the script's usage "
                       "line `REINFORCE.sh 0.001 -1`. docs/NAS-Bench-201.md's reproduce command passes 0.5 (and "
                       "hps/GRID-RL.sh tries 0.01-0.5); measured on our table, 0.001 gives 93.77 ± 0.21 over 20 "
                       "seeds (NB201 Table 5: 93.85 ± 0.37), 0.5 locks the policy within a few dozen queries: "
                       "93.00 ± 1.12", bounds=POSITIVE)
    ema_momentum: float = option(0.9, XAUTODL_REINFORCE_SH, "momentum of the reward baseline's moving average "
                                 "(--EMA_momentum 0.9)", bounds=BELOW_ONE)
    init_std: float = option(1e-3, XAUTODL_REINFORCE, "std of the logits' normal initialisation (Policy: "
                             "1e-3 * torch.randn)", bounds=POSITIVE)


class MovingAverage:
    """Bias-corrected exponential moving average (xautodl's ExponentialMovingAverage)."""

    def __init__(self, momentum: float) -> None:
        self.momentum, self.numerator, self.denominator = momentum, 0.0, 0.0

    def update(self, value: float) -> None:
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    @property
    def value(self) -> float:
        return self.numerator / self.denominator


@register("reinforce", summary="REINFORCE on the benchmark table: a factorized (edge × op) softmax policy, "
                               "Adam, EMA reward baseline",
          paper=_PAPER, options=ReinforceOptions, departures=(SIGNAL_DEPARTURE, BUDGET_DEPARTURE))
class Reinforce(TableSearch):
    def __init__(self, options: ReinforceOptions, seed: int) -> None:
        super().__init__(options, seed)
        # a private torch generator: the policy's draws do not depend on (or move) torch's global RNG
        self.generator = torch.Generator().manual_seed(seed)
        init = torch.randn(NUM_EDGES, NUM_OPS, generator=self.generator)
        self.logits = torch.nn.Parameter(options.init_std * init)
        self.optimizer = torch.optim.Adam([self.logits], lr=options.lr)
        self.baseline = MovingAverage(options.ema_momentum)

    def probabilities(self) -> np.ndarray:
        """(edges, ops) policy probabilities."""
        with torch.no_grad():
            return torch.softmax(self.logits, dim=-1).numpy().copy()

    def sample(self) -> Cell:
        with torch.no_grad():
            probs = torch.softmax(self.logits, dim=-1)
            return tuple(int(v) for v in torch.multinomial(probs, 1, generator=self.generator).squeeze(1))

    def step(self, cell: Cell, reward: float) -> None:
        """One policy-gradient step on the reward of ``cell`` (the baseline moves first, as in xautodl)."""
        self.baseline.update(reward)
        log_probs = torch.log_softmax(self.logits, dim=-1)
        log_prob = log_probs[torch.arange(NUM_EDGES), torch.tensor(cell)].sum()
        loss = -log_prob * (reward - self.baseline.value)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def search(self, oracle: Oracle) -> None:
        # 30 logits: intra-op threads only add their wake-ups (30x slower on a busy 2-core machine)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            while True:
                cell = self.sample()
                self.step(cell, oracle.query(cell))
        finally:
            torch.set_num_threads(threads)
