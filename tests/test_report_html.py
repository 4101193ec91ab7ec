"""The report from the real study: files, tables that agree with the analysis, the CLI, and the page
rendered in a real headless browser (Debian chromium; skipped with a reason when it is absent)."""

from __future__ import annotations

import base64
import html
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nasbench_stability.analysis import collapse_events, early_warning, load_runs, results_table, survival_summary
from nasbench_stability.cli.analysis_commands import plot, report
from nasbench_stability.cli.main import NbsGroup
from nasbench_stability.report import build_report

from conftest import EPOCHS, METHODS, SEEDS


class PageParser(HTMLParser):
    """Collects what the tests look at: tables (id → rows of cell texts), images, links, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.external: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            value = a.get(key) or ""
            if re.match(r"^(https?:)?//", value):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def built(study, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("report") / "study"
    return build_report([study.runs], out, benchmark=study.benchmark, title="Test study",
                        figure_formats=("png", "pdf"))


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_report_writes_page_tables_and_figures(built, study):  # noqa: F811
    assert built.html.name == "index.html" and built.markdown.exists() and built.latex.exists()
    kinds = [f.key for f in built.figures]
    # the early-warning figure (in its own section) needs a collapsing and a control run; smoke runs may lack either
    warned = early_warning(load_runs(study.runs)).ok
    assert kinds == ["collapse", "survival", "alphas", "gradcorr", "opgrads", "hessian"] + ["warning"] * warned
    for fig in built.figures:
        assert [p.suffix for p in fig.files] == [".png", ".pdf"]
        assert all(p.stat().st_size > 1000 for p in fig.files)


def test_page_is_self_contained_and_complete(built, study):  # noqa: F811
    page = parse(built.html)
    assert not page.external, f"external resources: {page.external}"
    assert len(page.images) == len(built.figures)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    expected = {"table-results", "table-collapse", "table-collapse-runs", "table-seeds", "table-benchmark",
                "table-runs", "table-pairwise-cifar10", "table-pairwise-cifar100", "table-pairwise-ImageNet16-120",
                "table-survival", "table-logrank", "table-warning"}
    assert expected <= set(page.tables)
    assert len(page.tables["table-seeds"]) == 1 + len(METHODS) * SEEDS
    runs_header = page.tables["table-runs"][0]
    assert {"step order", "lr schedule", "BN running stats"} <= set(runs_header)   # the report states them
    text = built.html.read_text(encoding="utf-8")
    assert "nb201_zen.zip" in text and "approximate" in text and "Collapsed:" in text
    assert text.count("<details>") == len(METHODS) * SEEDS and '"hessian_every": 2' in text
    # no path of the machine: the runs (under a temporary folder) are shown from their folder's name down
    assert str(study.runs.parent) not in text and f"{study.runs.name}/darts-v1-cifar10-seed0" in text
    for method in METHODS:   # the study's smoke runs cut each method's 50 epochs: the page says so up front
        note = f"Epochs cut: {method}: smoke preset: epochs cut to {EPOCHS}, not the method's own 50"
        assert note in html.unescape(text) and note in built.markdown.read_text(encoding="utf-8")


def test_report_tables_agree_with_the_analysis(built, study):  # noqa: F811
    shown = results_table(load_runs(study.runs), study.benchmark).display()
    page = parse(built.html)
    head, *rows = page.tables["table-results"]
    assert head == ["method", *shown.columns]
    by_method = {r[0]: r[1:] for r in rows}
    for method in [*METHODS, "optimal"]:
        assert by_method[method] == list(shown.loc[method]), method
    markdown = built.markdown.read_text(encoding="utf-8")
    latex = built.latex.read_text(encoding="utf-8")
    for method in METHODS:
        cell = shown.loc[method, "CIFAR-10 test"]
        assert f"| {method} | " in markdown and cell in markdown
        assert cell.replace("±", r"$\pm$") in latex
    assert r"CIFAR-10 valid$^\dagger$" in latex and r"\toprule" in latex
    assert latex.count(r"\begin{table}") == latex.count(r"\end{table}") == len(built.tables)
    assert r"\textbar{}" in latex and "|nor_conv" not in latex      # arch strings escaped
    assert "\\|" in markdown                                          # pipes inside cells escaped


def test_statistics_tables_agree_with_the_analysis(built, study):  # noqa: F811
    df = load_runs(study.runs)
    page = parse(built.html)
    # the study has 2 seeds per method: the pairwise and log-rank cells say so instead of giving numbers
    head, *rows = page.tables["table-pairwise-cifar10"]
    assert head[:2] == ["pair (A − B)", "seeds (A / B)"] and "p (Welch's t)" in head
    assert [r[0] for r in rows] == [f"{METHODS[0]} − {METHODS[1]}"]
    assert rows[0][1] == f"{SEEDS} / {SEEDS}" and set(rows[0][2:]) == {"too few seeds"}
    assert set(page.tables["table-logrank"][1][3:]) == {"too few seeds"}
    # survival: events and censoring as the analysis counts them, the median where the curve reaches 50%
    summary = survival_summary(collapse_events(df))
    shown = {r[0]: r[1:] for r in page.tables["table-survival"][1:]}
    for method in METHODS:
        s = summary.loc[method]
        assert shown[method][:3] == [str(SEEDS), str(int(s["collapses"])), str(int(s["censored"]))]
        median = s["median_epochs"]
        assert shown[method][3] == (str(int(median)) if median == median else f"not reached (> {int(s['last_epoch'])})")
    # every mean of the results table carries its interval, and the notes say which interval
    results = page.tables["table-results"]
    assert all(re.search(r" \[[\d.]+, [\d.]+\]$", cell) for cell in results[1][1:4]), results[1]
    text = built.html.read_text(encoding="utf-8")
    assert "percentile bootstrap over seeds" in text and "Holm" in text and "Kaplan–Meier" in text
    markdown, latex = built.markdown.read_text(encoding="utf-8"), built.latex.read_text(encoding="utf-8")
    assert "### Collapse as survival: epochs to the first collapse" in markdown and "too few seeds" in latex


# ---- CLI -------------------------------------------------------------------------------------
@pytest.fixture
def cli() -> click.Group:
    """The commands as the lead registers them: in an NbsGroup (one-line errors, exit status 2)."""
    group = NbsGroup(name="nbs")
    group.add_command(report)
    group.add_command(plot)
    return group


def test_cli_report_and_plot(cli, study, tmp_path):  # noqa: F811
    runner = CliRunner()
    out = tmp_path / "rep"
    result = runner.invoke(cli, ["report", str(study.runs), "--out", str(out), "--benchmark",
                                 str(study.benchmark_path), "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'index.html'}" in result.output
    assert (out / "figures" / "collapse.svg").exists() and (out / "tables.tex").exists()
    for kind, name, bands in (("collapse", "c.pdf", "ci"), ("hessian", "h.png", "std"), ("alphas", "a.svg", "ci"),
                              ("survival", "s.png", "ci")):
        result = runner.invoke(cli, ["plot", kind, *map(str, study.run_dirs()), "--out", str(tmp_path / name),
                                     "--benchmark", str(study.benchmark_path), "--band", bands])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["plot", "pie", "{runs}", "--out", "x.png"], "unknown plot kind 'pie'"),
    (["plot", "collapse", "{empty}", "--out", "x.png"], "no nbs run directories"),
    (["plot", "collapse", "{runs}", "--out", "x.gif"], "use a .png, .pdf or .svg"),
    (["report", "{empty}", "--out", "r", "--benchmark", "{bench}"], "no nbs run directories"),
    (["report", "{runs}", "--out", "r", "--benchmark", "{empty}/none.parquet"], "no benchmark table"),
    (["plot", "survival", "{runs}", "--out", "x.png", "--band", "iqr"], "unknown band 'iqr'; known: ci, std"),
    (["report", "{runs}", "--out", "r", "--benchmark", "{bench}", "--band", "iqr"], "unknown band 'iqr'"),
    (["report", "{runs}", "--out", "r", "--benchmark", "{bench}", "--test", "anova"], "unknown test 'anova'"),
])
def test_cli_errors_are_one_line(cli, study, tmp_path, args, message):  # noqa: F811
    empty = tmp_path / "empty"
    empty.mkdir()
    fill = {"runs": str(study.runs), "empty": str(empty), "bench": str(study.benchmark_path)}
    result = CliRunner().invoke(cli, [a.format(**fill) for a in args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("nbs: error:") and message in lines[0], result.output


def test_main_cli_has_the_commands_once_registered():
    from nasbench_stability.cli.main import main

    if "report" not in main.commands:
        pytest.skip("nbs report/plot not registered in nasbench_stability.cli.main yet")
    assert main.commands["report"] is report and main.commands["plot"] is plot


# ---- a real browser --------------------------------------------------------------------------
# Debian's chromium driven by Playwright (executable_path): no browser download, the one the Makefile's
# `browser` target installs
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
VIEWPORT = {"width": 1280, "height": 1600}

# marks, not fixture skips: they are decided before the (module-scoped, slow) report is built
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="chromium is not installed (Debian: apt-get install -y chromium)")
needs_playwright = pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                                      reason="playwright is not installed (pip install playwright)")


@dataclass
class PageEvents:
    """What a page reported while loading: console errors and warnings (Playwright reports the browser's
    own log entries, such as an image that failed to decode, as console messages too), uncaught
    exceptions, and requests that left the file (the report must be self-contained) or failed."""
    problems: list[str] = field(default_factory=list)

    def listen(self, page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"exception: {error}"))
        page.on("request", self._request)
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text}")

    def _request(self, request) -> None:
        if not request.url.startswith(("file:", "data:")):
            self.problems.append(f"request: {request.url}")


@pytest.fixture
def page():
    """(a page in headless Debian chromium, the events it reports)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)   # a loaded 2-core machine
            events = PageEvents()
            events.listen(page)
            yield page, events
        finally:
            browser.close()


