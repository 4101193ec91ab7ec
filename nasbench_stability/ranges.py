"""Allowed ranges of numeric settings (run options and method options), checked before a run starts.

A :class:`Range` is an interval with each end open, closed or absent. Out-of-range values are
refused with one line that names the setting and the interval, before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

from .errors import ConfigError, quote


@dataclass(frozen=True)
class Range:
    lo: float | None = None     # None: no lower end
    hi: float | None = None     # None: no upper end
    lo_open: bool = False       # True: ``lo`` itself is outside the range
    hi_open: bool = False

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, Real):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return True

    def describe(self, name: str = "x") -> str:
        """``0 ≤ name < 1``, ``name > 0``, ``name ≥ 1``; ``name finite`` when unbounded."""
        lo = None if self.lo is None else f"{_num(self.lo)} {'<' if self.lo_open else '≤'} "
        hi = None if self.hi is None else f" {'<' if self.hi_open else '≤'} {_num(self.hi)}"
        if lo and hi:
            return f"{lo}{name}{hi}"
        if lo:
            return f"{name} {'>' if self.lo_open else '≥'} {_num(self.lo)}"
        if hi:
            return f"{name}{hi}"
        return f"{name} finite"

    def check(self, name: str, value: Any, what: str = "") -> None:
        """ConfigError naming ``name`` and the range unless ``value`` is inside it."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{what}{name}={value} is not a finite number; allowed: {self.describe(name)}")
        if not self.contains(value):
            raise ConfigError(f"{what}{name}={_shown(value)} is out of range; allowed: {self.describe(name)}")


def _num(x: float) -> str:
    if isinstance(x, int) and x >= 2**32 and x & (x - 1) == 0:
        return f"2**{x.bit_length() - 1}"   # 2**32 reads better than 4294967296
    return f"{x:,}" if isinstance(x, int) and x >= 10_000 else f"{x:g}"


def _shown(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**60:
        return f"{'-' if value < 0 else ''}(a {len(str(abs(value)))}-digit number)"
    return quote(value) if isinstance(value, str) else str(value)


# ---- the ranges in common use -----------------------------------------------------------------
POSITIVE = Range(0, lo_open=True)                  # learning rates, finite-difference ε
NON_NEGATIVE = Range(0)                            # weight decays, clip norms (0 = off), init std
FRACTION = Range(0, 1)                             # warm-up fraction
BELOW_ONE = Range(0, 1, hi_open=True)              # momentum, Adam betas
COUNT = Range(1)                                   # K of PC-DARTS and similar
EVERY = Range(0)                                   # "every k steps" (0 = never)

# sizes: the upper ends only catch typos (an extra zero or three) that would exhaust memory or run
# for ever; real NB201 runs sit far inside (C=16, N=5, batch 64, 50 epochs, 25k images per half)
EPOCHS = Range(1, 100_000)
BATCH_SIZE = Range(1, 65_536)
CHANNELS = Range(1, 1_024)
CELLS_PER_STAGE = Range(1, 64)
DATA_SUBSET = Range(1, 10_000_000)                 # examples per half; above a dataset's size = all of it
EVAL_BATCHES = Range(1, 10_000_000)
HESSIAN_EVERY = Range(0, 100_000)                  # epochs; 0 = never
HESSIAN_BATCHES = Range(1, 1_000)
SEED = Range(0, 2**32, hi_open=True)               # numpy's seeding limit
