"""Runs an experiment's distinct runs through the normal engine, and estimates what that costs.

Each distinct run (method + settings) gets ``OUT/runs/<run_key>/`` with one run directory per seed,
exactly as ``nbs run --out`` makes them: packed seeds on CUDA where the method packs, resumable
(re-running the experiment continues unfinished seeds and skips finished ones). Every run's config is
resolved before any work starts, so a bad setting fails before an hour of searching.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import __version__
from ..engine.atomic import write_text_atomic
from ..engine.config import PRESETS, RunConfig, default_preset, resolve_config, resolve_device
from ..engine.executor import run_seeds
from ..engine.run import RunResult
from ..destinations import check_writable, ensure_folder, writing
from ..errors import ConfigError
from ..methods.registry import get_method
from .experiments import Experiment, Row

MANIFEST = "experiment.json"

# Seconds per search epoch of darts-v1, solo and eager, by (preset, device type), and each method's cost
# relative to it; rough, for planning only (`nbs reproduce --list`). Sources: paper/cuda from
# benchmarks/RESULTS.md (H100, 64.3 s per darts-v1 epoch, 38.4 s single-darts); the CPU numbers are
# `nbs run --epochs 1` on this project's 2-core machine (2026-11-23). Packed seeds on a GPU cost less.
EPOCH_SECONDS = {("paper", "cuda"): 64.3, ("paper", "cpu"): 3600.0, ("cpu-small", "cpu"): 30.0,
                 ("cpu-small", "cuda"): 4.0, ("smoke", "cpu"): 3.0, ("smoke", "cuda"): 1.0}
# --set keys that only add measurements: the search itself stays the paper's
MEASUREMENT_ONLY = {"hessian_every", "hessian_batches", "gc_every"}
RELATIVE_COST = {"darts-v1": 1.0, "single-darts": 0.6, "darts-v2": 2.2, "mergenas-v1": 0.8, "mergenas-v2": 1.8,
                 # cpu-small s/epoch over darts-v1's, two runs at a time on the 2-core machine (issue 12's runs)
                 "darts-minus": 1.0, "drnas": 1.2, "beta-darts": 1.1}


@dataclass(frozen=True)
class Plan:
    """What one invocation runs: the experiment, seeds, scale and where."""

    experiment: Experiment
    seeds: tuple[int, ...]
    preset: str
    device: str
    epochs: int | None
    out: Path
    rows: tuple[str, ...] = ()         # the run rows asked for with --row (empty: all)
    extra: tuple[tuple[str, str], ...] = ()   # --set KEY=VALUE for every run

    @property
    def paper_scale(self) -> bool:
        return (self.preset == "paper" and self.epochs is None
                and all(k in MEASUREMENT_ONLY for k, _ in self.extra))

    def overrides(self, row: Row) -> dict[str, str]:
        """The row's settings and the plan's --set (which may not contradict a row; a table search,
        which has no supernet, takes only its own settings)."""
        if is_table_search(row):
            return dict(row.settings)
        clash = next((k for k, _ in self.extra if k in dict(row.settings)), None)
        if clash is not None:
            raise ConfigError(f"--set {clash} would change row {row.label!r} of {self.experiment.name}, which "
                              f"sets {clash} itself; run that row with `nbs run` instead")
        return {**dict(row.settings), **dict(self.extra)}

    def configs(self) -> dict[str, list[RunConfig]]:
        """Every distinct run's resolved configs (ConfigError on a bad setting, before any work)."""
        return {key: [resolve_config(row.method, seed=s, **self.scale(row), overrides=self.overrides(row))
                      for s in self.seeds]
                for key, row in self.experiment.runs().items()}

    def scale(self, row: Row) -> dict:
        """preset, device and epochs of a row's runs; a table search has none of them (it trains nothing)."""
        if is_table_search(row):
            return {"preset": None, "device": "cpu", "epochs": None}
        return {"preset": self.preset, "device": self.device, "epochs": self.epochs}

    def run_dir(self, row: Row) -> Path:
        return self.out / "runs" / row.run_key

    def command(self, row: Row) -> str:
        """The `nbs run` command that makes (or resumes) this row's runs."""
        argv = ["nbs", "run", "--method", row.method, "--seeds", str(len(self.seeds))]
        scale = self.scale(row)
        if scale["preset"] is not None:
            argv += ["--preset", scale["preset"], "--device", scale["device"]]
        argv += ["--out", str(self.run_dir(row))]
        if scale["epochs"] is not None:
            argv += ["--epochs", str(scale["epochs"])]
        return shlex.join(argv + [a for k, v in sorted(self.overrides(row).items()) for a in ("--set", f"{k}={v}")])

    def reproduce_command(self) -> str:
        """The `nbs reproduce` command that makes (or resumes) the whole plan."""
        argv = ["nbs", "reproduce", self.experiment.name, "--seeds", str(len(self.seeds)), "--preset", self.preset,
                "--device", self.device, "--out", str(self.out)]
        if self.epochs is not None:
            argv += ["--epochs", str(self.epochs)]
        argv += [a for label in self.rows for a in ("--row", label)]
        return shlex.join(argv + [a for k, v in self.extra for a in ("--set", f"{k}={v}")])


