"""DARTS-ES (Zela et al., ICLR 2020, "Understanding and Robustifying DARTS"): DARTS that stops when the
dominant eigenvalue of ∇²_α L_valid grows, and returns the cell from before the growth.

The engine measures the exact spectrum of ∇²_α L_valid on the run's fixed valid batches after the epochs
of :meth:`DartsEs.own_hessian_epochs` (:mod:`...engine.hessian`) and hands it to :meth:`observe_hessian`;
with λ its largest (algebraic) eigenvalue, two rules are offered (``es_rule``):

* ``code`` (the default): the authors' code, automl/RobustDARTS ``src/utils.py`` ``EVLocalAvg``. λ is
  measured every ``es_every`` = 2 epochs (0, 2, 4, … and the last; ``scripts/DARTS_search.sh``
  ``--report_freq_hessian 2``). From the third measurement on, each one adds a local average λ̄ of the last
  ``es_average`` = 5 measurements (of all of them while there are fewer), labelled with the epoch at the
  window's centre, t − es_every·⌊5/2⌋. After a measurement at epoch t (not the last), once that label less
  ``es_delta``·es_every reaches ``es_start_epoch`` = 10, the search stops when

      λ̄(now) / λ̄(es_delta = 4 measurements, 8 epochs, earlier) > es_factor = 1.3

  and returns the cell of epoch (label − es_delta·es_every), i.e. t − 12: the first stop possible is after
  epoch 22 (0-based), returning epoch 10's cell.
* ``paper``: the paper's reading, λ after every epoch, λ̄(t) the mean over the ``es_average`` epochs ending
  at t, a stop after epoch t when λ̄(t − k) / λ̄(t) < ``es_ratio`` = 0.75 (k = ``es_window`` = 5, only where
  λ̄(t) > 0 and both averages exist), returning the cell of epoch t − k.

Neither checks in the last epoch (stopping there ends nothing), as the code does not. The engine's
measurement is used rather than one in :meth:`select` because it scores every measurement on the same
valid batches (a ratio of two epochs then compares two landscapes, not two batch draws), computes the
exact spectrum (the algebraic maximum, not power iteration's largest magnitude), and its ``hessian_max``
column shows in the records exactly the numbers the rule read. ``early_stopped``, ``es_ratio``,
``es_lambda_avg`` and ``es_cell_epoch`` are recorded every epoch (NaN where the rule read nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...ranges import COUNT, NON_NEGATIVE, POSITIVE
from ...space.genotype import Genotype
from ..gradient.darts_family import DartsFamily, DartsOptions
from ..options import PAPER, option
from ..registry import register

_CODE = "R-DARTS code: automl/RobustDARTS"
_ARGS = f"{_CODE} src/search/args.py"
_EV = f"{_CODE} src/utils.py EVLocalAvg"
ES_RULES = ("code", "paper")


@dataclass(frozen=True)
class DartsEsOptions(DartsOptions):
    """DARTS-V1's NB201 reference defaults, plus the stopping rule."""

    es_rule: str = option("code", f"{_EV}.early_stop", "code: the authors' rule on λ every es_every epochs "
                          "(es_factor, es_delta, es_start_epoch); paper: the paper's reading on λ every epoch "
                          "(es_ratio, es_window)", ES_RULES)
    es_every: int = option(2, f"{_CODE} scripts/DARTS_search.sh (--report_freq_hessian 2); {_EV} ev_freq=2",
                           "code rule: λ measured after epochs 0, es_every, 2·es_every, … and the last",
                           bounds=COUNT)
    es_average: int = option(5, f"{_ARGS}:61 (--window 5)", "measurements (code) or epochs (paper) in the local "
                             "average λ̄ of the dominant eigenvalue (1 = the eigenvalue itself)", bounds=COUNT)
    es_factor: float = option(1.3, f"{_ARGS}:64 (--factor 1.3)", "code rule: stop when λ̄(now)/λ̄(es_delta "
                              "measurements earlier) exceeds this", bounds=POSITIVE)
    es_delta: int = option(4, f"{_ARGS}:63 (--delta 4)", "code rule: measurements between the two local averages "
                           "compared", bounds=COUNT)
    es_start_epoch: int = option(10, f"{_ARGS}:62 (--es_start_epoch 10)", "code rule: no stop that would return "
                                 "a cell from before this 0-based epoch", bounds=NON_NEGATIVE)
    es_ratio: float = option(0.75, f"{PAPER} (stop when λ(i−k)/λ(i) < 0.75)", "paper rule: stop when "
                             "λ̄(t − k)/λ̄(t) falls below this", bounds=POSITIVE)
    es_window: int = option(5, f"{PAPER} (k = 5)", "paper rule: k, epochs between the two averages compared",
                            bounds=COUNT)


