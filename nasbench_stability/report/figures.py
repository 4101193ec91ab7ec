"""The report's figures: which ones, in which order, with which caption; written as files and
kept as PNG bytes for embedding.

A figure whose data the runs do not have (no Hessian measured, no DNAS run) is skipped with a
one-line reason instead of failing the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..analysis.warning import EarlyWarning
from ..bench.table import Benchmark
from ..plots import NothingToPlotError, make_plot, plot_warning, save_figure

# (plot kind, title, caption) in report order; {spread} says what the curves' bands are.
REPORT_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("collapse", "Collapse curves",
     "Benchmark test accuracy (NB201, 200-epoch training) of the cell derived at each search epoch, "
     "{spread} (one line per method; bi-level dashed, single-level solid); the dashed black "
     "line is the best cell of the space. Below: parameter-free ops (none, skip, pool) in the derived cell; "
     "dotted: half of the 6 edges."),
    ("survival", "Collapse as survival",
     "Kaplan–Meier estimate of the fraction of each method's runs not yet collapsed after each search epoch (the "
     "first epoch at which the collapse criterion held is the event; + marks runs censored there, i.e. never "
     "collapsed up to their last recorded epoch); shaded: its 95% interval. The statistics section gives the "
     "median epochs to collapse and the log-rank tests."),
    ("trajectory", "Best-so-far curves of the table searches",
     "RS, REA, REINFORCE and BOHB search the benchmark table: the benchmark test accuracy of the best cell found so "
     "far (best by the search signal, hp=12 valid accuracy) against the queries asked, {spread}; "
     "the dashed black line is the best cell of the space. These runs are not in the collapse curves above."),
    ("alphas", "Architecture weights",
     "Op weights after activation (softmax or sigmoid of α) per edge over the search, {spread}. "
     "Triangles mark epochs where the argmax op of an edge (hence the derived cell) changed, coloured by the new op."),
    ("layers", "DNAS per-layer weights",
     "ψ of every searchable cell (rows) for each edge and op (columns), at the first, middle and last epoch of one seed."),
    ("factors", "Factorized weights (β)",
     "The second group of architecture weights of the factorized methods per edge over the search."),
    ("gradcorr", "Gradient correlation",
     "Between the weight gradient of the w step's batch and of the α step's batch, over learnable ops "
     "(Single-DARTS §4.2): single-level methods share one batch (cosine 1), bi-level ones do not."),
    ("opgrads", "Operator gradients",
     "∂L/∂α as the α optimizer saw it, per op (mean over the 6 edges and the epoch's steps), {spread}."),
    ("hessian", "Hessian eigenvalues",
     "Largest (left; the indicator of Zela et al.) and smallest (right) eigenvalue of the Hessian of the "
     "validation loss w.r.t. α, from the exact Hessian (one Hessian-vector product per α entry) on fixed "
     "valid batches, at the epochs where it was measured; {spread}. Runs recorded before the "
     "exact spectrum show their power-iteration estimate as the largest eigenvalue."),
)

# Drawn in the report's "Early warning" section, from the analysis the section's tables show (not make_plot:
# that would analyse the runs again, with the default criteria).
WARNING_FIGURE: tuple[str, str, str] = (
    "warning", "Early warning of collapse",
    "Top: AUC of each indicator, read k epochs before each collapse, against controls read at the same epoch "
    "(0.5: chance; shaded: 95% bootstrap interval over runs; the grey line marks the k of the table). Below: each "
    "recorded indicator against epochs from the collapse, collapsing runs vs controls (each control aligned on the "
    "collapse epochs of the runs it is compared with), {spread} taken over runs.")

SPREAD_WORDS = {"ci": "mean over seeds with the 95% interval of the mean (t-based from 5 seeds, bootstrap below)",
                "std": "mean ± std over seeds"}

# Method-specific figures: absent without such runs, which is not worth a note.
METHOD_SPECIFIC = frozenset({"layers", "factors", "trajectory"})


@dataclass(frozen=True)
class ReportFigure:
    key: str
    title: str
    caption: str
    files: tuple[Path, ...]     # the written files; the first is the PNG

    @property
    def png(self) -> Path:
        return self.files[0]


def render_figures(df: pd.DataFrame, out_dir: Path, *, benchmark: Benchmark | None = None,
                   formats: Sequence[str] = ("png", "pdf"),
                   kinds: Sequence[str] | None = None, bands: str = "ci") -> tuple[list[ReportFigure], list[str]]:
    """Draw and save every report figure the records support, curves over seeds with ``bands`` (ci | std);
    returns (figures, skipped notes)."""
    formats = _formats(formats)
    figures, skipped = [], []
    for kind, title, caption in REPORT_FIGURES:
        if kinds is not None and kind not in kinds:
            continue
        try:
            fig = make_plot(kind, df, benchmark=benchmark, bands=bands)
        except NothingToPlotError as err:
            if kind not in METHOD_SPECIFIC:
                skipped.append(f"{title}: {err}")
            continue
        files = tuple(save_figure(fig, out_dir / f"{kind}.{fmt}") for fmt in formats)
        figures.append(ReportFigure(kind, title, caption.format(spread=SPREAD_WORDS[bands]), files))
    return figures, skipped


def render_warning_figure(result: EarlyWarning, out_dir: Path, *, formats: Sequence[str] = ("png", "pdf"),
                          bands: str = "ci") -> tuple[ReportFigure | None, str]:
    """The early-warning figure of ``result``, saved; (None, why) when the analysis has nothing to draw."""
    kind, title, caption = WARNING_FIGURE
    try:
        fig = plot_warning(result, bands=bands)
    except NothingToPlotError as err:
        return None, f"{title}: {err}"
    files = tuple(save_figure(fig, out_dir / f"{kind}.{fmt}") for fmt in _formats(formats))
    return ReportFigure(kind, title, caption.format(spread=SPREAD_WORDS[bands]), files), ""


def _formats(formats: Sequence[str]) -> list[str]:
    return ["png"] + [f for f in formats if f != "png"]   # the page embeds the PNG
