"""The seeds' NB201 experiments: which runs each needs, and which printed row each run is compared with.

An experiment is a published table (or a published claim, ``darts-collapse``) as rows. A row is one of
- a **run** row: a registry method with ``--set`` settings, run for the experiment's seeds;
- a **benchmark** row: read off the table itself (the best cell of each column, or a fixed cell such
  as NB201's ResNet), no search;
- an **unavailable** row: a method nbs does not have yet, listed with the reason, never dropped.

Rows whose method and settings are equal share their runs (Single-DARTS Table 5 prints the same
DARTS configuration as "lr=0.005", "Softmax" and "SGD"). Where the paper's text lost a setting, the
row's ``reading`` says which value we use and why; the report prints it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError, quote
from .published import PublishedRef

ALL_COLUMNS = tuple((d, s) for d in ("cifar10", "cifar100", "ImageNet16-120") for s in ("valid", "test"))
TEST_COLUMNS = (("cifar10", "test"), ("cifar100", "test"), ("ImageNet16-120", "test"))

# the seeds quote these rows from NB201 (Dong & Yang 2020, Table 5), whose runs are xautodl's scripts
_NB201_BASELINE = ("the NB201 baseline as xautodl's NB201 script runs it (250 epochs, the script's config; `nbs "
                   "methods --show` of the method lists every default and its source file)")
NOT_RUN = "not run this time (--row named other rows)"

# Two sets of NB201's weight-sharing numbers circulate: Single-DARTS Table 1 prints one, ReLIZO Table 2 the other
# ("quoted from the paper of NAS-Bench-201"). Neither source states the BN mode (track_running_stats) of its set:
# the ReLIZO print is each row's alternate, used for a run only once published.csv stores it with the run's mode.
_TWO_NB201_SETS = ("Two sets of NB201's weight-sharing numbers circulate (e.g. GDAS 93.51 ± 0.13 here, 93.61 ± 0.09 "
                   "in ReLIZO Table 2, 'quoted from the paper of NAS-Bench-201'), probably NB201's two BN modes; "
                   "neither source states which, so the rows compare with this table's print, marked \"BN mode not "
                   "stated\" (published.csv's track_running_stats column picks the print of a run's own mode once a "
                   "source is found)")


def _nb201(row: str, relizo_row: str | None = None) -> PublishedRef:
    """Single-DARTS Table 1's print of an NB201 weight-sharing row, with ReLIZO's print of it as alternate."""
    return PublishedRef("single-darts", "1", row, alternates=(PublishedRef("relizo", "2", relizo_row or row),))


# NB201's ResNet cell (Dong & Yang 2020, Fig. 1 / Table 5): two 3x3 convs and the residual skip
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


@dataclass(frozen=True)
class Row:
    """One printed row and how nbs produces ours (see the module doc)."""

    published: PublishedRef
    method: str | None = None                       # run rows
    settings: tuple[tuple[str, str], ...] = ()      # --set KEY=VALUE of the run
    benchmark: str | None = None                    # "optimum" or an arch string (benchmark rows)
    unavailable: str = ""                           # why there is no row of ours
    reading: str = ""                               # our reading where the text lost a setting
    name: str = ""                                  # our label where two rows compare with one printed row

    @property
    def label(self) -> str:
        return self.name or self.published.label

    @property
    def kind(self) -> str:
        return "run" if self.method else "benchmark" if self.benchmark else "unavailable"

    @property
    def run_key(self) -> str:
        """The folder of this row's runs: method and settings, so equal configurations share runs."""
        parts = [self.method or ""] + [f"{k}={v}" for k, v in sorted(self.settings)]
        return "__".join(re.sub(r"[^A-Za-z0-9.=_-]", "-", p) for p in parts)

    def set_args(self) -> list[str]:
        return [arg for k, v in sorted(self.settings) for arg in ("--set", f"{k}={v}")]


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    seeds: int                                     # as many as the paper ran
    columns: tuple[tuple[str, str], ...]           # (dataset, split) the printed table has
    rows: tuple[Row, ...]
    what_to_see: str                               # the published claim, for the report's reading
    readings: tuple[str, ...] = field(default=())  # experiment-wide interpretations of the text

    def run_rows(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "run"]

    def runs(self) -> dict[str, Row]:
        """Distinct runs (by ``run_key``), first row of each."""
        out: dict[str, Row] = {}
        for row in self.run_rows():
            out.setdefault(row.run_key, row)
        return out

    def select(self, labels: list[str] | None) -> "Experiment":
        """Only the run rows named (by printed label, case-insensitive); other rows stay, not run."""
        if not labels:
            return self
        known = {r.label.lower(): r for r in self.run_rows()}
        missing = [label for label in labels if label.lower() not in known]
        if missing:
            raise ConfigError(f"{self.name} has no run row {quote(missing[0])}; its run rows: "
                              + ", ".join(r.label for r in self.run_rows()))
        keep = {known[label.lower()].run_key for label in labels}
        rows = tuple(r if r.kind != "run" or r.run_key in keep else
                     Row(r.published, unavailable=NOT_RUN, name=r.name) for r in self.rows)
        return Experiment(self.name, self.title, self.seeds, self.columns, rows, self.what_to_see, self.readings)


