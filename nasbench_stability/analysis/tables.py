"""Final-result tables in the layout of the published NB201 tables, and the per-seed table behind them.

The unit of a result is one seed's *final derived cell* (the last recorded epoch of the run),
scored by the benchmark; a method's entry is the mean ± sample standard deviation (ddof = 1) of
those scores over its seeds and the 95% interval of that mean (:mod:`.intervals`). A run still in progress contributes its latest epoch and is counted
in the table's footnotes, so a report on running experiments never silently mixes states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..bench.table import Benchmark
from ..errors import NbsError
from .bench_columns import ResultColumn, result_columns
from .intervals import DEFAULT_RULE, IntervalRule, mean_interval, with_interval

GROUP = "method"
FINISHED = "finished"


def final_records(df: pd.DataFrame) -> pd.DataFrame:
    """The last recorded epoch of every run (one row per ``run_dir``), with ``finished``."""
    if df.empty:
        raise NbsError("no records to summarize")
    key = "run_dir" if "run_dir" in df else "run"
    last = df.sort_values([key, "epoch"], kind="stable").groupby(key, sort=False).tail(1)
    last = last.assign(finished=last.get("status", pd.Series(FINISHED, index=last.index)).eq(FINISHED))
    order = [c for c in (GROUP, "dataset", "seed", key) if c in last]
    return last.sort_values(order, kind="stable").reset_index(drop=True)


def format_mean_std(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``93.76 ± 0.12``; a single seed has no spread, so just the mean; no value → ``–``."""
    if n == 0 or not math.isfinite(mean):
        return "–"
    if n < 2 or not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass(frozen=True)
class TimeUnit:
    name: str
    seconds: float

    @classmethod
    def for_seconds(cls, seconds: Sequence[float]) -> "TimeUnit":
        """The unit that keeps the largest value readable (s below 2 min, min below 2 h, else h)."""
        top = max([s for s in seconds if math.isfinite(s)], default=0.0)
        return cls("s", 1.0) if top < 120 else cls("min", 60.0) if top < 7200 else cls("h", 3600.0)


def final_cell_since(run: pd.DataFrame) -> int:
    """The first epoch from which one run's derived cell stayed its final one (a cell that came, went
    and came back counts from its last arrival)."""
    run = run.sort_values("epoch", kind="stable")
    changed = run["genotype"].ne(run["genotype"].iloc[-1]).to_numpy()
    epochs = run["epoch"].astype(int).to_numpy()
    return int(epochs[np.flatnonzero(changed)[-1] + 1]) if changed.any() else int(epochs[0])


def final_since(df: pd.DataFrame) -> pd.Series:
    """:func:`final_cell_since` of every run in ``df``, indexed by ``run_dir`` (else ``run``)."""
    key = "run_dir" if "run_dir" in df else "run"
    return pd.Series({run: final_cell_since(group) for run, group in df.groupby(key, sort=False)},
                     name="final_since", dtype="int64")


def per_seed_table(df: pd.DataFrame, columns: Sequence[ResultColumn] | None = None) -> pd.DataFrame:
    """One row per run: its final cell and the epoch it became final, how far it got, every result
    column's value, search time."""
    columns = list(columns) if columns is not None else result_columns()
    last = final_records(df)
    keep = [c for c in (GROUP, "dataset", "seed", "preset", "status", "epoch", "epochs", "genotype",
                        "canonical_key", "param_free_count", "wall_seconds", "run_dir")
            if c in last]
    out = last[keep].copy()
    key = "run_dir" if "run_dir" in last else "run"
    out["final_since"] = last[key].map(final_since(df)).to_numpy()
    for col in columns:
        out[col.record] = last[col.record] if col.record in last else np.nan
    return out