@needs_chromium
@needs_playwright
def test_report_renders_in_headless_chromium(page, built, tmp_path):
    page, events = page
    page.goto(built.html.resolve().as_uri(), wait_until="load")
    state = page.evaluate("""() => ({
        images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
        tables: Array.from(document.querySelectorAll('table')).map(t => t.id),
        height: document.documentElement.scrollHeight })""")
    assert page.title() == "Test study"
    assert len(state["images"]) == len(built.figures)
    assert all(ok and w > 0 and h > 0 for ok, w, h in state["images"]), state["images"]
    assert {"table-results", "table-collapse", "table-seeds", "table-benchmark", "table-runs"} <= set(state["tables"])
    assert page.locator("#table-results tbody tr").count() == len(METHODS) + 1
    assert not events.problems, events.problems
    png = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORT["width"],
                                                "height": min(state["height"], 6000)})
    assert png[:4] == b"\x89PNG" and len(png) > 50_000
    target = Path(os.environ.get("NBS_REPORT_SCREENSHOT", tmp_path / "report.png"))
    target.write_bytes(png)


# ---- committed reports -------------------------------------------------------------------------
COMMITTED = Path(__file__).resolve().parents[1] / "reports"


def table_headers(markdown: str) -> dict[str, list[str]]:
    """{table title: its header's columns} of a report's tables.md."""
    headers, title = {}, None
    for line in markdown.splitlines():
        if line.startswith("### "):
            title = line[4:].strip()
        elif title is not None and line.startswith("| "):
            # a time column names the unit its values needed (s, min, h): the same column whatever the unit
            headers[title] = [re.sub(r"\((s|min|h)\)$", "(time unit)", c.strip())
                              for c in line.strip().strip("|").split("|")]
            title = None
    return headers


@pytest.mark.parametrize("committed", sorted(COMMITTED.glob("*/tables.md")), ids=lambda p: p.parent.name)
def test_a_committed_report_has_the_columns_the_code_writes_now(committed, built):
    """A committed report is regenerated by the current code: a table whose columns changed since fails here."""
    theirs = table_headers(committed.read_text(encoding="utf-8"))
    mine = table_headers(built.markdown.read_text(encoding="utf-8"))
    shared = sorted(set(theirs) & set(mine))
    assert len(shared) >= 5, (sorted(theirs), sorted(mine))   # results, collapse, per-seed, survival, runs...
    for title in shared:
        assert theirs[title] == mine[title], f"{committed}: table {title!r} has other columns than nbs writes now"
    text = committed.read_text(encoding="utf-8") + (committed.parent / "index.html").read_text(encoding="utf-8")
    assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, "a path of the machine"