def estimate_seconds(experiment: Experiment, seeds: int, preset: str, device: str, epochs: int | None) -> float | None:
    base = EPOCH_SECONDS.get((preset, device.split(":")[0]))
    if base is None:
        return None
    total = 0.0
    for row in experiment.runs().values():
        if is_table_search(row):   # queries of the table: well under a second a seed
            total += seeds * 1.0
            continue
        # the paper preset keeps the method's own epochs
        run_epochs = epochs or PRESETS[preset].epochs or resolve_config(
            row.method, preset="paper", device="cpu", overrides=dict(row.settings)).epochs
        total += seeds * run_epochs * base * RELATIVE_COST.get(row.method, 1.5)
    return total


def is_table_search(row: Row) -> bool:
    """A multi-trial method that queries the benchmark table (RS, REA, REINFORCE, BOHB)."""
    return get_method(row.method).table_search


def make_plan(experiment: Experiment, *, seeds: int | None, preset: str | None, device: str, epochs: int | None,
              out: Path | None, rows: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> Plan:
    device = resolve_device(device)
    preset = preset or default_preset(device)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    n = seeds if seeds is not None else experiment.seeds
    if not 1 <= n <= 1000:
        raise ConfigError(f"--seeds must be between 1 and 1000, got {n}")
    # the preset is in the default folder: runs at two scales never meet in one run directory
    out = out if out is not None else Path("reproduce") / experiment.name / preset
    return Plan(experiment.select(list(rows)), tuple(range(n)), preset, device, epochs, out, tuple(rows),
                tuple(sorted((extra or {}).items())))


def execute(plan: Plan, *, data_root: Path | None = None, benchmark_path: Path | None = None, progress: bool = True,
            pack: bool | None = None, cuda_graphs: bool = True,
            log: Callable[[str], None] = print) -> dict[str, list[RunResult]]:
    """Run (or resume) every distinct run of the plan; returns the engine's results per run key."""
    plan.configs()
    check_writable(plan.out, "--out folder")   # a file in the way or a read-only place fails before any run
    ensure_folder(plan.out, "--out folder")
    with writing(plan.out / MANIFEST, "experiment manifest"):
        write_manifest(plan)
    results: dict[str, list[RunResult]] = {}
    runs = plan.experiment.runs()
    for i, (key, row) in enumerate(runs.items(), 1):
        log(f"[{i}/{len(runs)}] {row.label}: {plan.command(row)}")
        results[key] = run_seeds(row.method, list(plan.seeds), **plan.scale(row), out=plan.run_dir(row),
                                 overrides=plan.overrides(row),
                                 data_root=data_root, benchmark_path=benchmark_path, progress=progress, pack=pack,
                                 cuda_graphs=cuda_graphs, log=log)
    return results


def write_manifest(plan: Plan) -> None:
    """What was asked, for the report (and for a human reading the folder)."""
    manifest = {"experiment": plan.experiment.name, "seeds": list(plan.seeds), "preset": plan.preset,
                "device": plan.device, "epochs": plan.epochs, "rows": list(plan.rows), "set": dict(plan.extra), "nbs_version": __version__,
                "argv": sys.argv, "runs": {key: plan.command(row) for key, row in plan.experiment.runs().items()}}
    write_text_atomic(plan.out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
