"""The ``nbs`` command line: thin wrappers that parse, call the library, and print.

Expected mistakes (:class:`~nasbench_stability.errors.NbsError`) print one line on stderr and exit
with status 2; no traceback. Warnings (a damaged record left out of a report, an unwritable cache)
print one line each too.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import click

from ..engine.epoch_log import LOG_KINDS
from ..engine.presets import PRESET_HELP
from ..errors import ConfigError, NbsError, quote
from ..ranges import SEED
from .common import TIME_BUDGET_HELP, parse_sets, time_budget


class NbsGroup(click.Group):
    """Turns NbsError, and click's usage errors (a bad choice, a missing argument), into a one-line message
    and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():  # restores Python's printer after the command
                warnings.showwarning = _one_line_warning
                return super().invoke(ctx)
        except NbsError as err:
            # one line even when a message carries a multi-line third-party text
            click.echo(f"nbs: error: {' '.join(str(err).splitlines())}", err=True)
            sys.exit(2)
        except click.UsageError as err:
            # click would print three lines (usage, a hint, the error); the usage is one --help away
            where = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            click.echo(f"nbs: error: {' '.join(err.format_message().split())}{where}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("nbs: interrupted; finished epochs are checkpointed, re-run the command to resume", err=True)
            sys.exit(130)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's format adds the source line that warned: two lines per warning, and noise to a user."""
    text = str(message).strip().splitlines()
    click.echo(f"nbs: warning: {text[0] if text else category.__name__}", err=True)


@click.group(cls=NbsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nasbench_stability")
def main() -> None:
    """nbs — NAS-Bench-201 benchmarking and stability analysis of differentiable NAS."""


@main.command()
@click.option("--method", "-m", required=True, help="Search method (see `nbs methods`).")
@click.option("--seeds", type=int, default=1, show_default=True, help="Run seeds 0..K-1.")
@click.option("--seed-list", default=None, help="Comma-separated explicit seeds (overrides --seeds).")
@click.option("--dataset", default="cifar10", show_default=True)
@click.option("--epochs", type=int, default=None, help="Override the preset's / method's epochs.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--preset", default=None, help=PRESET_HELP)
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a run or method option.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset file or folder.")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="Benchmark table (.parquet).")
@click.option("--hessian-every", type=int, default=None, metavar="N",
              help="Record the eigenvalues of the α-Hessian of the valid loss every N epochs.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Seeds run at once in worker processes (CPU threads are shared out; one GPU is shared).")
@click.option("--pack/--no-pack", default=None,
              help="Run the seeds as one model with stacked parameters (default: on CUDA, for methods that pack; "
                   "see `nbs methods`).")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="Replay each search step as one CUDA graph where the method's step allows it.")
@click.option("--log", "epoch_log", type=click.Choice(LOG_KINDS), default="none", show_default=True,
              help="Also log every epoch elsewhere: tensorboard = event files in <run>/tensorboard/.")
@click.option("--time-budget", "budget_text", default=None, metavar="SECONDS", help=TIME_BUDGET_HELP)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(method, seeds, seed_list, dataset, epochs, device, preset, out, sets, data_root, benchmark, hessian_every,
        jobs, pack, cuda_graphs, epoch_log, budget_text, quiet) -> None:
    """Search with METHOD for several seeds; one run directory per seed, resumable."""
    budget = time_budget(budget_text)   # first: it counts from the command's start
    from ..engine.executor import run_seeds

    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    overrides = parse_sets(sets)
    if hessian_every is not None:
        overrides["hessian_every"] = str(hessian_every)
    seed_values = _seed_values(seeds, seed_list)
    results = run_seeds(method, seed_values, dataset=dataset, epochs=epochs, device=device, preset=preset,
                        out=out, overrides=overrides, data_root=data_root, benchmark_path=benchmark,
                        progress=not quiet, jobs=jobs, pack=pack, cuda_graphs=cuda_graphs, epoch_log=epoch_log,
                        budget=budget)
    failed = False
    for r in results:
        if r.state in ("diverged", "already-diverged"):  # a diverged run fails every time it is asked for
            click.echo(f"nbs: {r.message}", err=True)
            failed = True
        elif r.state.startswith("already"):
            click.echo(r.message)
        elif r.state == "paused":   # stopped by --time-budget: "N of M epochs done; re-run to continue"
            click.echo(f"{r.run_dir}: {r.message}")
        else:
            click.echo(f"{r.run_dir}: {r.state} after {r.epochs_done} {r.unit}, final cell {r.final_genotype}")
    click.echo(f"records: {out}/<run>/records/*.parquet  (read with `pandas.read_parquet`)")
    if failed:
        sys.exit(3)


MAX_SEEDS = 10_000  # --seeds K makes K run configs up front; more is a typo


def _seed_values(seeds: int, seed_list: str | None) -> list[int]:
    if seed_list is not None:
        tokens = [s.strip() for s in seed_list.split(",") if s.strip()]
        if not tokens:
            raise ConfigError(f"--seed-list has no seeds in {quote(seed_list)}; give comma-separated integers, "
                              f"e.g. --seed-list 0,1,2")
        bad = next((t for t in tokens if not re.fullmatch(r"[+-]?\d+", t)), None)
        if bad is not None:
            raise ConfigError(f"--seed-list must be comma-separated integers; {quote(bad)} is not one")
        huge = next((t for t in tokens if len(t.lstrip("+-")) > 4_000), None)
        if huge is not None:  # int() refuses 4,300+ digits
            SEED.check("seed", huge)
        return [int(t) for t in tokens]
    if not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds must be between 1 and {MAX_SEEDS:,}, got {seeds}")
    return list(range(seeds))


@main.command()
@click.option("--show", "show", default=None, metavar="NAME", help="Print one method's defaults and sources.")
def methods(show: str | None) -> None:
    """List the search methods, or show one method's options."""
    from ..methods.describe import describe_method, list_lines

    click.echo(describe_method(show) if show else list_lines())


@main.group()
def bench() -> None:
    """Build the NAS-Bench-201 lookup table."""


@bench.command("build")
@click.option("--source", type=click.Path(path_type=Path), default=None,
              help="Folder with nats_bench.csv, mini-bench pickle, NASLib zip (default: nb201/ in $NBS_SHARED, "
                   "else in the ../shared beside this checkout).")
@click.option("--nb201-pth", type=click.Path(path_type=Path), default=None, help="Official NAS-Bench-201 .pth.")
@click.option("--nats", "nats_path", type=click.Path(path_type=Path), default=None, help="NATS-Bench topology data.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Table path (default: the search order).")
@click.option("--force", is_flag=True, help="Replace an existing table.")
@click.option("--if-missing", is_flag=True, help="Do nothing when the table already exists.")
def bench_build(source, nb201_pth, nats_path, out, force, if_missing) -> None:
    from ..bench.build import build_and_write
    from ..bench.locate import table_path

    if if_missing and table_path(out).exists():
        click.echo(f"benchmark table present: {table_path(out)}")
        return
    path = build_and_write(out, source, nb201_pth=nb201_pth, nats_path=nats_path, force=force)
    click.echo(f"wrote {path}")


# ignore_unknown_options: `nbs query -1` is an index (out of range), not an unknown option
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("arch")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None)
def query(arch: str, benchmark: Path | None) -> None:
    """Print every known metric of one cell (arch string, NASLib tuple or NB201 index)."""
    from ..bench.query import format_cell_report
    from ..bench.table import Benchmark

    click.echo(format_cell_report(Benchmark.load(benchmark), arch))


def _register_analysis_commands() -> None:
    from .analysis_commands import plot, report
    from .reproduce_command import reproduce
    from .status_command import status
    from .sweep_command import sweep

    main.add_command(report)
    main.add_command(plot)
    main.add_command(reproduce)
    main.add_command(status)
    main.add_command(sweep)


_register_analysis_commands()

if __name__ == "__main__":
    main()
