"""`nbs sweep STUDY.toml`: a whole study, here (worker processes) or on a Ray cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..engine.epoch_log import LOG_KINDS
from ..errors import ConfigError


@click.command()
@click.argument("study_file", metavar="STUDY.toml", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where the run directories go (default: sweeps/<study name>). With --executor ray, a file "
                   "system every node sees.")
@click.option("--dry-run", is_flag=True, help="Print the runs the study expands to (one line each); run nothing.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine's worker processes; ray: one Ray task per run (or per pack of seeds).")
@click.option("--address", default=None, help="Ray cluster to use (HOST:PORT or auto; default: start Ray here).")
@click.option("--jobs", type=int, default=1, show_default=True, help="local: runs at once in worker processes.")
@click.option("--cpus-per-task", type=float, default=None, help="ray: CPUs each task asks for (default: 1).")
@click.option("--gpus-per-task", type=float, default=None,
              help="ray: GPUs (a fraction shares one) each task asks for (default: 1 for CUDA runs, else 0).")
@click.option("--max-retries", type=int, default=None,
              help="ray: re-runs of a task whose worker died, each resuming from the run's checkpoint (default: 1).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset file or folder.")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="Benchmark table (.parquet).")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="Replay each search step as one CUDA graph where the method's step allows it.")
@click.option("--log", "epoch_log", type=click.Choice(LOG_KINDS), default="none", show_default=True,
              help="Also log every epoch of every run (tensorboard: <run>/tensorboard/, as `nbs run --log`).")
@click.option("--quiet", is_flag=True, help="Only a line per run as it ends, and the summary.")
def sweep(study_file, out, dry_run, executor, address, jobs, cpus_per_task, gpus_per_task, max_retries, data_root,
          benchmark, cuda_graphs, epoch_log, quiet) -> None:
    """Run every run of a study file: methods × option grids × datasets × seeds. Re-running skips the
    finished runs and resumes the others."""
    from ..sweep.expand import expand, work_units
    from ..sweep.runner import run_sweep
    from ..sweep.study import load_study

    runner = _executor(executor, address, jobs, cpus_per_task, gpus_per_task, max_retries)
    study = load_study(study_file)
    out = out if out is not None else Path("sweeps") / study.name
    planned = expand(study, out)
    if dry_run:
        from ..engine.cost import RunPlan, estimate

        units = work_units(planned, study.pack)
        click.echo(f"{study.name}: {len(planned)} runs in {len(units)} work units under {out}")
        for run in planned:
            click.echo(run.describe())
        click.echo(estimate([RunPlan.of(r.config, r.run_dir) for r in planned],
                            jobs=jobs if executor == "local" else 1).line)
        return
    done = 0

    def progress(unit, outcomes) -> None:
        nonlocal done
        for o in outcomes:
            done += 1
            line = f"[{done}/{len(planned)}] {o.run_dir}: {o.message}"
            click.echo(line, err=o.state in ("failed", "diverged"))

    summary = run_sweep(study, planned, runner, benchmark_path=benchmark, data_root=data_root,
                        cuda_graphs=cuda_graphs, quiet=quiet, epoch_log=epoch_log, log=click.echo, on_done=progress)
    click.echo(f"{study.name}: {summary.line()}")
    if summary.failed:
        click.echo(f"nbs: some runs failed; re-run `nbs sweep {study_file} --out {out}` to resume them", err=True)
        sys.exit(3)


def _executor(kind: str, address: str | None, jobs: int, cpus: float, gpus: float | None, retries: int):
    """The executor the options ask for; options of the other executor are refused, not ignored."""
    if kind == "local":
        from ..sweep.local import LocalExecutor

        given = [name for name, value in (("--address", address), ("--cpus-per-task", cpus),
                                           ("--gpus-per-task", gpus), ("--max-retries", retries)) if value is not None]
        if given:
            raise ConfigError(f"{given[0]} is for --executor ray")
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs}")
        return LocalExecutor(jobs=jobs)
    from ..sweep.ray_executor import RayExecutor, import_ray

    if jobs != 1:
        raise ConfigError("--jobs is for --executor local; a Ray cluster runs as many tasks as it has resources for")
    cpus, retries = 1.0 if cpus is None else cpus, 1 if retries is None else retries
    if cpus <= 0 or (gpus is not None and gpus < 0) or retries < 0:
        raise ConfigError("--cpus-per-task must be positive, --gpus-per-task and --max-retries at least 0")
    import_ray()   # not installed: one line now, before any work
    return RayExecutor(address=address, cpus_per_task=cpus, gpus_per_task=gpus, max_retries=retries)
