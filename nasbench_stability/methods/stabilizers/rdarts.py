"""R-DARTS (Zela et al., ICLR 2020, "Understanding and Robustifying DARTS"): DARTS with a stronger
regularization of the inner (weight) problem, which the paper shows keeps the dominant eigenvalue of
∇²_α L_valid low and the derived cell from collapsing.

* ``rdarts-l2``: a raised weight decay on w. The paper runs its L2 factor over the grid
  3e-4·3^k (automl/RobustDARTS ``scripts/start_search.sh``, whose awk loop gives k = 0..4: 3e-4, 9e-4,
  27e-4, 81e-4, 243e-4) and keeps the best; one nbs run takes 81e-4, the value the β-DARTS authors' NB201
  script names for R-DARTS (Sunshine-Ye/Beta-DARTS ``nasbench201/train_search.py``: ``# DARTS: 3e-4
  RDARTS: 81e-4``), the grid point closest to the 1e-2 that MergeNAS (paper 000, citing R-DARTS) runs
  DARTS with on NB201. The whole grid: ``examples/study-rdarts-grid.toml`` (``nbs sweep``).
* ``rdarts-dp``: ScheduledDropPath on the mixed edges during the search (:mod:`...space.drop_path_cell`),
  the drop probability rising once per epoch as p_e = p_max·e/(E − 1) (RobustDARTS
  ``src/search/train_search.py``: ``args.drop_path_prob * epoch / (args.epochs - 1)``), in the weight
  step and the α step alike (the model is in training mode for both there). The paper's grid is
  p_max ∈ {0, 0.2, 0.4, 0.6} (``start_search.sh``'s awk loop ``j<=0.6; j+=0.2`` stops at 0.4 in floating
  point; the study file keeps the paper's 0.6); one nbs run takes 0.2, its code's default (``--drop_path_prob 0.2``), because on
  NB201 the unit dropped is harsher than on the DARTS cells the grid was made for: a cell's output is
  node 3 alone, the sum of 3 edges, and the 15 searchable cells are chained without a bypass, so a
  sample loses a whole cell with probability p³ and some cell of 15 with 1 − (1 − p³)^15: 11% at the
  final p = 0.2, 62% at 0.4, 96% at 0.6.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ...ranges import BELOW_ONE, NON_NEGATIVE
from ...space.drop_path_cell import DropPathCell
from ...space.supernet import Supernet
from ..gradient.darts_family import DartsFamily, DartsOptions
from ..options import option
from ..registry import register
from .scheduled import linear_in_epochs

_CODE = "R-DARTS code: automl/RobustDARTS"
_PAPER = ("Zela, Elsken, Saikia, Marrakchi, Brox, Hutter. Understanding and Robustifying Differentiable "
          "Architecture Search. ICLR 2020")
_BASE = ("Built on darts-v1 with its NB201 reference settings (first order, weight step first, BN running stats); "
         "R-DARTS' searches ran second-order DARTS (RobustDARTS scripts/DARTS_search.sh --unrolled) on the DARTS "
         "spaces S1-S4: --set order=2 for that.")
_GRID = ("R-DARTS runs a grid of regularization strengths and keeps the best architecture; one nbs run uses one "
         "strength (the default below); the authors' grid is examples/study-rdarts-grid.toml for nbs sweep (keep the "
         "best by the benchmark's validation column, never test).")


@dataclass(frozen=True)
class RDartsL2Options(DartsOptions):
    w_weight_decay: float = option(8.1e-3, f"{_CODE} scripts/start_search.sh (grid 3e-4·3^k, k = 0..4); Beta-DARTS "
                                           "nasbench201/train_search.py ('RDARTS: 81e-4')",
                                   "weight decay of the network weights, raised from DARTS' 3e-4 (NB201: 5e-4)",
                                   bounds=NON_NEGATIVE)


register("rdarts-l2", summary="R-DARTS(L2): DARTS-V1 with the weight decay of w raised to 81e-4",
         paper=_PAPER, options=RDartsL2Options, factory=DartsFamily,
         departures=(_BASE, _GRID))


@dataclass(frozen=True)
class RDartsDPOptions(DartsOptions):
    drop_path_max: float = option(0.2, f"{_CODE} src/search/args.py (--drop_path_prob 0.2; grid 0-0.4 in "
                                       "scripts/start_search.sh, 0-0.6 in the paper)",
                                  "ScheduledDropPath: probability of dropping a mixed edge's output per sample in "
                                  "the last epoch, rising as p_max·e/(E − 1) over the 0-based epochs e (0 = "
                                  "DARTS-V1)", bounds=BELOW_ONE)


class RDartsDP(DartsFamily):
    packable = False
    solo_reason = ("its DropPath masks are random per sample, drawn inside the network, which the vmapped packed "
                   "step cannot draw per seed")
    drop_prob = 0.0   # this epoch's p (set in begin_epoch)

    def build_supernet(self) -> Supernet:
        track = self.options.track_running_stats
        return Supernet(self.ctx.shape, lambda c: DropPathCell(c, track_running_stats=track))

    def drop_prob_at(self, epoch: int) -> float:
        return linear_in_epochs(0.0, self.options.drop_path_max, epoch, self.ctx.epochs - 1)

    def _set_drop_prob(self, p: float) -> None:
        for cell in self.supernet.search_cells:
            cell.drop_prob = p

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.drop_prob = self.drop_prob_at(epoch)
        self._set_drop_prob(self.drop_prob)

    @contextmanager
    def _without_drop_path(self) -> Iterator[None]:
        self._set_drop_prob(0.0)
        try:
            yield
        finally:
            self._set_drop_prob(self.drop_prob)

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_valid without DropPath: the Hessian indicator of the supernet, not of one draw of masks."""
        with self._without_drop_path():
            return super().arch_loss(x, y)

    def extra_records(self) -> dict[str, Any]:
        return {**super().extra_records(), "drop_path_prob": self.drop_prob}


register("rdarts-dp", summary="R-DARTS(DP): DARTS-V1 with ScheduledDropPath on the mixed edges, p rising 0 → 0.2",
         paper=_PAPER, options=RDartsDPOptions, factory=RDartsDP,
         departures=(_BASE, _GRID,
                     "The whole mixed edge is dropped (parameter-free ops included), as the authors' search cell "
                     "does; their search also raises a Cutout probability with p, which NB201's reference search "
                     "(no Cutout) leaves out.",
                     "The α-Hessian is measured without DropPath (the authors' analyser measured in training mode, "
                     "with masks): a masked loss would make the indicator a random function.",
                     "drop_path_prob is recorded every epoch."))
