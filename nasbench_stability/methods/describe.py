"""Text for `nbs methods`: one line per method, or one method's options with their sources."""

from __future__ import annotations

from .options import describe
from .registry import get_method, list_methods


def list_lines() -> str:
    methods = list_methods()
    width = max(len(m.name) for m in methods)
    lines = [f"{m.name:<{width}}  {_mark(m)}{m.summary}" for m in methods]
    return ("\n".join(lines) + "\n\ns = runs its seeds solo (`nbs methods --show NAME` says why); t = searches the "
            "benchmark table (no supernet, no dataset); the others pack seeds into one model on CUDA.\n"
            "`nbs methods --show NAME` prints defaults and their sources.")


def _mark(info) -> str:
    return "t " if info.table_search else "  " if info.packable else "s "


def step_line(options) -> str | None:
    """One step of a method with these options, in words (the order references differ on)."""
    mode = getattr(options, "mode", None)
    if mode is None:
        return None
    if mode == "single-level":
        return "one forward/backward on one train batch gives ∇w and ∇α; both optimizers step"
    weight = "weight step on a train batch"
    arch = (f"α step on {'a valid' if mode == 'bilevel' else 'a second train'} batch"
            + (" (unrolled, second order)" if getattr(options, "order", 1) == 2 else ""))
    if getattr(options, "step_order", "alpha-w") == "w-alpha":
        return f"{weight}, then {arch} at the updated weights"
    return f"{arch}, then {weight}"


def describe_method(name: str) -> str:
    info = get_method(name)
    rows = describe(info.options_cls)
    out = [f"{info.name}: {info.summary}", f"paper: {info.paper}"]
    step = step_line(info.default_options()) or getattr(info.factory, "step_text", None)
    if step:
        out.append(f"one step: {step}")
    out.append(info.packing_line())
    out += ["", "options (name = default · source · meaning [allowed]):"]
    assigned = [f"{r['name']} = {r['default']!s}" for r in rows]
    w = max(len(a) for a in assigned)
    for a, r in zip(assigned, rows):
        allowed = f" [{' | '.join(map(str, r['choices']))}]" if r["choices"] else ""
        if r["bounds"] is not None:
            allowed += f" [{r['bounds'].describe(r['name'])}]"
        out.append(f"  {a:<{w}} · {r['source']} · {r['doc']}{allowed}")
    if info.departures:
        out += ["", "departures from the paper:"] + [f"  - {d}" for d in info.departures]
    out += ["", f"override with: nbs run --method {name} --set KEY=VALUE"]
    return "\n".join(out)
