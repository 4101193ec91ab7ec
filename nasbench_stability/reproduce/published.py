"""The NB201 numbers the seed papers publish, as bundled in ``published.csv``.

One line per printed number: its paper, table, row (as printed), setting (the varied column of an
ablation table, e.g. ``lr=0.001``), dataset, split, and whether it is a ``mean_std`` (value ± std
over ``seeds`` runs), one ``trial`` (MergeNAS prints each of its three), a ``mean`` whose spread the
table does not print, or a single ``value`` (the best cell). ``note`` says where the text extraction
needed a reading (lost cells, shifted columns). Transcribed from ../shared/papers/ 000 (MergeNAS,
Table 2) and 001 (Single-DARTS, Tables 1, 4, 5); the stabilizers' own NB201 rows (DrNAS, β-DARTS) from
../shared/docs/baselines.md ("published test 94.36±0.00") and the papers' NB201 tables as indexed by
Papers with Code (their means only: those lines are kind ``mean``). tests/test_reproduce.py cross-checks
the rows that name one cell (std 0) against the benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..errors import NbsError

PAPERS = {"single-darts": "Single-DARTS (Hou et al., paper 001)",
          "mergenas": "MergeNAS (Wang et al., IJCAI 2020, paper 000)",
          "drnas": "DrNAS (Chen et al., ICLR 2021)",
          "beta-darts": "β-DARTS (Ye et al., CVPR 2022)",
          "darts-pt": "DARTS-PT (Wang et al., ICLR 2021): the author's rerun in ruocwang/darts-pt"}
KINDS = ("mean_std", "trial", "mean", "value")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SPLITS = ("valid", "test")
INFERRED = "inferred, not printed"  # how a note marks a number the paper does not print
_COLUMNS = ["paper", "table", "row", "setting", "dataset", "split", "kind", "trial", "value", "std", "seeds", "note"]


@lru_cache(maxsize=1)
def load_published() -> pd.DataFrame:
    """The bundled table, checked (a bad edit to the file fails here, not in a report)."""
    with resources.files(__package__).joinpath("published.csv").open() as f:
        df = pd.read_csv(f, dtype={"table": str, "setting": str, "note": str}, keep_default_na=False,
                         na_values={"trial": [""], "value": [""], "std": [""], "seeds": [""]})
    if list(df.columns) != _COLUMNS:
        raise NbsError(f"published.csv has columns {list(df.columns)}, expected {_COLUMNS}")
    bad = df[~df["paper"].isin(list(PAPERS)) | ~df["kind"].isin(KINDS) | ~df["dataset"].isin(DATASETS)
             | ~df["split"].isin(SPLITS) | df["value"].isna() | ((df["kind"] == "mean_std") & df["std"].isna())
             | ((df["kind"] == "trial") & df["trial"].isna())]
    if len(bad):
        raise NbsError(f"published.csv line(s) {', '.join(str(i + 2) for i in bad.index)} are malformed")
    key = ["paper", "table", "row", "setting", "dataset", "split", "kind", "trial"]
    if df.duplicated(key).any():
        raise NbsError("published.csv holds a number twice: " + str(df[df.duplicated(key)].iloc[0].to_dict()))
    return df


@dataclass(frozen=True)
class PublishedRef:
    """Which printed row an experiment row compares with."""

    paper: str
    table: str
    row: str
    setting: str = ""

    @property
    def label(self) -> str:
        return f"{self.row} ({self.setting})" if self.setting else self.row

    @property
    def citation(self) -> str:
        # the seeds' tables are numbered; a stabilizer's row is named by what it is ("NB201")
        where = (f"Table {self.table}" if self.table.isdigit() else self.table.replace("-", " #")
                 if self.table.startswith("issue-") else f"its {self.table} table")
        return f"{PAPERS[self.paper]}, {where}"


@dataclass(frozen=True)
class PublishedCell:
    """One (dataset, split) entry of a printed row, reduced to mean and spread.

    ``std`` is the printed one for ``mean_std``; for per-trial rows it is the sample std (ddof=1) of
    the printed trials (which the paper does not print: ``std_computed``); None where there is none.
    """

    mean: float
    std: float | None
    seeds: int | None
    trials: tuple[float, ...]
    kind: str
    note: str
    std_computed: bool = False

    @property
    def inferred(self) -> bool:
        """The number is ours, read from the paper's other cells, not printed (its note says why)."""
        return self.note.startswith(INFERRED)

    def display(self) -> str:
        text = f"{self.mean:.2f}"
        if self.std is not None:
            text += f" ± {self.std:.2f}"
        if self.trials:
            text += " (" + ", ".join(f"{t:.2f}" for t in self.trials) + ")"
        return text + (f" ({INFERRED})" if self.inferred else "")


def published_cell(ref: PublishedRef, dataset: str, split: str) -> PublishedCell | None:
    """The printed number(s) of ``ref`` for one column, or None where the table has no such column."""
    df = load_published()
    sel = df[(df["paper"] == ref.paper) & (df["table"] == ref.table) & (df["row"] == ref.row)
             & (df["setting"] == ref.setting) & (df["dataset"] == dataset) & (df["split"] == split)]
    if sel.empty:
        return None
    notes = "; ".join(sorted({n for n in sel["note"] if n}))
    seeds = int(sel["seeds"].dropna().iloc[0]) if sel["seeds"].notna().any() else None
    trials = tuple(float(v) for v in sel.loc[sel["kind"] == "trial"].sort_values("trial")["value"])
    summary = sel[sel["kind"] != "trial"]
    if summary.empty:  # trials only: their mean, as the paper's "average" column would be
        mean = sum(trials) / len(trials)
    else:
        mean = float(summary["value"].iloc[0])
    if not summary.empty and summary["kind"].iloc[0] == "mean_std":
        return PublishedCell(mean, float(summary["std"].iloc[0]), seeds, trials, "mean_std", notes)
    if len(trials) > 1:
        m = sum(trials) / len(trials)
        std = math.sqrt(sum((t - m) ** 2 for t in trials) / (len(trials) - 1))
        return PublishedCell(mean, std, seeds or len(trials), trials, "trials", notes, std_computed=True)
    kind = str(summary["kind"].iloc[0]) if not summary.empty else "trial"
    return PublishedCell(mean, None, seeds, trials, kind, notes)
