"""``nbs report`` and ``nbs plot``: thin wrappers over :mod:`nasbench_stability.report` and
:mod:`nasbench_stability.plots` (parse, call the library, print).

Registered in the main group by ``main.add_command(report)`` and ``main.add_command(plot)``;
the group turns :class:`~nasbench_stability.errors.NbsError` into a one-line message.
"""

from __future__ import annotations

from pathlib import Path

import click

_RUN_DIRS = click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
# plain strings: the library checks them and a bad one is the usual one-line error
_BAND = click.option("--band", "bands", default="ci", show_default=True,
                     help="Bands around curves over seeds: ci = 95% interval of the mean, std = ± 1 std.")
_BENCHMARK = click.option("--benchmark", type=click.Path(path_type=Path), default=None,
                          help="Benchmark table (.parquet); default: $NBS_BENCHMARK or the one under NBS_HOME.")


def _benchmark(path: Path | None, required: bool):
    """The benchmark table; for plots it is optional (no optimum line when absent)."""
    from ..bench.table import Benchmark
    from ..errors import MissingFileError

    try:
        return Benchmark.load(path)
    except MissingFileError:
        if required or path is not None:
            raise
        return None


@click.command("report")
@_RUN_DIRS
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Report folder, e.g. reports/NAME.")
@_BENCHMARK
@click.option("--title", default=None, help="Page title (default: the methods).")
@click.option("--description", default=None, help="Paragraph(s) under the title: how the runs were made, what to see.")
@click.option("--format", "formats", default="png,pdf", show_default=True,
              help="Figure files to write besides the embedded PNG (comma-separated: png, pdf, svg).")
@click.option("--rank-cells", type=int, default=0, show_default=True,
              help="Add the supernet ranking analysis with this many sampled cells per run (0 = off; slow).")
@click.option("--rank-batches", type=int, default=4, show_default=True, help="Valid batches per cell for ranking.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset (for --rank-cells).")
@_BAND
@click.option("--test", default="welch", show_default=True,
              help="Pairwise test between methods: Welch's t or Mann–Whitney U (Holm-corrected either way).")
def report(run_dirs, out, benchmark, title, description, formats, rank_cells, rank_batches, data_root, bands,
           test) -> None:
    """Write an HTML report (plus Markdown/LaTeX tables and figure files) of RUN_DIRS to --out.

    RUN_DIRS are run directories or folders holding them (e.g. the --out of `nbs run`).
    """
    from ..analysis import find_run_dirs
    from ..report import build_report

    find_run_dirs(run_dirs)  # name a missing run folder before a missing benchmark table
    files = build_report(run_dirs, out, benchmark=_benchmark(benchmark, required=True), title=title,
                         description=description, figure_formats=[f.strip() for f in formats.split(",") if f.strip()],
                         rank_cells=rank_cells, rank_batches=rank_batches, data_root=data_root, bands=bands, test=test)
    for message in files.warnings:  # also listed in the report; a damaged file must not pass unseen
        click.echo(f"nbs: warning: {message}", err=True)
    click.echo(f"wrote {files.html}")
    click.echo(f"tables: {files.markdown}, {files.latex}")
    click.echo(f"figures: {len(files.figures)} in {files.out / 'figures'}")


@click.command("plot")
@click.argument("kind")
@_RUN_DIRS
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Figure file: .png, .pdf or .svg.")
@_BENCHMARK
@click.option("--seed", type=int, default=None, help="alphas/layers/factors: plot this seed instead of the mean.")
@_BAND
def plot(kind, run_dirs, out, benchmark, seed, bands) -> None:
    """Draw one figure of RUN_DIRS: KIND is collapse, survival, warning, alphas, layers, factors, gradcorr,
    opgrads, hessian or trajectory."""
    from ..errors import quote
    from ..plots import PLOTS, UnknownPlotError, plot_runs

    if kind not in PLOTS:
        raise UnknownPlotError(f"unknown plot kind {quote(kind)}; known: {', '.join(PLOTS)}")
    path = plot_runs(kind, run_dirs, out, benchmark=_benchmark(benchmark, required=False), seed=seed, bands=bands)
    click.echo(f"wrote {path}")