@dataclass
class ResultsTable:
    """A method × (dataset, split) table of final-cell benchmark accuracy, plus its provenance.

    ``stats`` is tidy (one row per method and column: mean, std, n, ``ci_low``/``ci_high``/``ci_method``
    under ``rule``); ``meta`` holds per-method seeds, finished runs, distinct final cells and search time
    (with its interval); :meth:`display` lays it out as the
    published tables do, and :meth:`footnotes` says what every number is.
    """

    columns: list[ResultColumn]
    stats: pd.DataFrame
    meta: pd.DataFrame
    optimum: dict[str, tuple[float, str]] = field(default_factory=dict)
    in_progress: list[str] = field(default_factory=list)
    rule: IntervalRule = DEFAULT_RULE

    def display(self, digits: int = 2, intervals: bool = True) -> pd.DataFrame:
        """Strings, index = methods then ``optimal``; accuracy columns ``mean ± std [95% interval]`` (%)."""
        unit = TimeUnit.for_seconds(self.meta["wall_seconds_mean"].tolist())
        time_col = f"search time ({unit.name})"
        rows: dict[str, dict[str, str]] = {}
        for method, meta in self.meta.iterrows():
            row = {}
            for col in self.columns:
                s = self.stats[(self.stats[GROUP] == method) & (self.stats["column"] == col.column)].iloc[0]
                row[col.label] = format_mean_std(s["mean"], s["std"], int(s["n"]), digits)
                if intervals:
                    row[col.label] = with_interval(row[col.label], s["ci_low"], s["ci_high"], digits)
            row["seeds"] = str(int(meta["seeds"]))
            row["distinct cells"] = str(int(meta["distinct_cells"]))
            row[time_col] = format_mean_std(meta["wall_seconds_mean"] / unit.seconds,
                                            meta["wall_seconds_std"] / unit.seconds, int(meta["seeds"]), 1)
            if intervals:
                row[time_col] = with_interval(row[time_col], meta["wall_seconds_ci_low"] / unit.seconds,
                                              meta["wall_seconds_ci_high"] / unit.seconds, 1)
            rows[str(method)] = row
        if self.optimum:
            rows["optimal"] = {col.label: (f"{self.optimum[col.column][0]:.{digits}f}" if col.column in self.optimum
                                           else "–") for col in self.columns}
            rows["optimal"].update({"seeds": "", "distinct cells": "", time_col: ""})
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = GROUP
        return out

    def provenance_notes(self) -> list[str]:
        """Which columns are exact and which approximate, and where each one's numbers come from."""
        groups: dict[tuple, list[str]] = {}
        for col in self.columns:
            if col.spec is not None:
                groups.setdefault((col.spec.exact, col.spec.source, col.spec.note), []).append(col.label)
        notes = []
        for (exact, source, note), labels in groups.items():
            kind = "exact" if exact else "approximate (†)"
            notes.append(f"{', '.join(labels)}: {kind}, from {source}" + (f" — {note}." if note else "."))
        if not groups:
            notes.append("No benchmark table given: whether a column is exact or approximate is not shown.")
        return notes

    def footnotes(self) -> list[str]:
        notes = ["Accuracy (%) of each seed's final derived cell in NAS-Bench-201 (200-epoch training), "
                 "mean ± sample std (ddof=1) over seeds. CIFAR-10 valid is the cifar10-valid network "
                 "(trained on the 25k train half), CIFAR-10 test the cifar10 network (trained on 50k), as in "
                 "the NB201 paper. distinct cells: NB201 isomorphism classes among the final cells. "
                 "search time: wall-clock of the search per seed (training, evaluation and measurements)."]
        notes.append(self.rule.describe())
        notes += self.provenance_notes()
        if self.optimum:
            notes.append("optimal: the best value of each column over all 15,625 NB201 cells.")
        if self.in_progress:
            notes.append(f"{len(self.in_progress)} run(s) not finished, their latest epoch is used: "
                         + ", ".join(self.in_progress) + ".")
        return notes


def results_table(df: pd.DataFrame, benchmark: Benchmark | None = None, *, epochs: int = 200,
                  rule: IntervalRule = DEFAULT_RULE) -> ResultsTable:
    """The NB201-style final results table of the runs in ``df`` (see :class:`ResultsTable`).

    ``benchmark`` supplies the exact/approximate mark, sources and the ``optimal`` row; without
    it the table still shows every method, with exactness unknown.
    """
    columns = result_columns(benchmark.columns if benchmark is not None else None, epochs)
    last = final_records(df)
    stat_rows, meta_rows = [], []
    for method, runs in last.groupby(GROUP, sort=True):
        for col in columns:
            values = runs[col.record].astype(float) if col.record in runs else pd.Series(dtype=float)
            values = values[np.isfinite(values)]
            ci = mean_interval(values, rule)
            stat_rows.append({GROUP: method, "dataset": col.dataset, "split": col.split, "column": col.column,
                              "exact": col.exact, "mean": values.mean() if len(values) else math.nan,
                              "std": values.std(ddof=1) if len(values) > 1 else math.nan, "n": len(values),
                              "ci_low": ci.low, "ci_high": ci.high, "ci_method": ci.method})
        wall = runs["wall_seconds"].astype(float) if "wall_seconds" in runs else pd.Series(dtype=float)
        cells = runs["canonical_key"] if "canonical_key" in runs else runs["genotype"]
        wall_ci = mean_interval(wall, rule)
        meta_rows.append({GROUP: method, "seeds": len(runs), "finished": int(runs["finished"].sum()),
                          "distinct_cells": cells.nunique(), "wall_seconds_mean": wall.mean(),
                          "wall_seconds_std": wall.std(ddof=1) if len(wall) > 1 else math.nan,
                          "wall_seconds_ci_low": wall_ci.low, "wall_seconds_ci_high": wall_ci.high})
    optimum = {col.column: benchmark.optimum(col.column) for col in columns} if benchmark is not None else {}
    in_progress = sorted(last.loc[~last["finished"], "run"].astype(str)) if "run" in last else []
    return ResultsTable(columns, pd.DataFrame(stat_rows), pd.DataFrame(meta_rows).set_index(GROUP),
                        optimum, in_progress, rule)


def per_seed_display(table: pd.DataFrame, columns: Sequence[ResultColumn] | None = None,
                     digits: int = 2) -> pd.DataFrame:
    """:func:`per_seed_table` as strings with readable headers (for reports)."""
    columns = list(columns) if columns is not None else result_columns()
    unit = TimeUnit.for_seconds(table["wall_seconds"].tolist() if "wall_seconds" in table else [])
    out = pd.DataFrame({
        GROUP: table[GROUP].astype(str),
        "seed": table["seed"].astype(int).astype(str),
        "status": table.get("status", pd.Series("", index=table.index)).astype(str),
        "epochs": [f"{int(e)}/{int(t)}" for e, t in zip(table["epoch"], table["epochs"])],
        "final cell": table["genotype"].astype(str),
        "final since epoch": (table["final_since"].astype(int).astype(str) if "final_since" in table
                              else pd.Series("–", index=table.index)),
        "param-free ops": table["param_free_count"].astype(int).astype(str),
    })
    for col in columns:
        out[col.label] = [f"{v:.{digits}f}" if math.isfinite(v) else "–" for v in table[col.record].astype(float)]
    if "wall_seconds" in table:
        out[f"search time ({unit.name})"] = [f"{v / unit.seconds:.1f}" for v in table["wall_seconds"].astype(float)]
    return out.reset_index(drop=True)
