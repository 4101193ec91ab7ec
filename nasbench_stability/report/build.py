"""``build_report``: run directories in; an HTML page, Markdown and LaTeX tables and figure files out.

    reports/NAME/index.html      self-contained page (figures embedded, tables, configs, provenance)
    reports/NAME/tables.md       every table in Markdown
    reports/NAME/tables.tex      every table in LaTeX (booktabs)
    reports/NAME/figures/*.png|pdf

The page says where every number comes from: which runs (with their full configs), which
benchmark table, which of its columns are exact and which approximate, and the collapse criteria.
"""

from __future__ import annotations

import html
import json
import math
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..analysis.bench_columns import RECORD_PREFIX, result_columns
from ..analysis.collapse import CollapseCriteria, collapse_display, collapse_per_run, collapse_summary
from ..analysis.trajectories import supernet_records, table_search_rows
from ..analysis.loading import PathsLike, load_runs, run_index
from ..analysis.schedule import cut_schedule_notes
from ..analysis.pairwise import WELCH, PairwiseOptions, dataset_title, pairwise_display, pairwise_tests
from ..analysis.survival import (collapse_events, logrank_display, logrank_tests, survival_display, survival_notes,
                                 survival_summary)
from ..analysis.tables import per_seed_display, per_seed_table, results_table
from ..analysis.warning import EarlyWarning, early_warning, lead_display, stop_display, warning_display, warning_notes
from ..bench.columns import METRIC_COLUMNS, ColumnSpec
from ..bench.table import Benchmark
from ..destinations import check_writable, ensure_folder, writing
from ..engine.atomic import write_text_atomic
from ..errors import ConfigError
from ..plots.common import check_band
from .figures import ReportFigure, render_figures, render_warning_figure
from .page import Section, figure_html, figures_section, render_page, table_section
from .tables import Table, to_latex, to_markdown

RUN_TABLE_COLUMNS = {
    "run": "run", "method": "method", "seed": "seed", "preset": "preset", "status": "status",
    "epochs_done": "epochs done", "epochs": "epochs", "channels": "C", "cells_per_stage": "N",
    "data_subset": "images per half", "eval_batches": "eval batches", "batch_size": "batch",
    "mode": "mode", "activation": "activation", "order": "order", "step_order": "step order",
    "lr_schedule": "lr schedule", "track_running_stats": "BN running stats", "hessian_every": "Hessian every",
    "device": "device",
}


@dataclass(frozen=True)
class ReportFiles:
    out: Path
    html: Path
    markdown: Path
    latex: Path
    figures: tuple[ReportFigure, ...]
    tables: tuple[Table, ...]
    warnings: tuple[str, ...] = ()   # what loading the runs warned about (damaged files, runs left out)


