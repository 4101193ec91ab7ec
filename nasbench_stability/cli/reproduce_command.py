"""``nbs reproduce``: a seed paper's NB201 experiment in one command, our numbers beside the published ones.

A thin wrapper over :mod:`nasbench_stability.reproduce` (parse, call the library, print); registered in
the main group, which turns :class:`~nasbench_stability.errors.NbsError` into one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..engine.presets import PRESET_HELP
from .common import TIME_BUDGET_HELP, time_budget


def _list_text(device: str) -> str:
    from ..engine.config import default_preset
    from ..reproduce.experiments import EXPERIMENTS
    from ..reproduce.runner import listed_estimate

    here = default_preset(device)
    lines = []
    for exp in EXPERIMENTS.values():
        runs = exp.runs()
        missing = [r.label for r in exp.rows if r.kind == "unavailable"]
        lines.append(f"{exp.name}: {exp.title}")
        lines.append(f"  runs: {len(runs)} distinct (method × settings) × {exp.seeds} seeds; rows: "
                     f"{len(exp.run_rows())} run, {sum(r.kind == 'benchmark' for r in exp.rows)} from the benchmark, "
                     f"{len(missing)} not available" + (f" ({', '.join(missing)})" if missing else ""))
        for row in runs.values():
            sets = " ".join(row.set_args())
            lines.append(f"    {row.method}{' ' + sets if sets else ''}")
        lines.append(f"  paper on one GPU: {listed_estimate(exp, exp.seeds, 'paper', 'cuda').line}")
        lines.append(f"  {here} on this machine ({device}): {listed_estimate(exp, exp.seeds, here, device).line}")
    lines.append("run one: nbs reproduce NAME [--seeds K] [--preset smoke|cpu|cpu-small|paper] [--out DIR]")
    return "\n".join(lines)


def _unfinished(results, plan) -> str:
    """'K of R seed runs unfinished, N of M epochs done' over the experiment's runs."""
    rs = [r for runs in results.values() for r in runs]
    total = sum(c.epochs for configs in plan.configs().values() for c in configs)
    return (f"{sum(r.state == 'paused' for r in rs)} of {len(rs)} seed runs unfinished, "
            f"{sum(r.epochs_done for r in rs)} of {total} epochs done")


@click.command("reproduce")
@click.argument("name", required=False)
@click.option("--list", "list_", is_flag=True, help="Name every experiment, with its runs and cost.")
@click.option("--seeds", type=int, default=None, help="Seeds 0..K-1 (default: as many as the paper ran).")
@click.option("--preset", default=None, help=PRESET_HELP)
@click.option("--epochs", type=int, default=None, help="Override the epochs (the report then says it is not the paper's setting).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Experiment folder (default: reproduce/NAME/PRESET).")
@click.option("--row", "rows", multiple=True, metavar="LABEL",
              help="Run only this row (repeatable; e.g. --row DARTS --row Single-DARTS); the others are listed as not run.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A run or method option for every run (e.g. hessian_every=5); not one a row sets itself.")
@click.option("--report-only", is_flag=True, help="Rewrite the report from the records in --out; run nothing.")
@click.option("--from-runs", "from_runs", type=click.Path(path_type=Path), multiple=True, metavar="DIR",
              help="Report from runs made elsewhere (e.g. an `nbs sweep` folder; repeatable), matched to the rows "
                   "by config (give the --preset, --epochs and --set they were made with); run nothing.")
@click.option("--pack/--no-pack", default=None, help="Packed seeds (default: on CUDA, for methods that pack).")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset file or folder.")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="Benchmark table (.parquet).")
@click.option("--time-budget", "budget_text", default=None, metavar="SECONDS",
              help=TIME_BUDGET_HELP + " The report is written once a re-run finds every run finished (or by "
                                      "--report-only).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def reproduce(name, list_, seeds, preset, epochs, device, out, rows, sets, report_only, from_runs, pack, cuda_graphs,
              data_root, benchmark, budget_text, quiet) -> None:
    """Run a seed paper's NB201 experiment NAME and report our numbers beside the published ones."""
    budget = time_budget(budget_text)   # first: it counts from the command's start
    from ..bench.build import ensure_table
    from ..bench.table import Benchmark
    from ..engine.config import resolve_device
    from ..errors import ConfigError
    from ..reproduce.experiments import get_experiment
    from ..reproduce.report import plan_from_manifest, write_report
    from ..destinations import check_writable, ensure_folder, writing
    from ..reproduce.runner import MANIFEST, execute, make_plan, match_runs, runs_from_text, write_manifest
    from .common import parse_sets

    if list_:
        click.echo(_list_text(resolve_device(device)))
        return
    if name is None:
        raise ConfigError("name an experiment (nbs reproduce --list shows them)")
    if budget is not None and (report_only or from_runs):
        raise ConfigError(f"--time-budget limits running; {'--report-only' if report_only else '--from-runs'} "
                          f"runs nothing")
    plan = make_plan(get_experiment(name), seeds=seeds, preset=preset, device=device, epochs=epochs, out=out,
                     rows=tuple(rows), extra=parse_sets(sets))
    sources = runs_from = table = None
    if from_runs:
        if report_only:
            raise ConfigError("--from-runs already runs nothing; drop --report-only")
        sources = match_runs(plan, from_runs)
        runs_from = runs_from_text(from_runs, sources)
        check_writable(plan.out, "--out folder")
        table = Benchmark.load(ensure_table(benchmark, log=click.echo))   # a refusal comes before the manifest
        ensure_folder(plan.out, "--out folder")
        with writing(plan.out / MANIFEST, "experiment manifest"):
            write_manifest(plan, runs_from=runs_from)
    elif report_only:   # the folder's own manifest says what was run there
        plan = plan_from_manifest(plan.out)
        if plan.experiment.name != name:
            raise ConfigError(f"{plan.out} holds experiment {plan.experiment.name}, not {name}")
        if plan.runs_from is not None:
            raise ConfigError(f"{plan.out} was reported from runs made elsewhere ({plan.runs_from}); "
                              f"rewrite it with --from-runs DIR")
    else:
        results = execute(plan, data_root=data_root, benchmark_path=benchmark, progress=not quiet, pack=pack,
                          cuda_graphs=cuda_graphs, log=click.echo, budget=budget)
        for key, rs in results.items():
            states = sorted({r.state for r in rs})
            click.echo(f"{key}: {len(rs)} seed(s) {', '.join(states)}")
        if any(r.state == "paused" for rs in results.values() for r in rs):
            # the report would spend time the budget does not have, on numbers that are not final
            click.echo(f"time budget: {_unfinished(results, plan)}; re-run to continue (REPORT.md is written when "
                       f"every run has finished; --report-only writes it from the epochs so far)")
            return
    if table is None:
        table = Benchmark.load(ensure_table(benchmark, log=click.echo))
    files = write_report(plan, table, sources, runs_from)
    click.echo(f"wrote {files.markdown}")
    click.echo(f"numbers: {files.comparison}, {files.seeds}" + (f"; figures: {len(files.figures)}" if files.figures else ""))
