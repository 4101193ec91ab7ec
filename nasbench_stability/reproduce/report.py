"""The reproduction report: our numbers beside the published ones, what ran, at what scale, and how.

Writes into the experiment folder ``REPORT.md`` (read on GitHub or in an editor), ``comparison.csv``
(one line per row and column, the numbers behind the report) and ``seeds.csv`` (each seed's final
cell), plus the collapse curves in ``figures/``. Everything is computed from the run records and the
bundled published table each time, so a report of an unfinished experiment says so and a re-run
after more epochs replaces it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import __version__
from ..analysis.agreement import describe as describe_verdict
from ..analysis.bench_columns import APPROX_MARK, DATASET_LABELS
from ..analysis.collapse import CollapseCriteria, collapse_display, collapse_summary
from ..analysis.schedule import cut_schedule_notes
from ..analysis.intervals import DEFAULT_RULE, with_interval
from ..bench.table import Benchmark
from ..destinations import check_writable, writing
from ..engine.atomic import write_text_atomic
from ..engine.config import PRESETS
from ..ranges import EPOCHS
from ..errors import MissingFileError, NbsError, quote
from ..plots.collapse import plot_collapse
from ..plots.common import NothingToPlotError
from ..plots.style import save_figure
from ..report.tables import Table, to_markdown
from .compare import Comparison, compare
from .experiments import Experiment, get_experiment
from .runner import MANIFEST, Plan, is_table_search

REPORT = "REPORT.md"


@dataclass
class ReportFiles:
    markdown: Path
    comparison: Path
    seeds: Path
    figures: list[Path] = field(default_factory=list)


def plan_from_manifest(out: Path) -> Plan:
    """The plan an experiment folder was last run with (its ``experiment.json``), every field checked: a
    report and commands made from a wrong-typed field would not describe the runs, so such a manifest is
    refused in one line (MissingFileError) instead."""
    path = out / MANIFEST
    if not path.is_file():
        raise MissingFileError(f"{out} holds no {MANIFEST}: not an `nbs reproduce` folder (run the experiment first)")

    def damaged(problem: str) -> MissingFileError:
        return MissingFileError(f"{path} is damaged ({problem}); re-run the experiment to rewrite it")

    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise damaged(f"not JSON: {err.__class__.__name__}") from None
    problem = manifest_problem(m)
    if problem:
        raise damaged(problem)
    rows = tuple(m["rows"])
    try:
        plan = Plan(get_experiment(m["experiment"]).select(list(rows)), tuple(m["seeds"]), m["preset"], m["device"],
                    m["epochs"], out, rows, tuple(sorted((k, str(v)) for k, v in m["set"].items())),
                    m.get("runs_from"))
        _report_configs(plan)   # a setting no run could have been made with (an unknown --set key, say)
    except NbsError as err:
        raise damaged(str(err)) from None
    return plan


#: the fields of ``experiment.json`` a plan is made from (``write_manifest`` writes them all)
MANIFEST_FIELDS = ("experiment", "seeds", "preset", "device", "epochs", "rows", "set")


def manifest_problem(m: object) -> str:
    """What is wrong with a parsed ``experiment.json`` ('' if nothing), in a few words."""
    if not isinstance(m, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(m), "a number")
        return f"{kind} where a JSON object belongs"
    missing = [k for k in MANIFEST_FIELDS if k not in m]
    if missing:
        return f"no {', '.join(map(repr, missing))}"

    def count(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    seeds, epochs, sets = m["seeds"], m["epochs"], m["set"]
    if not isinstance(m["experiment"], str):
        return f"experiment {quote(m['experiment'])} is not a name"
    # nbs runs seeds 0..K-1 (--seeds K): any other list has no command that reproduces it
    if (not isinstance(seeds, list) or not 1 <= len(seeds) <= 1000 or not all(map(count, seeds))
            or seeds != list(range(len(seeds)))):
        return f"seeds {quote(seeds)} are not 0..K-1 for a K between 1 and 1000"
    if not isinstance(m["preset"], str) or m["preset"] not in PRESETS:
        return f"preset {quote(m['preset'])} is not one of {', '.join(PRESETS)}"
    if not isinstance(m["device"], str) or not re.fullmatch(r"cpu|cuda(:\d+)?", m["device"]):
        return f"device {quote(m['device'])} is not cpu or cuda[:N]"
    if epochs is not None and not (count(epochs) and EPOCHS.contains(epochs)):
        return f"epochs {quote(epochs)} is neither null nor a whole number from {EPOCHS.lo:,} to {EPOCHS.hi:,}"
    if not isinstance(m["rows"], list) or not all(isinstance(r, str) for r in m["rows"]):
        return f"rows {quote(m['rows'])} is not a list of row labels"
    if not isinstance(sets, dict) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                             for v in sets.values()):
        return f"set {quote(sets)} is not an object of KEY: VALUE"
    if m.get("runs_from") is not None and not isinstance(m["runs_from"], str):
        return f"runs_from {quote(m['runs_from'])} is not a text"
    return ""


def _report_configs(plan: Plan) -> list:
    """The plan's resolved configs, as the report reads them (method, preset, epochs): resolved for the CPU,
    so that a report of runs made on a GPU can be rewritten on a machine without one."""
    return [c for cs in dataclasses.replace(plan, device="cpu").configs().values() for c in cs]


def write_report(plan: Plan, benchmark: Benchmark, sources: dict[str, list[Path]] | None = None,
                 runs_from: str | None = None) -> ReportFiles:
    """REPORT.md (and its tables and figures) in ``plan.out``; ``sources``/``runs_from``: the runs were made
    elsewhere (a sweep) and matched by config (:func:`.runner.match_runs`), ``runs_from`` naming where."""
    comparison = compare(plan.experiment, plan.out, plan.seeds, benchmark, sources)
    out = plan.out
    files = ReportFiles(out / REPORT, out / "comparison.csv", out / "seeds.csv")
    check_writable(out, "report folder")
    for frame, path in ((comparison.lines, files.comparison), (comparison.seeds, files.seeds)):
        with writing(path, "report table"):
            write_text_atomic(path, frame.to_csv(index=False))
    figure_note = ""
    if not comparison.records.empty:
        try:
            fig = plot_collapse(comparison.records.assign(method=comparison.records["row"]), benchmark=benchmark)
            files.figures += [save_figure(fig, out / "figures" / f"collapse.{ext}") for ext in ("png", "pdf")]
        except NothingToPlotError as err:
            figure_note = f"No collapse curves: {err}."
    with writing(files.markdown, "report"):
        write_text_atomic(files.markdown, render(plan, comparison, files, figure_note, runs_from))
    return files


# ---- rendering ------------------------------------------------------------------------------
def render(plan: Plan, comparison: Comparison, files: ReportFiles, figure_note: str = "",
           runs_from: str | None = None) -> str:
    exp = plan.experiment
    parts = [f"# Reproduction: {exp.title}", "", f"`{exp.name}` · nbs {__version__}", "",
             _scale_paragraph(plan, comparison), "", f"**What the paper shows.** {exp.what_to_see}", ""]
    parts += [to_markdown(_comparison_table(exp, comparison)), ""]
    missing = _unavailable_table(exp, comparison)
    if missing is not None:
        parts += [to_markdown(missing), ""]
    if not comparison.seeds.empty:
        parts += [to_markdown(_seeds_table(comparison)), ""]
        parts += [to_markdown(_collapse_table(comparison)), ""]
    if files.figures:
        parts += ["### Collapse curves", "", f"![collapse curves](figures/{files.figures[0].name})", "",
                  "Top: the derived cell's 200-epoch test accuracy at every search epoch (mean ± std over seeds; "
                  "dashed: the best cell in the benchmark). Bottom: its parameter-free edges.", ""]
    elif figure_note:
        parts += [figure_note, ""]
    parts += ["### Commands", ""]
    if runs_from is not None:
        parts += [f"These runs were made elsewhere ({runs_from}) and matched to the experiment's rows by their "
                  "saved config (the same method, preset, epochs and settings; any seed asked for). The same "
                  "runs through `nbs reproduce` itself:", ""]
    else:
        parts += ["The whole experiment (re-running it resumes; the report is rewritten):", ""]
    parts += ["```", plan.reproduce_command(), "```", "", "Each distinct run on its own:", "", "```"]
    parts += [plan.command(row) for row in exp.runs().values()] + ["```", ""]
    parts += ["Every analysis of these runs (α, gradient correlation, Hessian, ...): "
              + (f"`nbs report` on the runs' folder ({runs_from})." if runs_from is not None else
               f"`nbs report {shlex.quote(str(plan.out / 'runs'))} --out {shlex.quote(str(plan.out / 'html'))}`."), ""]
    parts += ["### Readings and notes", ""] + [f"- {n}" for n in _notes(exp, comparison)] + [""]
    return "\n".join(parts)


def _scale_paragraph(plan: Plan, comparison: Comparison) -> str:
    preset = PRESETS[plan.preset]
    records = comparison.records
    bn = sorted({bool(v) for v in records["track_running_stats"].dropna()}) if "track_running_stats" in records else []
    bn_text = ("BN running statistics on (NB201's BN=1)" if bn == [True] else
               "BN running statistics off" if bn == [False] else "BN mode mixed across rows" if bn else "BN mode: no runs yet")
    devices = sorted({str(d) for d in records["device"].dropna()}) if "device" in records else []
    packs = sorted({int(p) for p in records["pack_size"].dropna()}) if "pack_size" in records else []
    epochs = f", {plan.epochs} epoch(s) (--epochs)" if plan.epochs is not None else ""
    epochs += "".join(f", {k}={v} (--set)" for k, v in plan.extra)
    table_only = all(is_table_search(r) for r in plan.experiment.run_rows())
    if table_only:
        lines = [f"**Scale.** Only table searches ran ({', '.join(r.label for r in plan.experiment.run_rows())}): "
                 f"they query the benchmark and train nothing, so the preset does not apply; {len(plan.seeds)} "
                 f"seed(s) (the paper: {plan.experiment.seeds})."]
    else:
        lines = [f"**Scale.** preset `{plan.preset}` ({preset.description}){epochs}; {len(plan.seeds)} seed(s) "
                 f"(the paper: {plan.experiment.seeds}); device {', '.join(devices) or plan.device}; {bn_text}"
                 + (f"; packed seeds: pack size {', '.join(map(str, packs))}" if packs and packs != [1] else "") + "."]
    configs = _report_configs(plan)
    cut = cut_schedule_notes(pd.DataFrame([{"method": c.method, "preset": c.preset, "epochs": c.epochs}
                                           for c in configs]))
    if cut:
        lines.append("**Epochs cut**: " + "; ".join(cut) + ".")
    if not table_only and not plan.paper_scale:
        lines.append("**This is not the paper's setting**: a reduced network, data, epochs or a changed setting, so the "
                     "numbers below test the pipeline, not the paper's claim. Run with `--preset paper` (a GPU) and "
                     "no --epochs or --set to compare.")
    unfinished = comparison.seeds[comparison.seeds["status"] != "finished"] if not comparison.seeds.empty else []
    if len(unfinished):
        lines.append(f"**Not finished**: {len(unfinished)} seed run(s) (their latest epoch is used): "
                     + ", ".join(f"{r.row} seed {r.seed} ({r.status}, epoch {r.epochs})"
                                 for r in unfinished.itertuples()) + ".")
    if comparison.left_out:
        by_file: dict[str, list[dict]] = {}   # rows with one configuration share their runs: each file once
        for d in comparison.left_out:
            by_file.setdefault(d["file"], []).append(d)
        lines.append(f"**Left out of ours**: {len(by_file)} seed run(s) whose final record is damaged or missing "
                     "(an earlier epoch's cell is not the search's result): "
                     + "; ".join(f"{', '.join(d['row'] for d in ds)} seed {ds[0]['seed']}: `{file}` is "
                                 f"{ds[0]['problem']}" for file, ds in by_file.items())
                     + ". Re-run such a seed into another --out (runs are deterministic) to have it again.")
    said = [d["file"] for d in comparison.left_out]
    damaged = [n for n in comparison.load_notes if not any(f in n for f in said)]
    if damaged:
        lines.append("**Damaged files**: " + "; ".join(n.rstrip(".") for n in damaged) + ".")
    return " ".join(lines)


def _column_label(dataset: str, split: str, exact: bool | None) -> str:
    mark = APPROX_MARK if exact is False else ""
    return f"{DATASET_LABELS.get(dataset, dataset)} {split}{mark}"


def _ours_text(line: pd.Series, left_out: set[str] = frozenset()) -> str:
    if line["kind"] == "unavailable":
        return "n/a"
    if line["n"] == 0:
        return "none readable (see Left out of ours)" if line["row"] in left_out else "not run yet"
    if line["kind"] == "benchmark":
        return f"{line['mean']:.2f} (benchmark)"
    text = f"{line['mean']:.2f}" + (f" ± {line['std']:.2f}" if line["n"] > 1 else "")
    text = with_interval(text, line["ci_low"], line["ci_high"])
    return f"{text} (n={line['n']}, {line['min']:.2f}–{line['max']:.2f})"


def _comparison_table(exp: Experiment, comparison: Comparison) -> Table:
    """Long: one line per (row, column) of the rows we have numbers for."""
    rows, left_out = [], {d["row"] for d in comparison.left_out}
    for line in comparison.lines.itertuples(index=False):
        s = pd.Series(line._asdict())
        if s["kind"] == "unavailable":
            continue
        rows.append({
            "row": s["row"], "column": _column_label(s["dataset"], s["split"], s["exact"]),
            "ours": _ours_text(s, left_out), "published": s["published_display"] or "–",
            "ours − published": f"{s['difference']:+.2f}" if math.isfinite(s["difference"]) else "",
            "verdict": s["verdict"] if isinstance(s["verdict"], str) else "",
        })
    frame = pd.DataFrame(rows, columns=["row", "column", "ours", "published", "ours − published", "verdict"])
    notes = (f"ours: the final derived cell of each seed scored in the benchmark (200-epoch training), mean ± sample "
             f"std over seeds [95% interval of the mean], (n, min–max). {DEFAULT_RULE.describe()} {describe_verdict()} One "
             f"seed gets no verdict. {APPROX_MARK}: the benchmark column is approximate, "
             f"not the official 3-seed mean (see `nbs bench build`). Published per-trial rows show their trials in "
             f"brackets. BN beside a published number: the BN mode its search ran with (on: BN running statistics "
             f"tracked, track_running_stats=True, xautodl's BN=1) and ours; where a row is printed for both modes, "
             f"ours is compared with the print of our mode, and a print whose source states no mode stands for "
             f"either, marked \"BN mode not stated\".",)
    return Table("comparison", "Ours beside the published numbers", frame.set_index("row"), notes)


def _unavailable_table(exp: Experiment, comparison: Comparison) -> Table | None:
    """Wide: the printed rows we have no numbers for, with the reason."""
    lines = comparison.lines[comparison.lines["kind"] == "unavailable"]
    if lines.empty:
        return None
    reasons = {r.label: r.unavailable for r in exp.rows}
    out = {}
    for label, group in lines.groupby("row", sort=False):
        cells = {_column_label(g.dataset, g.split, g.exact): g.published_display or "–" for g in group.itertuples()}
        out[label] = {"why not": reasons.get(label, ""), **cells}
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = "row"
    return Table("unavailable", "Published rows without ours", frame)


def _seeds_table(comparison: Comparison) -> Table:
    s = comparison.seeds
    frame = pd.DataFrame({
        "row": s["row"], "seed": s["seed"].astype(str), "status": s["status"], "epochs": s["epochs"],
        "final cell": s["final_cell"], "param-free ops": s["param_free"].astype(str),
        "CIFAR-10 test": s["cifar10_test"].map(lambda v: f"{v:.2f}" if math.isfinite(v) else "–"),
        "final cell since epoch": s["final_cell_since_epoch"].astype(str),
        "best cell: epoch (CIFAR-10 test)": [f"{int(e)} ({a:.2f})" if math.isfinite(a) else "–"
                                             for e, a in zip(s["best_epoch"], s["acc_best"])],
        "≥ 50% param-free from epoch": s["first_half_param_free_epoch"].map(
            lambda v: f"{int(v)}" if math.isfinite(v) else "never"),
    })
    return Table("seeds", "Each seed's final cell", frame.set_index("row"),
                 ("final cell since epoch: the first epoch from which the derived cell stayed the final one. best "
                  "cell: the epoch whose derived cell scored highest, and its score. ≥ 50% param-free: the first "
                  "epoch whose cell had ≥ 3 of 6 edges none, skip or pool.",))


def _collapse_table(comparison: Comparison) -> Table:
    criteria = CollapseCriteria()
    summary = collapse_summary(comparison.records.assign(method=comparison.records["row"]), criteria)
    frame = collapse_display(summary, criteria)
    frame.index.name = "row"
    return Table("collapse", "Collapse over the search", frame, (criteria.describe(),))


def _notes(exp: Experiment, comparison: Comparison) -> list[str]:
    notes = list(exp.readings)
    for row in exp.rows:
        if row.reading:
            notes.append(f"{row.label}: {row.reading}.")
        if row.kind == "benchmark":
            what = "the best value of each column over all 15,625 cells" if row.benchmark == "optimum" else row.benchmark
            notes.append(f"{row.label}: read off the benchmark ({what}); the paper's numbers come from NB201 v1.0, "
                         f"ours from the table `nbs bench build` made, which can differ in the second decimal.")
    lines = comparison.lines
    for (label, note) in lines.loc[lines["published_note"] != "", ["row", "published_note"]].drop_duplicates().itertuples(index=False):
        notes.append(f"{label} (published): {note}.")
    notes.append(f"Published numbers: {', '.join(sorted({r.published.citation for r in exp.rows}))}; bundled in "
                 f"nasbench_stability/reproduce/published.csv.")
    return notes
