"""A study → its runs: one RunConfig per (method, grid point, dataset, seed), each with its directory.

The grid is the cartesian product of a method's axes (:meth:`Study.method_grid`), in file order. A
run's directory is the engine's ``<method>-<dataset>-seed<k>`` inside a folder named by the grid
point's settings that differ from the defaults (``lr=0.05,mode=single-level``; none: directly in
``--out``), so two grid points never share a directory, and a run keeps its directory when other
axes are added to the study later. Seeds of one grid point that pack (:func:`engine.executor.will_pack`)
form one work unit; every other run is a unit of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..engine.config import RunConfig
from ..engine.executor import will_pack
from ..engine.run import run_dir_for
from ..errors import ConfigError, NbsError
from .study import Study, resolve_run

#: a settings folder name longer than this (or with characters a file system may refuse) is shortened
#: and made unique with a hash of the full settings
MAX_FOLDER = 100
_SAFE = re.compile(r"[A-Za-z0-9._=,+-]+")


@dataclass(frozen=True)
class PlannedRun:
    config: RunConfig
    out: Path                                  # the folder the engine names the run directory in
    settings: tuple[tuple[str, str], ...]      # the grid point's settings that differ from the defaults

    @property
    def run_dir(self) -> Path:
        return run_dir_for(self.out, self.config)

    def describe(self) -> str:
        """One line of `nbs sweep --dry-run`."""
        settings = " ".join(f"{k}={v}" for k, v in self.settings) or "(defaults)"
        c = self.config
        return f"{self.run_dir}  {c.method}  {c.dataset}  seed={c.seed}  {settings}"


@dataclass(frozen=True)
class WorkUnit:
    """What one worker (a process, a Ray task) runs: one run, or the packed seeds of one grid point."""

    runs: tuple[PlannedRun, ...]

    @property
    def label(self) -> str:
        first = self.runs[0].run_dir
        return str(first) if len(self.runs) == 1 else f"{first} (+{len(self.runs) - 1} packed seeds)"


def expand(study: Study, out: Path) -> list[PlannedRun]:
    """Every run of ``study`` under ``out`` (made absolute), in a fixed order: methods and axes in file
    order, then datasets, then seeds. ConfigError (naming the file and the grid point) for a combination
    that does not go together, or two grid points that are the same run."""
    return list(iter_planned(study, out))


def iter_planned(study: Study, out: Path) -> Iterator[PlannedRun]:
    """:func:`expand`, one run at a time (--dry-run prints each as it comes). ``out`` is made absolute
    here, in the driver: a worker elsewhere (a Ray node) would resolve a relative one in its own folder."""
    out = Path(os.path.abspath(out))
    seen: dict[Path, PlannedRun] = {}
    for method in study.methods:
        axes = study.method_grid(method)
        for values in itertools.product(*(v for _, v in axes)):
            point = dict(zip((k for k, _ in axes), values))
            seeds = study.method_seeds(method)
            for dataset in study.datasets:
                base = _config(study, method.name, dataset, seeds[0], {}, point)
                for seed in seeds:
                    config = _config(study, method.name, dataset, seed, point, point)
                    settings = _changed(base, config)
                    run = PlannedRun(config, out / _folder(settings) if settings else out, settings)
                    _refuse_shared_dir(study, seen, run)
                    yield run


def unit_count(study: Study) -> int:
    """How many work units :func:`work_units` makes of the study's runs, without expanding it: whether
    seeds pack depends on the method, the device, ``pack`` and the number of seeds only (the same at every
    grid point), so one config per method answers for all its grid points."""
    total = 0
    for method in study.methods:
        seeds = study.method_seeds(method)
        first = {key: values[0] for key, values in study.method_grid(method)}
        config = _config(study, method.name, study.datasets[0], seeds[0], first, first)
        per_point = 1 if will_pack([config] * len(seeds), study.pack) else len(seeds)
        total += study.grid_points(method) * len(study.datasets) * per_point
    return total


def work_units(planned: list[PlannedRun], pack: bool | None) -> list[WorkUnit]:
    """Group the seeds of each grid point into one unit where they pack, else one unit per run. Units
    are taken seed by seed across grid points (each point's first seed, then each one's second, ...), so
    that a study stopped part-way has comparable seeds of every method rather than all of the first."""
    groups: dict[tuple[Path, str, str], list[PlannedRun]] = {}
    for run in planned:
        groups.setdefault((run.out, run.config.method, run.config.dataset), []).append(run)
    per_point = [[WorkUnit(tuple(runs))] if will_pack([r.config for r in runs], pack)
                 else [WorkUnit((r,)) for r in runs] for runs in groups.values()]
    return [unit for rank in itertools.zip_longest(*per_point) for unit in rank if unit is not None]


def _config(study: Study, method: str, dataset: str, seed: int, overrides: dict[str, str],
            point: dict[str, str]) -> RunConfig:
    try:
        return resolve_run(study, method, dataset, seed, overrides)
    except NbsError as err:
        where = ", ".join(f"{k}={v}" for k, v in point.items()) or "defaults"
        raise ConfigError(f"{study.path}: methods.{method} at {where}: {err}") from None


def _changed(base: RunConfig, config: RunConfig) -> tuple[tuple[str, str], ...]:
    """The settings (run fields and method options) in which ``config`` differs from ``base``, sorted
    by name; the seed is in the run's own name."""
    old, new = _flat(base), _flat(config)
    return tuple((k, _text(new[k])) for k in sorted(new) if k != "seed" and new[k] != old.get(k))


def _flat(config: RunConfig) -> dict:
    d = config.to_dict()
    options = d.pop("method_options")
    return {**d, **options}


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return ",".join(map(_text, value)) if isinstance(value, (tuple, list)) else str(value)


def _folder(settings: tuple[tuple[str, str], ...]) -> str:
    """``k=v,k=v``; shortened with a hash of the whole when too long or not file-name safe."""
    name = ",".join(f"{k}={v}" for k, v in settings)
    if len(name) <= MAX_FOLDER and _SAFE.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)[:MAX_FOLDER - len(digest) - 1]
    return f"{safe}-{digest}"


def _refuse_shared_dir(study: Study, seen: dict[Path, PlannedRun], run: PlannedRun) -> None:
    """Two grid points that resolve to the same run (a value spelled twice, 0.1 and 0.10) would race
    for one directory: refuse the study instead."""
    other = seen.setdefault(run.run_dir, run)
    if other is not run:
        settings = ", ".join(f"{k}={v}" for k, v in run.settings) or "the defaults"
        raise ConfigError(f"{study.path}: two grid points are the same run {run.run_dir} ({settings}): "
                          f"a value is listed twice, spelled two ways; list it once")
