"""Runs an experiment's distinct runs through the normal engine, and estimates what that costs.

Each distinct run (method + settings) gets ``OUT/runs/<run_key>/`` with one run directory per seed,
exactly as ``nbs run --out`` makes them: packed seeds on CUDA where the method packs, resumable
(re-running the experiment continues unfinished seeds and skips finished ones). Every run's config is
resolved before any work starts, so a bad setting fails before an hour of searching.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from ..engine.atomic import write_text_atomic
from ..engine.budget import TimeBudget
from ..analysis.loading import find_run_dirs, read_run_config
from ..engine.config import PRESETS, RunConfig, default_preset, resolve_config, resolve_device
from ..engine.cost import Estimate, RunPlan, estimate
from ..bench.build import ensure_table
from ..bench.table import Benchmark
from ..data.catalog import dataset_spec
from ..data.locate import locate_dataset
from ..engine.executor import run_seeds, will_pack
from ..engine.run import RunResult, check_resumable, run_dir_for
from ..destinations import check_writable, ensure_folder, writing
from ..errors import ConfigError, NbsError
from ..methods.registry import get_method
from .experiments import Experiment, Row

MANIFEST = "experiment.json"

# --set keys that only add measurements: the search itself stays the paper's
MEASUREMENT_ONLY = {"hessian_every", "hessian_batches", "gc_every"}


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
    runs_from: str | None = None       # the report was made from runs made elsewhere (--from-runs)

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


def listed_estimate(experiment: Experiment, seeds: int, preset: str, device: str) -> Estimate:
    """The cost of the whole experiment at ``preset`` on ``device`` (``nbs reproduce --list``; the device
    need not be this machine's: the paper-on-a-GPU line is printed everywhere)."""
    runs = []
    for row in experiment.runs().values():
        table = is_table_search(row)
        config = resolve_config(row.method, preset=None if table else preset, device="cpu",
                                overrides=dict(row.settings))
        runs += [dataclasses.replace(RunPlan.of(config), device="cpu" if table else device)] * seeds
    return estimate(runs)


def plan_estimate(plan: Plan, jobs: int = 1) -> Estimate:
    """The cost of what ``plan`` has left to run (finished seeds and epochs done are not charged)."""
    configs = plan.configs()
    return estimate([RunPlan.of(c, plan.run_dir(row) / c.run_name)
                     for key, row in plan.experiment.runs().items() for c in configs[key]], jobs=jobs)


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


def preflight(plan: Plan, *, data_root: Path | None = None, benchmark_path: Path | None = None,
              pack: bool | None = None, log: Callable[[str], None] = print) -> None:
    """Every refusal the plan's runs would give before their first epoch, asked before the experiment
    folder is written: the manifest is what ``--report-only`` reports, so a refused re-run (another
    --epochs, --set or --preset into the same --out) must leave it describing the runs that are there."""
    check_writable(plan.out, "--out folder")   # a file in the way or a read-only place
    configs = plan.configs()                   # a bad setting or a --set that contradicts a row
    for key, row in plan.experiment.runs().items():
        will_pack(configs[key], pack)          # --pack for a method that cannot pack
        for config in configs[key]:            # a started run of another config in its directory
            check_resumable(run_dir_for(plan.run_dir(row), config), config)
    Benchmark.load(ensure_table(benchmark_path, log=log))
    for dataset in sorted({c.dataset for key, row in plan.experiment.runs().items() if not is_table_search(row)
                           for c in configs[key]}):
        locate_dataset(dataset_spec(dataset), data_root)


def execute(plan: Plan, *, data_root: Path | None = None, benchmark_path: Path | None = None, progress: bool = True,
            pack: bool | None = None, cuda_graphs: bool = True, log: Callable[[str], None] = print,
            budget: TimeBudget | None = None) -> dict[str, list[RunResult]]:
    """Run (or resume) every distinct run of the plan; returns the engine's results per run key. ``budget``
    (--time-budget) is the whole experiment's: runs stop between epochs before it runs out (``paused``),
    and those not started by then are not started."""
    preflight(plan, data_root=data_root, benchmark_path=benchmark_path, pack=pack, log=log)
    log(plan_estimate(plan).line)
    if budget is not None:
        log(budget.line())
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
                                 cuda_graphs=cuda_graphs, log=log, announce_cost=False, budget=budget)
    return results


