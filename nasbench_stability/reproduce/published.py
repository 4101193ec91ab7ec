"""The NB201 numbers the seed papers publish, as bundled in ``published.csv``.

One line per printed number: its paper, table, row (as printed), setting (the varied column of an
ablation table, e.g. ``lr=0.001``), dataset, split, and whether it is a ``mean_std`` (value ± std
over ``seeds`` runs), one ``trial`` (MergeNAS prints each of its three), a ``mean`` whose spread the
table does not print, or a single ``value`` (the best cell). ``note`` says where the text extraction
needed a reading (lost cells, shifted columns) and who printed the number. Transcribed from
../shared/papers/ 000 (MergeNAS, Table 2) and 001 (Single-DARTS, Tables 1, 4, 5); the stabilizers' own NB201
rows (DrNAS, β-DARTS) from ../shared/docs/baselines.md ("published test 94.36±0.00"), DrNAS' README, the
papers' NB201 tables as indexed by Papers with Code (their means only: those lines are kind ``mean``) and as
GENIUS (arXiv:2304.10970v4, Table 1) quotes them; the second circulating set of NB201's weight-sharing rows
as ReLIZO (NeurIPS 2024, Table 2) quotes it. tests/test_reproduce.py cross-checks the rows that name one cell
(std 0) against the benchmark.

``track_running_stats`` is the BN mode the printed search ran with (``true``/``false``: BN running
statistics tracked or not, xautodl's ``--track_running_stats 1``/``0``), empty where the source does not
state it. One printed row may be stored once per BN mode; a run is compared with the print of its own BN
mode where there is one (:func:`published_cell`), and a print whose BN mode is not stated stands for either
mode, marked so in the report.
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
          "darts-pt": "DARTS-PT (Wang et al., ICLR 2021): the author's rerun in ruocwang/darts-pt",
          "relizo": "ReLIZO (Wang et al., NeurIPS 2024), quoting NAS-Bench-201"}
KINDS = ("mean_std", "trial", "mean", "value")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SPLITS = ("valid", "test")
INFERRED = "inferred, not printed"  # how a note marks a number the paper does not print
BN_MODES = {"": None, "true": True, "false": False}   # the track_running_stats column ("": not stated)
_COLUMNS = ["paper", "table", "row", "setting", "dataset", "split", "kind", "trial", "value", "std", "seeds",
            "track_running_stats", "note"]


@lru_cache(maxsize=1)
def load_published() -> pd.DataFrame:
    """The bundled table, checked (a bad edit to the file fails here, not in a report)."""
    with resources.files(__package__).joinpath("published.csv").open() as f:
        return read_published(f)


def read_published(f, name: str = "published.csv") -> pd.DataFrame:
    """A published table from an open file, checked; ``track_running_stats`` lower-cased ('', 'true', 'false')."""
    df = pd.read_csv(f, dtype={"table": str, "setting": str, "note": str, "track_running_stats": str},
                     keep_default_na=False, na_values={"trial": [""], "value": [""], "std": [""], "seeds": [""]})
    if list(df.columns) != _COLUMNS:
        raise NbsError(f"{name} has columns {list(df.columns)}, expected {_COLUMNS}")
    df["track_running_stats"] = df["track_running_stats"].str.strip().str.lower()
    bad = df[~df["paper"].isin(list(PAPERS)) | ~df["kind"].isin(KINDS) | ~df["dataset"].isin(DATASETS)
             | ~df["split"].isin(SPLITS) | df["value"].isna() | ((df["kind"] == "mean_std") & df["std"].isna())
             | ((df["kind"] == "trial") & df["trial"].isna()) | ~df["track_running_stats"].isin(list(BN_MODES))]
    if len(bad):
        raise NbsError(f"{name} line(s) {', '.join(str(i + 2) for i in bad.index)} are malformed")
    # a row printed once per BN mode is two entries, not one number twice
    key = ["paper", "table", "row", "setting", "dataset", "split", "kind", "trial", "track_running_stats"]
    if df.duplicated(key).any():
        raise NbsError(f"{name} holds a number twice: " + str(df[df.duplicated(key)].iloc[0].to_dict()))
    return df


@dataclass(frozen=True)
class PublishedRef:
    """Which printed row an experiment row compares with. ``alternates``: other prints of the same method's
    row (another source's set); they are used only where they match the run's BN mode better (see
    :func:`published_cell`)."""

    paper: str
    table: str
    row: str
    setting: str = ""
    alternates: tuple["PublishedRef", ...] = ()

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
    bn: bool | None = None          # the BN mode of the printed search (track_running_stats); None: not stated
    bn_match: str = ""              # against the run's: "same", "not stated", "other"; "" where ours is unknown

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

    def bn_display(self, ours: bool | None) -> str:
        """The print's BN mode beside ours (``ours``: the run's track_running_stats, None where unknown)."""
        mode = lambda on: "on" if on else "off"  # noqa: E731
        if self.bn is None:
            return "BN mode not stated" + (f"; ours {mode(ours)}" if ours is not None else "")
        if ours is None:
            return f"BN {mode(self.bn)}"
        return f"BN {mode(self.bn)}, as ours" if self.bn == ours else f"BN {mode(self.bn)}; ours {mode(ours)}"


def published_cell(ref: PublishedRef, dataset: str, split: str, bn: bool | None = None) -> PublishedCell | None:
    """The printed number(s) of ``ref`` for one column, or None where the table has no such column.

    ``bn``: the BN mode (track_running_stats) of the run compared. Among the prints of ``ref`` and its
    ``alternates`` (each possibly stored once per BN mode), the first of the run's own mode is taken; else
    the first whose source does not state one (it stands for either mode, ``bn_match`` "not stated"); else one
    of the other mode (``bn_match`` "other"). Without ``bn``, a print of unstated mode comes first. Ties go to
    ``ref`` before its alternates, then to the file's order. A number taken from an alternate says so in its
    note.
    """
    df = load_published()
    options = []
    for r in (ref, *ref.alternates):
        sel = df[(df["paper"] == r.paper) & (df["table"] == r.table) & (df["row"] == r.row)
                 & (df["setting"] == r.setting) & (df["dataset"] == dataset) & (df["split"] == split)]
        for mode in dict.fromkeys(sel["track_running_stats"]):
            options.append((r, BN_MODES[mode], sel[sel["track_running_stats"] == mode]))
    if not options:
        return None

    def rank(mode: bool | None) -> int:
        if bn is None:
            return 0 if mode is None else 1
        return 0 if mode == bn else 1 if mode is None else 2

    source, mode, sel = min(options, key=lambda o: rank(o[1]))   # min keeps the first of equal rank
    match = "" if bn is None else "same" if mode == bn else "not stated" if mode is None else "other"
    notes = "; ".join(sorted({n for n in sel["note"] if n}))
    if source != ref:
        notes = f"from {source.citation} ({source.label})" + (f": {notes}" if notes else "")
    bn_fields = {"bn": mode, "bn_match": match}
    seeds = int(sel["seeds"].dropna().iloc[0]) if sel["seeds"].notna().any() else None
    trials = tuple(float(v) for v in sel.loc[sel["kind"] == "trial"].sort_values("trial")["value"])
    summary = sel[sel["kind"] != "trial"]
    if summary.empty:  # trials only: their mean, as the paper's "average" column would be
        mean = sum(trials) / len(trials)
    else:
        mean = float(summary["value"].iloc[0])
    if not summary.empty and summary["kind"].iloc[0] == "mean_std":
        return PublishedCell(mean, float(summary["std"].iloc[0]), seeds, trials, "mean_std", notes, **bn_fields)
    if len(trials) > 1:
        m = sum(trials) / len(trials)
        std = math.sqrt(sum((t - m) ** 2 for t in trials) / (len(trials) - 1))
        return PublishedCell(mean, std, seeds or len(trials), trials, "trials", notes, std_computed=True, **bn_fields)
    kind = str(summary["kind"].iloc[0]) if not summary.empty else "trial"
    return PublishedCell(mean, None, seeds, trials, kind, notes, **bn_fields)
