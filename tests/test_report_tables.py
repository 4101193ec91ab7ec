"""Table rendering: the same strings in Markdown, LaTeX and HTML, with each format's escaping."""

from __future__ import annotations

import pandas as pd

from nasbench_stability.report import Table, latex_escape, to_html, to_latex, to_markdown

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"


def table() -> Table:
    frame = pd.DataFrame({"CIFAR-10 valid†": ["91.00 ± 0.50", "91.57"], "cell": [ARCH, "<b>&"]},
                         index=pd.Index(["darts-v1", "optimal"], name="method"))
    return Table("t", "Results (%) for α_1", frame, ("† approximate: 50% of x_y.",))


def test_latex_escapes_specials_and_symbols():
    assert latex_escape("a_b & 50% #1 {x} ~ ^") == r"a\_b \& 50\% \#1 \{x\} \textasciitilde{} \textasciicircum{}"
    assert latex_escape("93.1 ± 0.2 †") == r"93.1 $\pm$ 0.2 $^\dagger$"
    tex = to_latex(table())
    assert r"\begin{tabular}{lrr}" in tex and r"\caption{Results (\%) for $\alpha$\_1}" in tex
    assert r"darts-v1 & 91.00 $\pm$ 0.50 & \textbar{}nor\_conv\_3x3\textasciitilde{}0\textbar{}" in tex
    assert r"\label{tab:t}" in tex and r"\bottomrule" in tex and r"50\% of x\_y." in tex


def test_markdown_escapes_pipes_in_cells():
    md = to_markdown(table())
    lines = md.splitlines()
    assert lines[0] == "### Results (%) for α_1"
    assert lines[2] == "| method | CIFAR-10 valid† | cell |" and lines[3] == "|---|---|---|"
    assert lines[4].startswith("| darts-v1 | 91.00 ± 0.50 | \\|nor_conv_3x3~0\\|+")
    assert all(line.count(" | ") == 2 for line in lines[4:6])
    assert "† approximate: 50% of x_y." in md


def test_html_escapes_and_marks_row_headers():
    out = to_html(table())
    assert '<table class="nbs-table" id="table-t">' in out
    assert '<th scope="row">darts-v1</th>' in out and ">&lt;b&gt;&amp;</td>" in out and '<td class="num">91.57</td>' in out
    assert "<caption>Results (%) for α_1</caption>" in out and "<p>† approximate: 50% of x_y.</p>" in out
