"""What a command will cost before it starts: one line with its expected wall time.

Seconds per epoch and per α-Hessian row are *measured*, per method, preset and device, and kept in
``epoch_costs.csv`` beside this file with the date and the machine they were measured on:

* CPU rows: ``benchmarks/epoch_costs.py --write`` (each method's epoch part by part, one torch thread,
  this project's 2-core machine). ``cpu-small`` runs the network and data of ``cpu``, so it takes
  ``cpu``'s rates (its epochs are cut, not cheaper).
* GPU rows: the paper-preset epochs measured on an H100 (benchmarks/RESULTS.md: darts-v1 64.3 s,
  single-darts 38.4 s per solo eager epoch). Packed seeds cost less; the estimate is the solo one.

A method without a measured rate at a (preset, device) that darts-v1 has one for is scaled from
darts-v1's by the two methods' ratio at the `cpu` size, and the line says so; with neither, there is no
number, only the line saying so. A Hessian row without a measurement is left out of the total, and the
line says that too. The estimate counts what is left: epochs already done (a resumed run) are not charged.

    expected wall time ≈ 2.9 h: 13 runs, 650 epochs (darts-v1 21 s, single-darts 15 s, darts-v2 43 s per
    epoch) + 130 α-Hessians (12 s each), 2 at a time (--jobs 2, 2 cores); rates measured on a 2-core CPU
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from ..methods.registry import get_method
from .status import TERMINAL, read_status

COSTS_FILE = Path(__file__).with_name("epoch_costs.csv")
FIELDS = ("preset", "device", "method", "epoch_s", "hessian_row_s", "hessian_rows", "measured", "source")
#: presets sized like another: their epochs cost the same
SAME_SIZE = {"cpu-small": "cpu"}


#: the method whose rate at a size another method's is scaled from, and the size the ratio is taken at
REFERENCE_METHOD, RATIO_SIZE = "darts-v1", ("cpu", "cpu")


@dataclass(frozen=True)
class Rate:
    epoch_s: float
    hessian_row_s: float | None   # one Hessian-vector product on one valid batch; None: not measured here
    hessian_rows: int             # products per batch: α entries less the method's known null directions
    measured: str
    source: str
    scaled: bool = False          # from darts-v1's rate by the methods' ratio at the cpu size


@dataclass(frozen=True)
class RunPlan:
    """One run as the cost line sees it: what it is and how much of it is left."""

    method: str
    preset: str
    device: str
    epochs: int
    epochs_done: int = 0
    hessian_every: int = 0
    hessian_batches: int = 2
    own_hessian_epochs: tuple[int, ...] = ()   # the method's own measurements (DARTS-ES), 0-based

    @classmethod
    def of(cls, config, run_dir: Path | None = None) -> "RunPlan":
        """The plan of ``config``, less what its run directory (if given) says is done already."""
        done = 0
        if run_dir is not None:
            status, problem = read_status(run_dir)
            if not problem and status:
                done = config.epochs if status["state"] in TERMINAL else min(status["epochs_done"], config.epochs)
        info = get_method(config.method)
        own = () if info.table_search else tuple(info.factory.own_hessian_epochs(config.options(), config.epochs))
        return cls(config.method, config.preset, config.device, config.epochs, done, config.hessian_every,
                   config.hessian_batches, own)

    def hessians(self) -> int:
        """α-Hessian measurements in the epochs left: every ``hessian_every``-th, and the method's own."""
        own = set(self.own_hessian_epochs)
        return sum(1 for e in range(self.epochs_done, self.epochs)
                   if e in own or (self.hessian_every and (e + 1) % self.hessian_every == 0))


@lru_cache(maxsize=1)
def measured_rates() -> dict[tuple[str, str, str], Rate]:
    with COSTS_FILE.open(newline="") as f:
        return {(r["preset"], r["device"], r["method"]): Rate(
                    float(r["epoch_s"]), float(r["hessian_row_s"]) if r["hessian_row_s"] else None,
                    int(r["hessian_rows"]), r["measured"], r["source"])
                for r in csv.DictReader(f)}


