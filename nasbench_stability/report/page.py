"""The self-contained HTML page: one file, figures embedded as base64 PNG, no external resource.

Self-contained so that a report can be mailed, attached to an issue or opened from a CI artifact
and look the same everywhere; the page loads nothing from the network (not even a favicon), so it
also opens without console errors in a sandboxed browser.
"""

from __future__ import annotations

import base64
import html
import struct
from dataclasses import dataclass
from string import Template
from typing import Sequence

from ..plots.style import PNG_DPI
from .figures import ReportFigure
from .tables import Table, to_html

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nbs $version">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1f;
       max-width: 1200px; margin: 2rem auto; padding: 0 1.2rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; } h3 { font-size: 1.05rem; }
.meta { color: #555; font-size: 0.9rem; }
.description { max-width: 75rem; }
nav ul { columns: 2; font-size: 0.92rem; }
.scroll { overflow-x: auto; margin: 0.8rem 0; }
table.nbs-table { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
table.nbs-table caption { text-align: left; font-weight: 600; padding-bottom: 0.35rem; }
table.nbs-table th, table.nbs-table td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e4e4e4;
  text-align: left; white-space: nowrap; }
table.nbs-table td.num { text-align: right; }
table.nbs-table td.wrap { white-space: normal; min-width: 18rem; }
table.nbs-table thead th { border-bottom: 2px solid #333; text-align: center; white-space: normal;
  vertical-align: bottom; }
table.nbs-table tbody th { text-align: left; }
.notes p { font-size: 0.8rem; color: #444; margin: 0.2rem 0; max-width: 80rem; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #333; max-width: 75rem; }
details { margin: 0.4rem 0; } pre { background: #f6f6f6; padding: 0.6rem; font-size: 0.78rem; overflow-x: auto; }
code { font-size: 0.85em; }
</style>
</head>
<body>
<header>
<h1>$title</h1>
<p class="meta">$meta</p>
$description
</header>
<nav><ul>$nav</ul></nav>
$sections
</body>
</html>
""")


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    body: str      # HTML


def table_section(key: str, title: str, tables: Sequence[Table], intro: str = "") -> Section:
    body = (f"<p>{html.escape(intro)}</p>" if intro else "") + "".join(
        f'<div class="scroll">{to_html(t)}</div>' for t in tables)
    return Section(key, title, body)


def css_width(png: bytes, dpi: float = PNG_DPI) -> int:
    """The figure's own width in CSS pixels (96 per inch), read from the PNG header, so that every
    figure shows its fonts at the same size however wide it is."""
    return round(struct.unpack(">I", png[16:20])[0] * 96 / dpi)


def figure_html(fig: ReportFigure) -> str:
    png = fig.png.read_bytes()
    data = base64.b64encode(png).decode("ascii")
    links = ", ".join(f'<a href="figures/{html.escape(p.name)}">{html.escape(p.suffix[1:].upper())}</a>'
                      for p in fig.files)
    return (f'<figure id="figure-{html.escape(fig.key)}"><h3>{html.escape(fig.title)}</h3>'
            f'<img src="data:image/png;base64,{data}" width="{css_width(png)}" alt="{html.escape(fig.title)}">'
            f"<figcaption>{html.escape(fig.caption)} (files: {links})</figcaption></figure>")


def figures_section(figures: Sequence[ReportFigure], skipped: Sequence[str]) -> Section:
    body = "".join(figure_html(f) for f in figures)
    if skipped:
        body += '<div class="notes">' + "".join(f"<p>Not shown — {html.escape(s)}</p>" for s in skipped) + "</div>"
    return Section("figures", "Figures", body)


def render_page(title: str, meta: str, sections: Sequence[Section], version: str, description: str = "") -> str:
    nav = "".join(f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(f'<section id="{html.escape(s.key)}"><h2>{html.escape(s.title)}</h2>\n{s.body}</section>'
                     for s in sections)
    intro = "".join(f'<p class="description">{html.escape(p)}</p>' for p in description.split("\n\n") if p.strip())
    return _PAGE.substitute(title=html.escape(title), meta=meta, nav=nav, sections=body,
                            version=html.escape(version), description=intro)
