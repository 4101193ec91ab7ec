"""Pieces the stabilizers share: the NB201 settings of SDARTS' and DrNAS' scripts and the gradient clip of
the code they descend from (DARTS'), and per-epoch means of step values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...ranges import EPOCHS, NON_NEGATIVE
from ..gradient.darts_family import STEP_ORDERS, DartsFamily, DartsOptions
from ..options import option, reference

# SDARTS' and DrNAS' NB201 search scripts (the same authors) agree on every setting below
CHEN_NB201 = reference("SmoothDARTS nasbench201/train_search.py and DrNAS 201-space/train_search.py")


class DartsCodeClip(DartsFamily):
    """The weight step's clip as in the code descending from DARTS' (SDARTS, DrNAS): their ``Architect``
    zeroes α's gradient after the α step, so ``clip_grad_norm_(model.parameters())`` — α included — counts
    ∇α L_train of the weight step alone. (xautodl leaves the α step's gradient in α.grad, which
    DartsFamily's ``alpha_grad_left`` reproduces: here it is kept at zero.)"""

    def _arch_phase(self, train, arch, with_weight_grads: bool):
        out = super()._arch_phase(train, arch, with_weight_grads)
        self.alpha_grad_left.zero_()
        return out


@dataclass(frozen=True)
class ChenNb201Options(DartsOptions):
    """Where SDARTS' and DrNAS' NB201 scripts differ from DARTS-V1's NB201 reference (xautodl)."""

    epochs: int = option(100, CHEN_NB201, "search epochs (--epochs 100)", bounds=EPOCHS)
    step_order: str = option("alpha-w", CHEN_NB201, "alpha-w: architect.step on the valid batch, then the weight "
                             "step; w-alpha = weight step first", STEP_ORDERS)
    w_nesterov: bool = option(False, CHEN_NB201, "Nesterov momentum (torch.optim.SGD without nesterov)")
    w_weight_decay: float = option(3e-4, CHEN_NB201, "weight decay of the network weights (--weight_decay)",
                                   bounds=NON_NEGATIVE)
    clip_includes_alpha: bool = option(True, CHEN_NB201, "the clip's total norm also counts α's gradient of the "
                                       "weight step, ∇α L_train (clip_grad_norm_(model.parameters()), α included; "
                                       "the α step's gradient was zeroed); false = the weights alone")


class EpochMeans:
    """Means over an epoch's steps of named device tensors (one host transfer, at record time).
    Scalars come out as floats, arrays as numpy arrays."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, **values: torch.Tensor) -> None:
        for name, v in values.items():
            v = v.detach().double()
            self.sums[name] = self.sums[name] + v if name in self.sums else v.clone()
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, total in self.sums.items():
            mean = (total / self.counts[name]).cpu()
            out[name] = float(mean) if mean.dim() == 0 else mean.numpy()
        return out