def rate_of(method: str, preset: str, device: str) -> Rate | None:
    rates, size = measured_rates(), (SAME_SIZE.get(preset, preset), device.split(":")[0])
    if (*size, method) in rates:
        return rates[(*size, method)]
    reference, mine, theirs = (rates.get((*size, REFERENCE_METHOD)), rates.get((*RATIO_SIZE, method)),
                               rates.get((*RATIO_SIZE, REFERENCE_METHOD)))
    if reference is None or mine is None or theirs is None:
        return None
    ratio = mine.epoch_s / theirs.epoch_s
    row = (None if reference.hessian_row_s is None or mine.hessian_row_s is None or not theirs.hessian_row_s
           else reference.hessian_row_s * mine.hessian_row_s / theirs.hessian_row_s)
    return Rate(reference.epoch_s * ratio, row, mine.hessian_rows, reference.measured, reference.source, scaled=True)


@dataclass(frozen=True)
class Estimate:
    seconds: float | None           # expected wall time; None: some run has no measured rate
    line: str                       # the one line to print


def estimate(runs: Iterable[RunPlan], jobs: int = 1, cores: int | None = None) -> Estimate:
    """The expected wall time of running ``runs``, ``jobs`` at a time (at most one per core on a CPU)."""
    runs = [r for r in runs if r.epochs_done < r.epochs]
    if not runs:
        return Estimate(0.0, "expected wall time: nothing left to run")
    table = [r for r in runs if get_method(r.method).table_search]
    supernet = [r for r in runs if r not in table]
    missing = sorted({(r.method, r.preset, r.device.split(":")[0]) for r in supernet
                      if rate_of(r.method, r.preset, r.device) is None})
    if missing:
        m, p, d = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return Estimate(None, f"expected wall time: no estimate, no measured rate for {m} at {p} on {d}{more} "
                              "(benchmarks/epoch_costs.py measures one)")
    per_run, epochs, hessians, per_method, scaled, unmeasured = [], 0, 0, {}, set(), 0
    for r in supernet:
        rate = rate_of(r.method, r.preset, r.device)
        left, h = r.epochs - r.epochs_done, r.hessians()
        hessian_s = (rate.hessian_row_s or 0.0) * rate.hessian_rows * r.hessian_batches
        unmeasured += h if rate.hessian_row_s is None else 0
        per_run.append(left * rate.epoch_s + h * hessian_s)
        epochs, hessians = epochs + left, hessians + h
        per_method.setdefault(r.method, (rate.epoch_s, hessian_s))
        if rate.scaled:
            scaled.add(r.method)
    per_run += [1.0] * len(table)                 # a table search: a second or so of lookups
    cpu = all(r.device.split(":")[0] == "cpu" for r in supernet)
    cores = cores or os.cpu_count() or 1
    width = max(1, min(jobs, len(per_run), cores if cpu else jobs))
    seconds = max(sum(per_run) / width, max(per_run))
    what = [f"{len(per_run)} run{'s' * (len(per_run) != 1)}"]
    if supernet:
        rates = ", ".join(f"{m} {_short(e)}" for m, (e, _) in per_method.items())
        what.append(f"{epochs} epochs ({rates} per epoch)")
    if hessians:
        each = sorted({round(h) for _, h in per_method.values() if h})
        what.append(f"{hessians} α-Hessians (" + ("/".join(_short(h) for h in each) + " each" if each else "")
                    + ("; " if each and unmeasured else "") + (f"{unmeasured} not measured, not counted"
                                                                  if unmeasured else "") + ")")
    at_once = (f"{width} at a time (--jobs {jobs}" + (f", {cores} cores)" if cpu else ")")) if width > 1 else "one at a time"
    source = _source(supernet) + (f"; {', '.join(sorted(scaled))} scaled from {REFERENCE_METHOD}'s rate by "
                                  "their cost ratio on a CPU" if scaled else "")
    return Estimate(seconds, f"expected wall time {_duration(seconds)}: {', '.join(what[:1])}, "
                             f"{' + '.join(what[1:]) or 'table lookups only'}, {at_once}" + (f"; {source}" if source else ""))


def _source(runs: list[RunPlan]) -> str:
    devices = {r.device.split(":")[0] for r in runs}
    if not runs:
        return ""
    if devices == {"cpu"}:
        return "rates measured on a 2-core CPU, one thread per run (engine/epoch_costs.csv)"
    return "rates: solo eager epochs on an H100 (packed seeds cost less; engine/epoch_costs.csv)"


def _short(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"≈ {seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"≈ {seconds / 60:.0f} min"
    return f"≈ {seconds:.0f} s"
