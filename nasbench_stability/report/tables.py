"""A table as the report carries it (strings, caption, footnotes), rendered to Markdown, LaTeX and HTML.

The analysis layer produces display frames of strings; this module only lays them out, so the
three formats can never disagree on a number. LaTeX output uses booktabs and escapes everything
(arch strings are full of ``|`` and ``~``); Markdown escapes ``|`` inside cells.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Table:
    key: str                       # file-safe id, also the LaTeX label and the HTML anchor
    title: str
    frame: pd.DataFrame            # strings; the index is shown as the first column if named
    footnotes: tuple[str, ...] = field(default_factory=tuple)

    def header(self) -> list[str]:
        cols = [str(c) for c in self.frame.columns]
        return ([str(self.frame.index.name)] + cols) if self.frame.index.name else cols

    def rows(self) -> list[list[str]]:
        values = [[_text(v) for v in row] for row in self.frame.itertuples(index=False, name=None)]
        if self.frame.index.name:
            return [[str(i)] + r for i, r in zip(self.frame.index, values)]
        return values


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


# ---- Markdown --------------------------------------------------------------------------------
def to_markdown(table: Table) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    head = table.header()
    lines = [f"### {table.title}", "", "| " + " | ".join(cell(h) for h in head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows()]
    if table.footnotes:
        lines.append("")
        lines += [f"{note}  " for note in table.footnotes]
    return "\n".join(lines) + "\n"


# ---- LaTeX -----------------------------------------------------------------------------------
_LATEX_CHARS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}", "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_LATEX_UNICODE = {
    # λ̄ (λ with a combining macron) before λ: the regex takes the first alternative that matches
    "λ̄": r"$\bar{\lambda}$", "λ": r"$\lambda$", "∂": r"$\partial$", "θ": r"$\theta$",
    "±": r"$\pm$", "†": r"$^\dagger$", "−": r"$-$", "–": "--", "—": "---", "≥": r"$\geq$", "≤": r"$\leq$",
    "→": r"$\to$", "×": r"$\times$", "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "ψ": r"$\psi$",
    "τ": r"$\tau$", "ρ": r"$\rho$", "∇": r"$\nabla$", "²": r"$^2$", "…": r"\ldots{}", "σ": r"$\sigma$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in (*_LATEX_CHARS, *_LATEX_UNICODE)))


def latex_escape(text: str) -> str:
    """Plain text → LaTeX text mode (specials escaped, the few Unicode symbols we print as math)."""
    return _LATEX_RE.sub(lambda m: _LATEX_CHARS.get(m.group(0)) or _LATEX_UNICODE[m.group(0)], text)


def to_latex(table: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    head = table.header()
    align = "l" + "r" * (len(head) - 1)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(table.title)}}}", rf"\label{{tab:{table.key}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows()]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footnotes:
        lines.append(r"\par\smallskip\parbox{\linewidth}{\footnotesize " +
                     r" \\ ".join(latex_escape(n) for n in table.footnotes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---- HTML ------------------------------------------------------------------------------------
_INTERVAL = r"\[[-+−]?[\d.,]+%?, [-+−]?[\d.,]+%?\]"
_NUMERIC = re.compile(rf"^(([-+−]?[\d.,]+( ± [\d.,]+)?( \(\d+/\d+\))?%?|[\d.]+% \(\d+/\d+\))( {_INTERVAL})?"
                      rf"( \(\d+/\d+\))?|{_INTERVAL}|never \(\d+/\d+\)|–|\d+ ?/ ?\d+|< [\d.]+)$")
_WRAP_AT = 60


def _td(text: str) -> str:
    """Numbers right-aligned, text left-aligned, long prose allowed to wrap."""
    cls = "num" if _NUMERIC.match(text) else "wrap" if len(text) > _WRAP_AT and " " in text else "txt"
    return f'<td class="{cls}">{html.escape(text)}</td>'


def to_html(table: Table) -> str:
    head = table.header()
    first_is_index = bool(table.frame.index.name)
    out = [f'<table class="nbs-table" id="table-{html.escape(table.key)}">',
           f"<caption>{html.escape(table.title)}</caption>",
           "<thead><tr>" + "".join(f'<th scope="col">{html.escape(h)}</th>' for h in head) + "</tr></thead>",
           "<tbody>"]
    for row in table.rows():
        cells = [f'<th scope="row">{html.escape(row[0])}</th>' if first_is_index else _td(row[0])]
        cells += [_td(c) for c in row[1:]]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if table.footnotes:
        out.append('<div class="notes">' + "".join(f"<p>{html.escape(n)}</p>" for n in table.footnotes) + "</div>")
    return "\n".join(out)
