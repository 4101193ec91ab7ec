"""Our numbers beside the published ones: one tidy line per (row, column), computed from the records.

Ours, for a run row, is the final derived cell of each seed (its last recorded epoch) scored by the
benchmark column behind the printed column (:func:`analysis.bench_columns.benchmark_column`), as mean ±
sample std (ddof=1) over the seeds, with min and max and the 95% interval of our mean
(:mod:`analysis.intervals`: t-based from 5 seeds, a fixed-seed bootstrap below). The verdict
(:mod:`analysis.agreement`) weighs the paper's spread where it prints mean ± std over n runs (Welch's t
and an equivalence test from both summaries); where it prints one number, it asks whether that number
lies in our interval widened by 0.01 (the papers print two decimals). One seed gets no verdict.

A run row is compared with the print of its own BN mode (the records' ``track_running_stats``) where its
printed row exists for both (:func:`.published.published_cell`); the published column says which mode the
print ran with beside ours, or that its source does not state one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.agreement import verdict
from ..analysis.bench_columns import benchmark_column, record_column
from ..analysis.collapse import collapse_per_run
from ..analysis.intervals import DEFAULT_RULE, mean_interval
from ..analysis.loading import NoRunsError, load_runs
from ..analysis.tables import final_cell_since, final_records
from ..bench.table import Benchmark
from ..engine.records import DamagedRecordError, read_record, record_files, record_path
from ..methods.registry import get_method
from .experiments import Experiment, Row
from .published import published_cell


@dataclass
class Comparison:
    """``lines``: one per (row, column); ``seeds``: one per (run row, seed) with its final cell;
    ``records``: every epoch of every run row (``row`` column added), for the curves; ``left_out``: the
    seeds whose final record is damaged or missing (row, seed, file, problem, epoch: the latest readable
    one), which are not in ``lines`` or ``seeds``; ``load_notes``: what reading the records warned about
    (damaged files, runs left out), its paths relative to the experiment folder."""

    lines: pd.DataFrame
    seeds: pd.DataFrame
    records: pd.DataFrame
    left_out: list[dict] = field(default_factory=list)
    load_notes: list[str] = field(default_factory=list)


def row_records(run_dirs: Path | list[Path], seeds: tuple[int, ...]) -> pd.DataFrame:
    """The records of the requested seeds under one row's folder, or in the given run directories
    (empty when none ran yet)."""
    run_dirs = [run_dirs] if isinstance(run_dirs, Path) else list(run_dirs)
    run_dirs = [d for d in run_dirs if d.is_dir()]
    if not run_dirs:
        return pd.DataFrame()
    try:
        df = load_runs(run_dirs)
    except NoRunsError:
        return pd.DataFrame()
    return df[df["seed"].isin(seeds)].reset_index(drop=True)


def compare(experiment: Experiment, out: Path, seeds: tuple[int, ...], benchmark: Benchmark,
            sources: dict[str, list[Path]] | None = None) -> Comparison:
    """Our numbers beside the published ones; each run row's records from ``out/runs/<run key>``, or from
    ``sources[run key]`` (run directories made elsewhere, :func:`.runner.match_runs`)."""
    lines, seed_rows, frames, left_out, notes = [], [], [], [], []
    shown = _shown_paths(out, sources)
    for row in experiment.rows:
        where = sources.get(row.run_key, []) if sources is not None else out / "runs" / row.run_key
        df = pd.DataFrame()
        if row.kind == "run":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                df = row_records(where, seeds)
            for message in dict.fromkeys(str(w.message) for w in caught):
                warnings.warn(message, stacklevel=2)   # on stderr as before, and in the report
                notes.append(shown(message))
        last = final_records(df) if not df.empty else pd.DataFrame()
        if not last.empty:
            # a seed whose final record is damaged would be compared (and its collapse summed up) at an
            # earlier epoch's cell, which is not the search's result: it is left out, named in the report
            unfinal = _unfinal_runs(df)
            for r in last[last["run_dir"].isin(unfinal)].itertuples():
                path, problem = unfinal[r.run_dir]
                left_out.append({"row": row.label, "seed": int(r.seed), "file": shown(str(path)),
                                 "problem": problem, "epoch": int(r.epoch)})
            df = df[~df["run_dir"].isin(unfinal)].reset_index(drop=True)
            last = final_records(df) if not df.empty else pd.DataFrame()
        if not df.empty:
            frames.append(df.assign(row=row.label))
            seed_rows += _seed_lines(row, df, last)
        bn = run_bn(last) if _has_bn(row) else None
        for dataset, split in experiment.columns:
            column = benchmark_column(dataset, split)
            values = _ours(row, last, column, benchmark)
            pub = published_cell(row.published, dataset, split, bn=bn)
            lines.append(_line(row, dataset, split, column, values, pub, benchmark, bn))
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Comparison(pd.DataFrame(lines), pd.DataFrame(seed_rows), records, left_out, list(dict.fromkeys(notes)))


def _has_bn(row: Row) -> bool:
    """A run row whose search trains a network with BN (a table search trains none)."""
    return row.kind == "run" and not get_method(row.method).table_search


def run_bn(last: pd.DataFrame) -> bool | None:
    """The BN mode (track_running_stats) of a row's seeds from their final records; None where no record
    says it or the seeds disagree."""
    if last.empty or "track_running_stats" not in last:
        return None
    modes = {bool(v) for v in last["track_running_stats"].dropna()}
    return modes.pop() if len(modes) == 1 else None


def _unfinal_runs(df: pd.DataFrame) -> dict[str, tuple[Path, str]]:
    """run_dir -> (record file, problem) for each run whose latest readable epoch is not its final one: a
    newer record file is damaged (reading left it out), or its status counts epochs whose record is gone."""
    found = {}
    for run_dir, group in df.groupby("run_dir", sort=False):
        loaded = int(group["epoch"].max())
        files = record_files(Path(run_dir))
        done = pd.to_numeric(group["epochs_done"], errors="coerce").max() if "epochs_done" in group else math.nan
        final = max([loaded, *files] + ([int(done)] if math.isfinite(done) else []))
        if final <= loaded:
            continue
        if final not in files:
            found[run_dir] = (record_path(Path(run_dir), final), "missing")
            continue
        try:
            read_record(files[final])
            problem = "left out by reading"   # not seen: reading leaves out only a damaged record
        except DamagedRecordError as err:
            problem = f"damaged ({err.problem})"
        found[run_dir] = (files[final], problem)
    return found


def _shown_paths(out: Path, sources: dict[str, list[Path]] | None):
    """A function that writes the run folders' paths in a text as the report shows them: relative to the
    experiment folder, or from the run directory's name for runs made elsewhere (a committed report holds
    no path of the machine it was made on)."""
    roots = {str(Path(out).resolve()): ""}
    for run_dir in (d for dirs in (sources or {}).values() for d in dirs):
        roots.setdefault(str(Path(run_dir).resolve().parent), "")
    ordered = sorted(roots, key=len, reverse=True)

    def shown(text: str) -> str:
        for root in ordered:
            text = text.replace(root + "/", roots[root])
        return text

    return shown


def _ours(row: Row, last: pd.DataFrame, column: str, benchmark: Benchmark) -> np.ndarray:
    if row.kind == "benchmark":
        value = (benchmark.optimum(column)[0] if row.benchmark == "optimum"
                 else benchmark.lookup_one(row.benchmark)[column])
        return np.array([value], dtype=float)
    if row.kind != "run" or last.empty or record_column(column) not in last:
        return np.array([], dtype=float)
    values = last[record_column(column)].to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _line(row: Row, dataset: str, split: str, column: str, values: np.ndarray, pub, benchmark: Benchmark,
          bn: bool | None = None) -> dict:
    """One (row, column) line; ``bn``: the run's BN mode, shown beside the print's for a row that trains one."""
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    lo, hi = (float(values.min()), float(values.max())) if n else (math.nan, math.nan)
    ci = mean_interval(values, DEFAULT_RULE)
    v = verdict(mean, std, n, ci.low, ci.high, pub.mean, pub.std, pub.seeds) if pub is not None and row.kind == "run" \
        else None
    spec = next((c for c in benchmark.columns if c.name == column), None)
    shown = "" if pub is None else pub.display() + (f" ({pub.bn_display(bn)})" if _has_bn(row) else "")
    return {
        "row": row.label, "kind": row.kind, "dataset": dataset, "split": split, "column": column,
        "exact": None if spec is None else bool(spec.exact),
        "n": n, "mean": mean, "std": std, "min": lo, "max": hi,
        "ci_low": ci.low, "ci_high": ci.high, "ci_method": ci.method,
        "published": pub.mean if pub is not None else math.nan,
        "published_std": pub.std if pub is not None and pub.std is not None else math.nan,
        "published_display": shown,
        "published_note": pub.note if pub is not None else "",
        "difference": mean - pub.mean if pub is not None and n else math.nan,
        "published_seeds": pub.seeds if pub is not None and pub.seeds is not None else math.nan,
        "verdict_test": v.test if v else "", "p_differ": v.p_differ if v else math.nan,
        "p_equivalent": v.p_equivalent if v else math.nan,
        "published_inside_interval": v.inside if v else None, "verdict": v.text if v else "",
        "unavailable": row.unavailable,
    }


def _seed_lines(row: Row, df: pd.DataFrame, last: pd.DataFrame) -> list[dict]:
    """Per seed: final cell, CIFAR-10 test, status, when the cell first went ≥ 50% parameter-free and
    the first epoch from which the derived cell stayed the final one."""
    collapse = collapse_per_run(df).set_index("seed")
    out = []
    for _, r in last.iterrows():
        settled = final_cell_since(df[df["seed"] == r["seed"]])
        c = collapse.loc[r["seed"]]
        out.append({"row": row.label, "seed": int(r["seed"]), "status": str(r.get("status", "")),
                    "epochs": f"{int(r['epoch'])}/{int(r['epochs'])}", "final_cell": r["genotype"],
                    "param_free": int(r["param_free_count"]),
                    "cifar10_test": float(r.get(record_column(benchmark_column("cifar10", "test")), math.nan)),
                    "final_cell_since_epoch": settled,
                    "first_half_param_free_epoch": c["first_param_free_epoch"],
                    "best_epoch": c["best_epoch"], "acc_best": c["acc_best"], "collapsed": bool(c["collapsed"]),
                    "pack_size": r.get("pack_size"), "device": r.get("device")})
    return out