def _s(**settings) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in settings.items()))


def _single_darts_table1() -> Experiment:
    ref = lambda row: PublishedRef("single-darts", "1", row)  # noqa: E731
    return Experiment(
        "single-darts-table1", "Single-DARTS Table 1: NB201 search on CIFAR-10, the derived cell on three datasets",
        seeds=5, columns=ALL_COLUMNS,
        rows=(Row(ref("Optimal"), benchmark="optimum"),
              Row(_nb201("RSPS"), method="rsps", reading=_NB201_BASELINE),
              Row(_nb201("DARTS", "DARTS-V1"), method="darts-v1",
                  reading="DARTS = NB201's DARTS-V1 with the reference settings (the row is quoted from NB201, "
                          "where DARTS-V1 and -V2 both print the all-skip cell)"),
              Row(_nb201("GDAS"), method="gdas", reading=_NB201_BASELINE),
              Row(_nb201("SETN"), method="setn", reading=_NB201_BASELINE),
              Row(_nb201("ENAS"), method="enas", reading=_NB201_BASELINE),
              Row(ref("CDARTS"), method="cdarts",
                  reading="CDARTS with its authors' NB201 code (microsoft/Cream CDARTS/benchmark201); their run "
                          "script is not published: 5 pretraining + 25 cyclic iterations is a reading (see `nbs "
                          "methods --show cdarts`)"),
              Row(ref("DARTS-"), method="darts-minus",
                  reading="DARTS- on NB201 with the settings of its authors' search code (α step first, wd 3e-4, "
                          "no Nesterov; they publish no NB201 script; see `nbs methods --show darts-minus`)"),
              Row(ref("Single-DARTS"), method="single-darts")),
        what_to_see="DARTS collapses to the all-skip cell (54.30 CIFAR-10 test, std 0); Single-DARTS finds "
                    "94.36 / 73.51 / 46.34 with std 0 over 5 seeds.",
        readings=(_TWO_NB201_SETS + ".",),
    )


_ABLATION_READING = (
    "Tables 4 and 5 optimise w and α with SGD (§5.3: 'momentum 0.9, learning rate 0.005'); we read the "
    "row's learning rate as the rate of both SGDs (a_optimizer=sgd, a_lr = w_lr), α's SGD with momentum 0.9 "
    "and no Nesterov, and keep the other settings of the method (weight decay 5e-4, α's L2 1e-3, cosine "
    "schedule of w's rate)."
)


def _single_darts_table4() -> Experiment:
    base = dict(activation="softmax", a_optimizer="sgd", a_lr=0.005, w_lr=0.005)
    ref = lambda row: PublishedRef("single-darts", "4", row)  # noqa: E731
    return Experiment(
        "single-darts-table4", "Single-DARTS Table 4: the optimization modes (softmax α, SGD for w and α)",
        seeds=5, columns=TEST_COLUMNS,
        rows=(Row(ref("different subsets, different batches"), method="single-darts",
                  settings=_s(mode="bilevel", **base)),
              Row(ref("same subset, different batches"), method="single-darts",
                  settings=_s(mode="single-level-two-batches", **base)),
              Row(ref("same subset, same batch"), method="single-darts", settings=_s(mode="single-level", **base))),
        what_to_see="Two batches from the same half already ease the collapse (84.34); one batch for both "
                    "(single-level) reaches 94.27 ± 0.13.",
        readings=(_ABLATION_READING,
                  "The table's Subset/Batch cells are lost in the text; the rows are named by §5.3's order and "
                  "by Table 5's equal entries. Softmax: Table 4's last row equals Table 5's Single-DARTS "
                  "Softmax row. The three modes run the Single-DARTS code with only `mode` changed, so "
                  "the bi-level row is DARTS-V1's step at Single-DARTS' other settings."),
    )


