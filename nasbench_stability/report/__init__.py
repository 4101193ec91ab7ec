"""Reports: the analysis tables and figures of a set of runs as one HTML page plus Markdown and LaTeX.

    from nasbench_stability.report import build_report
    files = build_report(["runs/"], "reports/my-study", benchmark=Benchmark.load())
"""

from .build import ReportFiles, build_report
from .tables import Table, latex_escape, to_html, to_latex, to_markdown

__all__ = ["ReportFiles", "build_report", "Table", "latex_escape", "to_html", "to_latex", "to_markdown"]
