"""Human-readable report of one cell's ground truth (what ``nbs query ARCH`` prints).

Every number is shown with whether it is exact or approximate and a footnote naming its source,
so nobody reads NASLib's single-run validation accuracy as the official 3-seed mean.
"""

from __future__ import annotations

import math

from .columns import FLOPS_COLUMN, PARAMS_COLUMN, ColumnSpec
from .table import Benchmark, Cell

_COST_LABELS = {PARAMS_COLUMN: "params (M)", FLOPS_COLUMN: "FLOPs (M)"}
_COST_DIGITS = {PARAMS_COLUMN: 4, FLOPS_COLUMN: 2}


def format_cell_report(bench: Benchmark, cell: Cell) -> str:
    """All known metrics of ``cell`` (any form ``Benchmark.lookup`` accepts) as aligned text."""
    row = bench.lookup_one(cell)
    genotype = bench.genotype_at(row["index"])
    isomorphs = len(bench.by_canonical_key(row["canonical_key"]))
    lines = [
        row["arch"],
        f"  NB201 index {row['index']}   NASLib tuple {genotype.to_naslib()}   "
        f"parameter-free edges {genotype.param_free_count}/6",
        f"  isomorphism key {row['canonical_key']} "
        + ("(no other cell shares it)" if isomorphs == 1 else f"(shared by {isomorphs} cells)"),
    ]
    footnotes: dict[tuple[str, str], int] = {}
    table: list[tuple[str, str, str, str]] = []
    for spec in bench.columns:
        ref = footnotes.setdefault((spec.source, spec.note), len(footnotes) + 1)
        table.append((_label(spec), _value(spec, row[spec.name]), spec.exactness, f"[{ref}]"))
    widths = [max(len(r[k]) for r in table) for k in range(3)]
    lines.append("")
    for label, value, trust, ref in table:
        lines.append(f"  {label:<{widths[0]}}  {value:>{widths[1]}}  {trust:<{widths[2]}}  {ref}")
    lines.append("")
    for (source, note), ref in footnotes.items():
        lines.append(f"  [{ref}] {source}" + (f" — {note}" if note else ""))
    return "\n".join(lines)


def _label(spec: ColumnSpec) -> str:
    if spec.is_accuracy:
        return f"{spec.dataset} {spec.split} acc. (%) @{spec.epochs} ep"
    return f"{_COST_LABELS.get(spec.name, spec.name)}, {spec.dataset} net"


def _value(spec: ColumnSpec, value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{2 if spec.is_accuracy else _COST_DIGITS.get(spec.name, 3)}f}"