def build_report(paths: PathsLike, out: str | Path, *, benchmark: Benchmark | None = None,
                 title: str | None = None, description: str | None = None, criteria: CollapseCriteria = CollapseCriteria(),
                 figure_formats: Sequence[str] = ("png", "pdf"), rank_cells: int = 0, rank_batches: int = 4,
                 data_root: str | Path | None = None, bands: str = "ci", test: str = WELCH) -> ReportFiles:
    """Write the report of the runs under ``paths`` to the folder ``out`` (created; files replaced).

    ``benchmark`` adds the optimal row and the exact/approximate provenance; ``description`` is a
    paragraph under the title (how the runs were made, what to look at); ``rank_cells > 0`` adds
    the supernet ranking analysis (restores every supported run and evaluates cells: slow). ``bands``:
    the curves' bands (ci: the mean's 95% interval; std: ± 1 std); ``test``: the pairwise test between
    methods (welch | mannwhitney).
    """
    options = PairwiseOptions(test=test)     # bad options fail before anything is read or written
    check_band(bands)
    out = check_writable(out, "report folder")  # before the slow part; creates nothing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_runs(paths)
        runs = run_index(paths)
    load_warnings = tuple(dict.fromkeys(str(w.message) for w in caught))  # both calls read each status
    load_notes = list(load_warnings)
    searched = sorted(df["dataset"].astype(str).unique())
    if len(searched) > 1:
        raise ConfigError(f"the runs searched on several datasets ({', '.join(searched)}); tables group by method, "
                          f"so make one report per search dataset")
    mixed = runs.groupby("method")["preset"].nunique()
    load_notes += [f"{m}: runs of several presets are pooled as seeds of one method" for m in mixed[mixed > 1].index]
    # tables first: the ranking analysis restores checkpoints and may refuse one; then nothing is written
    epoch_df = supernet_records(df)
    warning = early_warning(epoch_df, criteria) if not epoch_df.empty else None
    tables = _tables(df, epoch_df, runs, benchmark, criteria, rank_cells, rank_batches, data_root, options, warning)
    roots = [Path(p).expanduser().resolve() for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    ensure_folder(out / "figures", "report figure folder")
    figures, skipped = render_figures(df, out / "figures", benchmark=benchmark, formats=figure_formats, bands=bands)
    warning_figure, warning_skipped = (render_warning_figure(warning, out / "figures", formats=figure_formats,
                                                             bands=bands) if warning is not None else (None, ""))
    title = title or f"nbs report: {', '.join(sorted(df['method'].astype(str).unique()))}"

    by_key = {t.key: t for t in tables}
    sections = [
        table_section("results", "Final results", [by_key["results"]]),
    ]
    if "collapse" in by_key:
        sections.append(table_section("collapse", "Collapse statistics", [by_key["collapse"], by_key["collapse-runs"]]))
    statistics = [t for t in tables if t.key.startswith(("pairwise-", "survival", "logrank"))]
    if statistics:
        sections.append(table_section("statistics", "Statistics across seeds", statistics, intro=STATISTICS_INTRO))
    if "warning" in by_key:
        sections.append(_warning_section([t for t in tables if t.key.startswith("warning")], warning_figure,
                                         warning_skipped))
    sections += [
        figures_section(figures, skipped),
    ]
    if "ranking" in by_key:
        sections.append(table_section("ranking", "Supernet ranking", [by_key["ranking"]]))
    sections += [
        table_section("seeds", "Per-seed results", [by_key["seeds"]]),
        table_section("benchmark", "Benchmark columns and their provenance", [by_key["benchmark"]],
                      intro=_benchmark_intro(benchmark, roots)),
        Section("runs", "Runs and configurations", _runs_body(by_key["runs"], runs, load_notes, roots)),
    ]
    meta = _meta_line(df, runs, benchmark, roots)
    cut = cut_schedule_notes(runs)   # first thing a reader sees: a cut schedule hides collapse
    description = "\n\n".join([f"Epochs cut: {note}." for note in cut] + ([description] if description else []))
    html_path, md_path, tex_path = out / "index.html", out / "tables.md", out / "tables.tex"
    intro = f"{html.unescape(meta)}\n\n" + (f"{description}\n\n" if description else "")
    texts = {
        html_path: render_page(title, meta, sections, _version(), description or ""),
        md_path: f"# {title}\n\n{intro}" + "\n".join(to_markdown(t) for t in tables),
        tex_path: "% nbs report tables; needs \\usepackage{booktabs}\n" + "\n".join(to_latex(t) for t in tables),
    }
    for path, text in texts.items():  # each replaced in one rename: never a half-written page
        with writing(path, "report file"):
            write_text_atomic(path, text)
    all_figures = tuple(figures) + ((warning_figure,) if warning_figure is not None else ())
    return ReportFiles(out, html_path, md_path, tex_path, all_figures, tuple(tables), load_warnings)


# ---- tables ----------------------------------------------------------------------------------
def _tables(df: pd.DataFrame, epoch_df: pd.DataFrame, runs: pd.DataFrame, benchmark: Benchmark | None,
            criteria: CollapseCriteria, rank_cells: int, rank_batches: int, data_root, options: PairwiseOptions,
            warning: EarlyWarning | None = None) -> list[Table]:
    results = results_table(df, benchmark)
    columns = result_columns(benchmark.columns if benchmark is not None else None)
    tables = [
        Table("results", "Final derived cells in NAS-Bench-201 (accuracy %, 200 epochs)", results.display(),
              tuple(results.footnotes())),
    ]
    # a table search's records are checkpoints of its queries, not epochs: no collapse statistics
    table_methods = sorted(df.loc[table_search_rows(df), "method"].astype(str).unique())
    left_out = ((f"Left out: {', '.join(table_methods)}, which search the benchmark table (their records are "
                 f"checkpoints of a query trajectory, not search epochs; see the best-so-far figure).",)
                if table_methods else ())
    if not epoch_df.empty:
        tables += [
            Table("collapse", "Collapse statistics per method (CIFAR-10 test accuracy %, NB201 200 epochs)",
                  collapse_display(collapse_summary(epoch_df, criteria, results.rule), criteria),
                  (criteria.describe(), results.rule.describe(),
                   f"collapsed: [a, b] is the Wilson {results.rule.confidence:.0%} interval of the fraction.", *left_out)),
            Table("collapse-runs", "Collapse statistics per run", _collapse_runs_display(epoch_df, criteria)),
        ]
    tables += _statistics_tables(df, epoch_df, criteria, options)
    if warning is not None:
        tables += _warning_tables(warning)
    if rank_cells > 0:
        tables.append(_ranking_table(df, rank_cells, rank_batches, data_root, benchmark))
    tables += [
        Table("seeds", "Final derived cell of every run", per_seed_display(per_seed_table(df, columns), columns),
              ("Accuracy (%) in NAS-Bench-201 (200-epoch training) of each run's final derived cell, i.e. the "
               "cell of its last recorded epoch.", *results.provenance_notes())),
        Table("benchmark", "Benchmark accuracy columns in the records", _benchmark_display(df, benchmark)),
        Table("runs", "Runs", _runs_display(runs)),
    ]
    return tables


STATISTICS_INTRO = ("Is one method better, or more stable, than another? Pairwise tests of the final cells' accuracy "
                    "and the time to collapse as survival; every number says which test made it and how many seeds "
                    "stand behind it.")


def _statistics_tables(df: pd.DataFrame, epoch_df: pd.DataFrame, criteria: CollapseCriteria,
                       options: PairwiseOptions) -> list[Table]:
    """Pairwise tests per dataset (two methods or more) and collapse as survival (runs with search epochs)."""
    tables = []
    if df["method"].nunique() > 1:
        tests = pairwise_tests(df, options=options)
        for dataset in tests["dataset"].unique():
            tables.append(Table(f"pairwise-{dataset}", f"Pairwise differences: {dataset_title(dataset)} test accuracy "
                                f"(%, NB201 200 epochs) of the final cells", pairwise_display(tests, dataset),
                                (options.describe(),)))
    if not epoch_df.empty:
        events = collapse_events(epoch_df, criteria)
        notes = survival_notes(criteria, options.min_seeds)
        tables.append(Table("survival", "Collapse as survival: epochs to the first collapse",
                            survival_display(survival_summary(events)), notes[:2]))
        if events["method"].nunique() > 1:
            tables.append(Table("logrank", "Collapse as survival: log-rank tests between methods",
                                logrank_display(logrank_tests(events, options.min_seeds)), notes[2:]))
    return tables


WARNING_INTRO = ("Which recorded signal warns that a run will collapse, how many epochs ahead, and how reliably? Each "
                 "indicator is read only from the records up to the epoch it is read at; runs that never collapsed "
                 "are the controls. An indicator whose signal these runs did not record is listed as such.")


def _warning_tables(warning: EarlyWarning) -> list[Table]:
    """The ranking at the report's k (always, with the reason when the runs are too few), then, when the analysis
    ran, the lead times and the early stop."""
    k, notes = warning.options.report_k, warning_notes(warning)
    tables = [Table("warning", f"Early warning: indicators ranked by AUC {k} epochs before the collapse",
                    warning_display(warning), notes)]
    if warning.ok:
        far = f"{warning.options.false_alarm_rate:.0%}"
        tables += [
            Table("warning-leads", f"Early warning: alarms at ≤ {far} false alarms on controls, and lead times",
                  lead_display(warning), (notes[2],)),
            Table("warning-stop", "Early warning: test accuracy (%) of the cell an early stop on the alarm returns",
                  stop_display(warning), (notes[3],)),
        ]
    return tables


def _warning_section(tables: list[Table], figure: ReportFigure | None, skipped: str) -> Section:
    section = table_section("warning", "Early warning", tables, intro=WARNING_INTRO)
    extra = figure_html(figure) if figure is not None else (
        f'<div class="notes"><p>Not shown — {html.escape(skipped)}</p></div>' if skipped else "")
    return Section(section.key, section.title, section.body + extra)


def _collapse_runs_display(df: pd.DataFrame, criteria: CollapseCriteria) -> pd.DataFrame:
    per_run = collapse_per_run(df, criteria)
    return pd.DataFrame({
        "method": per_run["method"].astype(str), "seed": per_run["seed"].astype(str),
        "epochs": per_run["epochs_recorded"].astype(str),
        "best epoch": per_run["best_epoch"].map(_int_or_dash),
        "acc. at best": per_run["acc_best"].map(lambda v: f"{v:.2f}"),
        "acc. at end": per_run["acc_end"].map(lambda v: f"{v:.2f}"),
        "drop": per_run["drop"].map(lambda v: f"{v:.2f}"),
        f"first epoch ≥ {criteria.param_free_fraction:.0%} param-free": per_run["first_param_free_epoch"].map(_int_or_dash),
        "final param-free ops": per_run["final_param_free"].astype(str),
        "collapsed": per_run["collapsed"].map({True: "yes", False: "no"}),
    })


def _ranking_table(df: pd.DataFrame, n_cells: int, batches: int, data_root, benchmark: Benchmark | None) -> Table:
    from ..analysis.ranking import UnsupportedAnalysisError, rank_correlation

    rows, notes = [], []
    # a table search (rs, rea, ...) trains no supernet, so it has no shared weights to rank cells with:
    # left out with a note, not a failed report for every run beside it
    table_runs = df.loc[table_search_rows(df), ["run_dir", "method"]].drop_duplicates("run_dir")
    if not table_runs.empty:
        methods = ", ".join(sorted(table_runs["method"].astype(str).unique()))
        notes.append(f"Left out: {len(table_runs)} run(s) of {methods}, which search the benchmark table and train "
                     f"no supernet.")
    for run_dir in sorted(set(df["run_dir"].unique()) - set(table_runs["run_dir"])):
        try:
            result = rank_correlation(run_dir, n_cells, batches, seed=0, data_root=data_root, benchmark=benchmark)
        except UnsupportedAnalysisError as err:
            notes.append(str(err))
            continue
        s = result.summary()
        rows.append({k: (f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in s.items()})
    notes.insert(0, f"{n_cells} cells sampled uniformly (seed 0) from NB201, each evaluated with the run's final "
                    f"shared weights (one-hot op weights, BatchNorm on batch statistics) on the first {batches} "
                    f"batches of the run's valid split; rank correlation with the benchmark column.")
    columns = ["run", "method", "cells", "valid examples", "benchmark column", "Kendall τ", "p (τ)", "Spearman ρ",
               "p (ρ)"]   # RankingResult.summary's: a table of no ranked run still says what it would hold
    return Table("ranking", "Supernet ranking: benchmark vs shared-weight accuracy",
                 pd.DataFrame(rows, columns=columns), tuple(notes))


def _benchmark_display(df: pd.DataFrame, benchmark: Benchmark | None) -> pd.DataFrame:
    names = [c[len(RECORD_PREFIX):] for c in df.columns
             if c.startswith(RECORD_PREFIX) and c[len(RECORD_PREFIX):] in METRIC_COLUMNS]
    specs: dict[str, ColumnSpec] = {s.name: s for s in benchmark.columns} if benchmark is not None else {}
    rows = []
    for name in names:
        spec = specs.get(name)
        rows.append({"column": name,
                     "exact?": spec.exactness if spec else "unknown (no benchmark table given)",
                     "source": spec.source if spec else "", "note": spec.note if spec else "",
                     "best value": f"{benchmark.optimum(name)[0]:.2f}" if spec else ""})
    return pd.DataFrame(rows)


def _benchmark_intro(benchmark: Benchmark | None, roots: Sequence[Path] = ()) -> str:
    if benchmark is None:
        return ("No benchmark table was given: the records' benchmark values are shown, but not which are exact. "
                "Pass --benchmark to add provenance and the optimal row.")
    return (f"Benchmark table: {_shown_path(benchmark.path, roots)} ({len(benchmark)} cells). Every record stores the "
            f"benchmark values of the cell derived at that epoch; 'exact' columns equal the official NAS-Bench-201 "
            f"seed means, 'approximate' ones (marked † in the results) come from a different source.")


def _runs_display(runs: pd.DataFrame) -> pd.DataFrame:
    shown = runs[[c for c in RUN_TABLE_COLUMNS if c in runs]].rename(columns=RUN_TABLE_COLUMNS)
    return shown.map(lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _runs_body(table: Table, runs: pd.DataFrame, load_notes: list[str], roots: Sequence[Path] = ()) -> str:
    from .tables import to_html

    body = [f'<div class="scroll">{to_html(table)}</div>']
    if load_notes:
        body.append('<div class="notes">' + "".join(f"<p>{html.escape(n)}</p>" for n in load_notes) + "</div>")
    for run in runs.itertuples(index=False):
        body.append(f"<details><summary><code>{html.escape(str(run.run))}</code> — "
                    f"{html.escape(_shown_path(run.run_dir, roots))}</summary>"
                    f"<pre>{html.escape(json.dumps(run.config, indent=2, default=str), quote=False)}</pre></details>")
    return "\n".join(body)


# ---- small helpers ---------------------------------------------------------------------------
def _meta_line(df: pd.DataFrame, runs: pd.DataFrame, benchmark: Benchmark | None, roots: Sequence[Path] = ()) -> str:
    methods = sorted(df["method"].astype(str).unique())
    presets = sorted(runs["preset"].dropna().astype(str).unique())
    status = runs["status"].value_counts().to_dict()
    parts = [f"{len(runs)} runs of {len(methods)} methods ({', '.join(methods)})",
             f"preset {', '.join(presets)}",
             "status " + ", ".join(f"{v} {k}" for k, v in sorted(status.items())),
             f"benchmark {_shown_path(benchmark.path, roots) if benchmark is not None else 'not given'}",
             f"generated {time.strftime('%Y-%m-%d %H:%M %Z')} by nbs {_version()}"]
    return html.escape(" · ".join(parts))


def _int_or_dash(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))


def _shown_path(path, roots: Sequence[Path] = ()) -> str:
    """A path as a committed report may show it, never one of the machine it was made on: relative to the
    working directory when under it, else to the parent of the run folder it lies in (``sweep/…``), else
    its name alone."""
    if path is None:
        return "?"
    p = Path(path).resolve()
    for base in (Path.cwd().resolve(), *(r.parent for r in roots)):
        try:
            return str(p.relative_to(base))
        except ValueError:
            continue
    return p.name


def _version() -> str:
    try:
        return metadata.version("nasbench_stability")
    except metadata.PackageNotFoundError:
        return "unknown"