class DartsEs(DartsFamily):
    needs_hessian = True

    @classmethod
    def own_hessian_epochs(cls, options: DartsEsOptions, epochs: int) -> list[int]:
        if options.es_rule == "paper":
            return list(range(epochs))
        return [e for e in range(epochs) if e % options.es_every == 0 or e == epochs - 1]

    def __init__(self, options: DartsEsOptions, ctx) -> None:
        super().__init__(options, ctx)
        self._epochs: list[int] = []              # 0-based epochs the rule read λ_max after, ascending
        self._lambdas: list[float] = []           # λ_max at each of them
        self._weights: list[np.ndarray] = []      # op weights at each of them: the cells to return to
        self._stopped_at: int | None = None       # the epoch after which the rule fired

    # ---- the rule ----------------------------------------------------------------------------------
    def _index(self, epoch: int) -> int | None:
        return self._epochs.index(epoch) if epoch in self._epochs else None

    def local_average(self, epoch: int) -> float:
        """λ̄ at ``epoch`` (a measured one), NaN where the rule has none.

        code: the mean of the last ``es_average`` measurements up to it (of all of them while fewer, from the
        ⌈es_average/2⌉-th on); paper: the mean over the ``es_average`` epochs ending at it, all measured."""
        i, n = self._index(epoch), self.options.es_average
        if i is None:
            return math.nan
        if self.options.es_rule == "code":
            return float(np.mean(self._lambdas[max(0, i - n + 1):i + 1])) if i + 1 >= math.ceil(n / 2) else math.nan
        first = epoch - n + 1
        window = [self._lambdas[j] for j, e in enumerate(self._epochs) if first <= e <= epoch]
        return float(np.mean(window)) if first >= 0 and len(window) == n else math.nan

    def label(self, epoch: int) -> int:
        """code rule: the epoch a local average at ``epoch`` stands for, the centre of its window."""
        return epoch - self.options.es_every * (self.options.es_average // 2)

    def ratio(self, epoch: int) -> float:
        """What the rule compares after ``epoch``. code: λ̄(now)/λ̄(es_delta measurements earlier), NaN before
        es_start_epoch allows a stop; paper: λ̄(t − k)/λ̄(t), NaN where an average is missing or λ̄(t) ≤ 0."""
        o = self.options
        if o.es_rule == "code":
            i = self._index(epoch)
            if i is None or self.label(epoch) - o.es_every * o.es_delta < o.es_start_epoch or i < o.es_delta:
                return math.nan
            with np.errstate(divide="ignore", invalid="ignore"):   # the code divides as numpy does
                return float(np.float64(self.local_average(epoch)) / self.local_average(self._epochs[i - o.es_delta]))
        now = self.local_average(epoch)
        before = self.local_average(epoch - o.es_window) if epoch >= o.es_window else math.nan
        return before / now if now > 0 else math.nan   # NaN propagates; a non-positive λ̄ is no growth

    def stops(self, epoch: int) -> bool:
        r = self.ratio(epoch)
        return r > self.options.es_factor if self.options.es_rule == "code" else r < self.options.es_ratio

    def observe_hessian(self, epoch: int, spectrum: Any) -> None:
        if self._stopped_at is not None or epoch not in self.own_hessian_epochs(self.options, self.ctx.epochs):
            return                                 # a hessian_every measurement is not the rule's
        keep = [j for j, e in enumerate(self._epochs) if e < epoch]   # a resumed epoch replaces its own
        self._epochs = [self._epochs[j] for j in keep] + [epoch]
        self._lambdas = [self._lambdas[j] for j in keep] + [float(spectrum.largest)]
        self._weights = [self._weights[j] for j in keep] + [self.op_weights()]
        if epoch < self.ctx.epochs - 1 and self.stops(epoch):
            self._stopped_at = epoch

    @property
    def cell_epoch(self) -> int:
        """0-based epoch whose cell :meth:`derive` returns (the last measured one until the rule fires)."""
        t, o = self._stopped_at, self.options
        if t is None:
            return self._epochs[-1] if self._epochs else -1
        return self.label(t) - o.es_every * o.es_delta if o.es_rule == "code" else t - o.es_window

    def derive(self) -> Genotype:
        if self._stopped_at is None:
            return super().derive()
        return self.genotype_of(self._weights[self._epochs.index(self.cell_epoch)])

    def stop_reason(self) -> str | None:
        t, o = self._stopped_at, self.options
        if t is None:
            return None
        then = self.cell_epoch
        if o.es_rule == "code":
            return (f"the dominant α-Hessian eigenvalue grew: its local average after epoch {t + 1} is "
                    f"{self.ratio(t):.4g}× the one {o.es_delta} measurements ({o.es_delta * o.es_every} epochs) "
                    f"earlier, > {o.es_factor} (λ̄ over {o.es_average} measurements, every {o.es_every} epochs); "
                    f"the derived cell is epoch {then + 1}'s")
        return (f"the dominant α-Hessian eigenvalue grew: λ̄(epoch {then + 1}) / λ̄(epoch {t + 1}) = "
                f"{self.ratio(t):.4g} < {o.es_ratio} (k = {o.es_window}, λ̄ over {o.es_average} epochs); the "
                f"derived cell is epoch {then + 1}'s")

    def extra_records(self) -> dict[str, Any]:
        last = self._epochs[-1] if self._epochs else None
        return {**super().extra_records(), "early_stopped": self._stopped_at is not None,
                "es_ratio": self.ratio(last) if last is not None else math.nan,
                "es_lambda_avg": self.local_average(last) if last is not None else math.nan,
                "es_cell_epoch": self.cell_epoch + 1}

    # ---- checkpoint: the history the rule reads ---------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        weights = np.stack(self._weights) if self._weights else np.zeros((0, *self.alpha.shape[-2:]))
        return {**super().checkpoint_state(), "early_stopping": {
            "epochs": torch.tensor(self._epochs, dtype=torch.int64),
            "lambdas": torch.tensor(self._lambdas, dtype=torch.float64),
            "weights": torch.from_numpy(weights.astype(np.float64)),
            "stopped_at": -1 if self._stopped_at is None else self._stopped_at}}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        es = state["early_stopping"]
        self._lambdas = [float(v) for v in es["lambdas"].cpu()]
        # checkpoints of before the measurement interval held one λ per epoch from epoch 0
        self._epochs = ([int(v) for v in es["epochs"].cpu()] if "epochs" in es else list(range(len(self._lambdas))))
        self._weights = list(es["weights"].cpu().numpy().astype(np.float32))
        self._stopped_at = None if int(es["stopped_at"]) < 0 else int(es["stopped_at"])


register(
    "darts-es",
    summary="DARTS-ES: DARTS-V1 stopped when λ_max's local average grows 1.3× over 8 epochs (R-DARTS' code; "
            "λ every 2 epochs); returns the cell from before the growth",
    paper="Zela, Elsken, Saikia, Marrakchi, Brox, Hutter. Understanding and Robustifying Differentiable "
          "Architecture Search. ICLR 2020",
    options=DartsEsOptions,
    departures=(
        "Built on darts-v1 with its NB201 reference settings (first order, weight step first); R-DARTS' "
        "searches ran second-order DARTS on the DARTS spaces (--set order=2 for that).",
        "λ_max is measured on the run's fixed hessian_batches valid batches (engine measurement, recorded as "
        "hessian_max); the authors' code measured it on the epoch's last valid batch.",
        "The default rule is the authors' code's (es_rule=code: factor 1.3 over 4 measurements every 2 epochs, "
        "no returned cell before epoch 10); es_rule=paper gives the paper's reading (ratio 0.75, k = 5, λ every "
        "epoch, a trailing 5-epoch average).",
        "The run ends as finished with fewer epochs than asked (status.json says why); the last record's "
        "genotype and benchmark columns are the returned cell's, op_weights stay the current α.",
    ),
    factory=DartsEs,
)