def match_runs(plan: Plan, roots: Path | Sequence[Path]) -> dict[str, list[Path]]:
    """The run directories under ``roots`` (sweeps' folders, say: one study's DARTS runs, another's
    stabilizers) that are the plan's runs: per run key, those whose saved config is exactly the config the
    plan resolves for one of its seeds. A run made with any other setting (another preset, a --set the plan
    lacks) is not matched, so a report never mixes settings without saying so; a run found twice (the same
    seed's config in two directories) is refused, so that no seed counts twice."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    wanted = {json.dumps(c.to_dict(), sort_keys=True, default=str): key
              for key, configs in plan.configs().items() for c in configs}
    found: dict[str, list[Path]] = {key: [] for key in plan.experiment.runs()}
    where: dict[str, Path] = {}   # config -> the run directory that has it
    seen: set[Path] = set()       # a folder given twice, or inside another given
    for root in roots:
        for run_dir in find_run_dirs(root):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            config = read_run_config(run_dir)
            if not config:
                continue
            try:
                saved = json.dumps(RunConfig.from_dict(config).to_dict(), sort_keys=True, default=str)
            except (NbsError, TypeError, ValueError):
                continue
            if saved in wanted:
                if saved in where:
                    raise ConfigError(f"{where[saved]} and {run_dir} are the same run (seed {config.get('seed')} "
                                      f"of {wanted[saved]}, the same config): give --from-runs folders that hold it once")
                where[saved] = run_dir
                found[wanted[saved]].append(run_dir)
    if not any(found.values()):
        under = ", ".join(str(r) for r in roots)
        raise ConfigError(f"no run under {under} has the config of any run of {plan.experiment.name} at preset "
                          f"{plan.preset}" + (f" with {', '.join(f'{k}={v}' for k, v in plan.extra)}" if plan.extra else "")
                          + "; pass the --preset, --epochs and --set the runs were made with")
    return found


def runs_from_text(roots: Sequence[Path], sources: dict[str, list[Path]]) -> str:
    """Where the runs of a --from-runs report lie, as REPORT.md says it: the folders by name (not their
    paths, which are the machine's), and how many run directories were matched."""
    names = ", ".join(f"`{Path(r).resolve().name}/`" for r in roots)
    return f"{names}, {sum(map(len, sources.values()))} run directories"


def _shown_argv(args: list[str]) -> list[str]:
    """The command line as a committed report may keep it: ``nbs``, and --from-runs' folder by its name."""
    shown, follows = ["nbs"], False
    for arg in args:
        if follows:
            arg, follows = Path(arg).name, False
        elif arg == "--from-runs":
            follows = True
        elif arg.startswith("--from-runs="):
            arg = "--from-runs=" + Path(arg.split("=", 1)[1]).name
        shown.append(arg)
    return shown


def write_manifest(plan: Plan, runs_from: str | None = None) -> None:
    """What was asked, for the report (and for a human reading the folder). The command line is kept
    without the program's own path (committed reports hold no path of the machine they were made on)."""
    manifest = {"experiment": plan.experiment.name, "seeds": list(plan.seeds), "preset": plan.preset,
                "device": plan.device, "epochs": plan.epochs, "rows": list(plan.rows), "set": dict(plan.extra), "nbs_version": __version__,
                "argv": _shown_argv(sys.argv[1:]), "runs": {key: plan.command(row) for key, row in plan.experiment.runs().items()}}
    if runs_from is not None:
        manifest["runs_from"] = runs_from
    write_text_atomic(plan.out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