def _single_darts_table5() -> Experiment:
    ref = lambda row, setting: PublishedRef("single-darts", "5", row, setting)  # noqa: E731
    rows = []
    for name, method, act in (("DARTS", "darts-v1", "softmax"), ("Single-DARTS", "single-darts", "sigmoid")):
        sgd = lambda lr=0.005, activation=act: _s(activation=activation, a_optimizer="sgd", a_lr=lr, w_lr=lr)  # noqa: E731
        rows += [Row(ref(name, f"lr={lr}"), method=method, settings=sgd(lr)) for lr in ("0.001", "0.005", "0.025")]
        for other in ("softmax", "sigmoid"):
            rows.append(Row(ref(name, f"act={other}"), method=method, settings=sgd(activation=other)))
        if name == "Single-DARTS":
            rows.append(Row(ref(name, "act=sigmoid*"), unavailable="what the paper's * marks is lost in the text "
                                                                    "(a variant of the sigmoid α)"))
        rows.append(Row(ref(name, "opt=SGD"), method=method, settings=sgd()))
        rows.append(Row(ref(name, "opt=Adam"), method=method, settings=_s(activation=act, w_lr=0.005),
                        reading="Adam for α at the method's rate (3e-4, the NB201 reference: the paper's value "
                                "is lost) and betas (0.5, 0.999); w's SGD at 0.005"))
    return Experiment(
        "single-darts-table5", "Single-DARTS Table 5: learning rate, activation and optimizer of DARTS and Single-DARTS",
        seeds=5, columns=(("cifar10", "test"), ("cifar100", "test")), rows=tuple(rows),
        what_to_see="DARTS swings with the learning rate (91.54 → 54.30), Single-DARTS stays near 94.36 for "
                    "every lr, activation and optimizer.",
        readings=(_ABLATION_READING,
                  "DARTS is DARTS-V1 (bi-level, first order) at the NB201 reference settings with the row's "
                  "change; Single-DARTS is its Table 1 setting with the row's change. The lr=0.025 DARTS row "
                  "is read from shifted columns (see its note)."),
    )


def _mergenas_table2() -> Experiment:
    ref = lambda row: PublishedRef("mergenas", "2", row)  # noqa: E731
    rows = [Row(ref(name), method=name.lower(), reading=_NB201_BASELINE) for name in ("RSPS", "GDAS", "SETN", "ENAS")]
    for name, method in (("DARTS-V2", "darts-v2"), ("MergeNAS-V2", "mergenas-v2")):
        for wd in ("1e-2", "2e-2"):
            rows.append(Row(ref(f"{name} (wd={wd})"), method=method, settings=_s(w_weight_decay=float(wd))))
    table = ("searches the benchmark table (the hp=12 valid accuracy as its signal) for 100 queries, nbs's "
             "default budget; the paper quotes NB201, whose budget is 12,000 simulated seconds (see `nbs methods "
             "--show rs`); preset, epochs and --set do not apply")
    rows += [Row(ref(name), method=name.lower(), reading=table) for name in ("RS", "REA", "REINFORCE", "BOHB")]
    rows += [Row(ref("ResNet"), benchmark=RESNET_CELL), Row(ref("Optimal"), benchmark="optimum")]
    return Experiment(
        "mergenas-table2", "MergeNAS Table 2: DARTS-V2 and MergeNAS-V2 at weight decay 1e-2 and 2e-2",
        seeds=3, columns=(("cifar10", "test"), ("cifar100", "valid"), ("cifar100", "test"),
                          ("ImageNet16-120", "valid"), ("ImageNet16-120", "test")),
        rows=tuple(rows),
        what_to_see="With weight decay 2e-2 all three MergeNAS-V2 seeds find a 94.36 cell; DARTS-V2 does not "
                    "collapse at these decays but scatters (80.57-93.31).",
        readings=("The paper prints each trial's CIFAR-10 test accuracy; its spread here is the sample std of "
                  "the three printed trials. Both methods keep the NB201 reference settings except the "
                  "weight decay of w (§4.2: 'we increase the weight decay up to 2e-2 for both DARTS and MergeNAS').",),
    )


