"""`nbs sweep STUDY.toml`: a whole study, here (worker processes) or on a Ray cluster."""

from __future__ import annotations

import math
import os
import shlex
import sys
from pathlib import Path

import click

from ..engine.epoch_log import LOG_KINDS
from ..errors import ConfigError
from .common import TIME_BUDGET_HELP, time_budget


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
@click.option("--node-wait", type=float, default=None, metavar="SECONDS",
              help="ray, with --address: how long to wait for a node that can take a task before giving up "
                   "(default: 60).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset file or folder.")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="Benchmark table (.parquet).")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="Replay each search step as one CUDA graph where the method's step allows it.")
@click.option("--log", "epoch_log", type=click.Choice(LOG_KINDS), default="none", show_default=True,
              help="Also log every epoch of every run (tensorboard: <run>/tensorboard/, as `nbs run --log`).")
@click.option("--time-budget", "budget_text", default=None, metavar="SECONDS",
              help=TIME_BUDGET_HELP + " The whole sweep's: runs not started when it is spent are not started "
                                      "(with --executor ray each task gets the deadline; the nodes' clocks must agree).")
@click.option("--quiet", is_flag=True, help="Only a line per run as it ends, and the summary.")
def sweep(study_file, out, dry_run, executor, address, jobs, cpus_per_task, gpus_per_task, max_retries, node_wait,
          data_root,
          benchmark, cuda_graphs, epoch_log, budget_text, quiet) -> None:
    """Run every run of a study file: methods × option grids × datasets × seeds. Re-running skips the
    finished runs and resumes the others."""
    budget = time_budget(budget_text)   # first: it counts from the command's start
    from ..sweep.expand import expand, iter_planned, unit_count
    from ..sweep.runner import run_sweep
    from ..sweep.study import load_study

    runner = _executor(executor, address, jobs, cpus_per_task, gpus_per_task, max_retries, node_wait)
    study = load_study(study_file)   # a grid past MAX_RUNS is refused here, from its axes' lengths
    # absolute here, in the driver: a Ray task on another node would put a relative --out in its own folder
    out = Path(os.path.abspath(out if out is not None else Path("sweeps") / study.name))
    if dry_run:
        from ..engine.cost import RunPlan, estimate

        # the counts come from the axes, and each line as its run is expanded: a large grid streams
        click.echo(f"{study.name}: {study.run_count()} runs in {unit_count(study)} work units under {out}")
        plans = []
        for run in iter_planned(study, out):
            click.echo(run.describe())
            plans.append(RunPlan.of(run.config, run.run_dir))
        click.echo(estimate(plans, jobs=jobs if executor == "local" else 1).line)
        return
    planned = expand(study, out)
    done = 0

    def progress(unit, outcomes) -> None:
        nonlocal done
        for o in outcomes:
            done += 1
            line = f"[{done}/{len(planned)}] {o.run_dir}: {o.message}"
            click.echo(line, err=o.state in ("failed", "diverged"))

    if budget is not None:
        click.echo(budget.line())
    summary = run_sweep(study, planned, runner, benchmark_path=benchmark, data_root=data_root,
                        cuda_graphs=cuda_graphs, quiet=quiet, epoch_log=epoch_log, log=click.echo, on_done=progress,
                        out=out, budget=budget)
    click.echo(f"{study.name}: {summary.line()}")
    if summary.paused:
        click.echo(f"time budget: {unfinished_line(summary, planned)}; "
                   f"re-run `{_rerun_command(click.get_current_context())}` to continue")
    if summary.failed:
        if summary.retryable:
            click.echo(f"nbs: some runs failed; re-run `{_rerun_command(click.get_current_context())}` to resume "
                       f"them", err=True)
        else:   # the same failures again on a re-run: say so instead of advising one
            click.echo("nbs: some runs failed for a reason a re-run meets again (above); fix that first",
                       err=True)
        sys.exit(3)


def unfinished_line(summary, planned) -> str:
    """'K of R runs unfinished, N of M epochs done': the study's progress when the time budget stopped it."""
    done = sum(o.epochs_done or 0 for o in summary.outcomes)
    total = sum(r.config.epochs for r in planned)
    return f"{len(summary.paused)} of {len(summary.outcomes)} runs unfinished, {done} of {total} epochs done"


def _rerun_command(ctx: click.Context) -> str:
    """The command the user gave, as a shell line (shlex-quoted): the study file and every option given
    on the command line, in the command's order (--dry-run aside: it ran nothing)."""
    words = ["nbs", "sweep"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif (ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE
              and param.name != "dry_run"):
            if param.is_flag and param.secondary_opts:   # --cuda-graphs/--no-cuda-graphs
                words.append(param.opts[0] if value else param.secondary_opts[0])
            elif param.is_flag:
                words.append(param.opts[0])
            else:
                words += [param.opts[0], str(value)]
    return shlex.join(words)


def _executor(kind: str, address: str | None, jobs: int, cpus: float, gpus: float | None, retries: int | None,
              node_wait: float | None):
    """The executor the options ask for; options of the other executor are refused, not ignored."""
    if kind == "local":
        from ..sweep.local import LocalExecutor

        given = [name for name, value in (("--address", address), ("--cpus-per-task", cpus),
                                           ("--gpus-per-task", gpus), ("--max-retries", retries),
                                           ("--node-wait", node_wait)) if value is not None]
        if given:
            raise ConfigError(f"{given[0]} is for --executor ray")
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs}")
        return LocalExecutor(jobs=jobs)
    from ..sweep.ray_executor import NODE_WAIT_S, RayExecutor, import_ray

    if jobs != 1:
        raise ConfigError("--jobs is for --executor local; a Ray cluster runs as many tasks as it has resources for")
    cpus, retries = 1.0 if cpus is None else cpus, 1 if retries is None else retries
    check_task_resources(cpus, gpus)
    if retries < 0:
        raise ConfigError(f"--max-retries must be at least 0, got {retries}")
    if node_wait is not None:
        if address is None:
            raise ConfigError("--node-wait is for a cluster given by --address (the local one cannot grow)")
        if not (math.isfinite(node_wait) and node_wait >= 0):
            raise ConfigError(f"--node-wait must be a number of seconds of at least 0, got {node_wait:g}")
    import_ray()   # not installed: one line now, before any work
    return RayExecutor(address=address, cpus_per_task=cpus, gpus_per_task=gpus, max_retries=retries,
                       node_wait=NODE_WAIT_S if node_wait is None else node_wait)


MIN_SHARE = 0.01   # the smallest CPU or GPU share a task may ask for (Ray's own grain, 0.0001, is no sensible task)


def check_task_resources(cpus: float, gpus: float | None) -> None:
    """One line for a request Ray could never schedule, before the data are prepared: Ray itself takes nan
    and inf with a traceback at submit time, and a fractional GPU count above 1 is never scheduled."""
    if not math.isfinite(cpus) or cpus < MIN_SHARE:
        raise ConfigError(f"--cpus-per-task must be a number of at least {MIN_SHARE:g}, got {cpus:g}")
    if gpus is not None and not (math.isfinite(gpus) and (gpus == 0 or MIN_SHARE <= gpus <= 1
                                                          or (gpus > 1 and gpus.is_integer()))):
        raise ConfigError(f"--gpus-per-task must be 0, a share of one GPU from {MIN_SHARE:g} to 1, or a whole "
                          f"number, got {gpus:g}")
