"""Text for `nbs methods`: one line per method, or one method's options with their sources."""

from __future__ import annotations

from .options import describe
from .registry import get_method, list_methods


def list_lines() -> str:
    methods = list_methods()
    width = max(len(m.name) for m in methods)
    lines = [f"{m.name:<{width}}  {m.summary}" for m in methods]
    return "\n".join(lines) + "\n\n`nbs methods --show NAME` prints defaults and their sources."


def describe_method(name: str) -> str:
    info = get_method(name)
    rows = describe(info.options_cls)
    out = [f"{info.name}: {info.summary}", f"paper: {info.paper}", "", "options (default · source · meaning):"]
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        allowed = f" [{' | '.join(map(str, r['choices']))}]" if r["choices"] else ""
        if r["bounds"] is not None:
            allowed += f" [{r['bounds'].describe(r['name'])}]"
        out.append(f"  {r['name']:<{w}} = {r['default']!s:<12} · {r['source']:<15} · {r['doc']}{allowed}")
    if info.departures:
        out += ["", "departures from the paper:"] + [f"  - {d}" for d in info.departures]
    out += ["", f"override with: nbs run --method {name} --set KEY=VALUE"]
    return "\n".join(out)
