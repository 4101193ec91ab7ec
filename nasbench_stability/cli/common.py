"""Option parsing shared by the commands."""

from __future__ import annotations

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
