"""Option parsing shared by the commands."""

from __future__ import annotations

import math

from ..errors import ConfigError, quote


def parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    """``--set key=value`` pairs as a dict (a pair without ``=`` is a ConfigError)."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {quote(pair)}")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


#: the units --time-budget takes after its number (none: seconds)
TIME_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

TIME_BUDGET_HELP = ("Wall-clock time this command may take, from its start: seconds (3600) or 90m, 2h. Whole epochs "
                    "run while the next is expected to finish within it; then each run is checkpointed and left "
                    "paused, and the command exits 0 saying how far it got (re-run the same command to continue). "
                    "Real time on this machine, unlike the multi-trial methods' time_budget option (simulated "
                    "seconds of the benchmark table).")


def time_budget(text: str | None):
    """``--time-budget`` as a :class:`~..engine.budget.TimeBudget` counted from now (None: no budget). Call it
    first in a command: the budget counts from the command's start, the slow imports and data included."""
    if text is None:
        return None
    from ..engine.budget import TimeBudget

    return TimeBudget.start(parse_time_budget(text))


def parse_time_budget(text: str) -> float:
    """Seconds in ``3600``, ``90m``, ``2h`` or ``45s``; anything else (negative, zero, nan, inf, not a
    number) is a one-line ConfigError."""
    raw = text.strip().lower()
    scale = TIME_UNITS.get(raw[-1:])
    try:
        seconds = float(raw[:-1] if scale else raw) * (scale or 1.0)
    except ValueError:
        raise ConfigError(f"--time-budget takes wall-clock seconds (3600) or minutes or hours (90m, 2h), "
                          f"got {quote(text)}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--time-budget must be a positive, finite wall-clock time, got {quote(text)}")
    return seconds