def _darts_collapse() -> Experiment:
    return Experiment(
        "darts-collapse", "DARTS collapse on NB201: DARTS-V1 and -V2 at the reference settings",
        seeds=3, columns=ALL_COLUMNS,
        rows=(Row(_nb201("DARTS", "DARTS-V1"), method="darts-v1", name="DARTS-V1"),
              Row(_nb201("DARTS", "DARTS-V2"), method="darts-v2", name="DARTS-V2",
                  reading="NB201 prints DARTS-V2 with the same all-skip numbers as DARTS-V1; both compare "
                          "with the DARTS row")),
        what_to_see="Both collapse to the all-skip cell (54.30 CIFAR-10 test, std 0): the report gives the epoch "
                    "each seed's cell first became parameter-free and the accuracy it fell from.",
    )


def _stabilizers() -> Experiment:
    own = "the authors' NB201 settings as `nbs methods --show {}` lists them, each with its source file"
    return Experiment(
        "stabilizers-nb201", "Stabilizers on NB201: DARTS-, DrNAS, β-DARTS, DARTS-PT and PC-DARTS beside the DARTS they stabilize",
        seeds=3, columns=ALL_COLUMNS,
        rows=(Row(_nb201("DARTS", "DARTS-V1"), method="darts-v1", name="DARTS-V1",
                  reading="the collapse they are measured against (NB201's DARTS-V1 row, quoted by Single-DARTS)"),
              Row(PublishedRef("single-darts", "1", "DARTS-"), method="darts-minus",
                  reading="quoted by Single-DARTS Table 1; the settings of the authors' search code (they publish "
                          "no NB201 script) as `nbs methods --show darts-minus` lists them, each with its source "
                          "file"),
              Row(PublishedRef("drnas", "NB201", "DrNAS"), method="drnas",
                  reading=own.format("drnas") + " (without the progressive partial-channel schedule, which its "
                          "main NB201 script does not use)"),
              Row(PublishedRef("beta-darts", "NB201", "β-DARTS"), method="beta-darts",
                  reading=own.format("beta-darts")),
              Row(PublishedRef("darts-pt", "issue-6", "DARTS-PT (α trained)"), method="darts-pt",
                  reading="the α-trained variant as `nbs methods --show darts-pt` lists it, against the author's own "
                          "rerun of it (two seeds, ruocwang/darts-pt issue 6), not the ~93.8 quoted elsewhere"),
              Row(PublishedRef("drnas", "NB201", "PC-DARTS"), method="pc-darts",
                  reading="as DrNAS prints it, from its 201-space code; nbs runs that code's settings as `nbs "
                          "methods --show pc-darts` lists them (K = 4 is a reading: the K behind the printed row "
                          "is not stated)")),
        what_to_see="DARTS-V1 collapses to the all-skip cell (54.30); DrNAS and β-DARTS each publish the best "
                    "cell (94.36, std 0), DARTS- 93.80 ± 0.40 and PC-DARTS 93.41 ± 0.30 (DrNAS' run): the stabilized searches should stay off the "
                    "parameter-free cells at every epoch.",
        readings=("The stabilizers' own papers print their NB201 rows; only their means are bundled where this "
                  "project could not read the printed spread (DrNAS' test columns and PC-DARTS' come from DrNAS' "
                  "README table; β-DARTS' CIFAR-10 test std 0.00 as ../shared/docs/baselines.md quotes it; DrNAS' "
                  "CIFAR-10/100 valid and β-DARTS' ImageNet16-120 columns as GENIUS (arXiv:2304.10970v4, Table 1) "
                  "quotes them, the papers' own tables not being reachable here).",),
    )


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    _single_darts_table1(), _single_darts_table4(), _single_darts_table5(), _mergenas_table2(), _darts_collapse(),
    _stabilizers())}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {quote(name)}; known: {', '.join(EXPERIMENTS)} (nbs reproduce --list)")
    return EXPERIMENTS[name]
