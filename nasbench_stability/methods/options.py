"""Typed method options whose every default carries its source (paper / NB201 reference / our choice)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from ..errors import ConfigError, quote
from ..ranges import Range

PAPER = "paper"
NB201 = "NB201 reference"
OURS = "our choice"


def reference(path: str) -> str:
    """A default read off a reference file, e.g. ``reference("xautodl exps/NAS-Bench-201-algos/DARTS-V1.py")``."""
    return f"{NB201}: {path}"


# the files of D-X-Y/AutoDL-Projects (xautodl) that NB201 defaults are read from
XAUTODL_V1 = reference("AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V1.py")
XAUTODL_V2 = reference("AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V2.py")
XAUTODL_LR = reference("AutoDL-Projects xautodl/procedures/optimizers.py (CosineAnnealingLR)")
XAUTODL_CONFIG = reference("AutoDL-Projects configs/nas-benchmark/algos/DARTS.config")
XAUTODL_SH = reference("AutoDL-Projects scripts-search/NAS-Bench-201-algos/DARTS-V1.sh")
XAUTODL_NET = reference("AutoDL-Projects xautodl/models/cell_searchs/search_model_darts.py")
XAUTODL_BN = reference("AutoDL-Projects docs/NAS-Bench-201.md (`DARTS-V1.sh cifar10 1 -1`: BN=1)")
# the original DARTS search code, which the papers that say "as in DARTS" build on
DARTS_CODE = "DARTS code: quark0/darts cnn/train_search.py"
# a value a seed paper states for its ablations, not for its main setting
SINGLE_DARTS_ABLATION = "paper 001 (Single-DARTS) §5.3: SGD with momentum 0.9"


def option(default: Any, source: str, doc: str, choices: tuple | None = None, *,
           bounds: Range | None = None) -> Any:
    """A dataclass field with its provenance; ``nbs methods --show`` prints ``source``, ``doc`` and
    the allowed values (``choices``, or the numeric range ``bounds``, see :mod:`..ranges`)."""
    meta = {"source": source, "doc": doc, "choices": choices, "bounds": bounds}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable")
    return field(default=default, metadata=meta)


def restate(base: type, name: str, default: Any, source: str) -> Any:
    """``base``'s option ``name`` with another default or source (a method whose authors' file sets it): its
    doc, choices and bounds stay ``base``'s, so they cannot drift apart between the two declarations."""
    meta = next(f.metadata for f in fields(base) if f.name == name)
    return option(default, source, meta["doc"], meta["choices"], bounds=meta["bounds"])


def describe(options_cls: type) -> list[dict[str, Any]]:
    """One row per option: name, default, source, doc, choices, bounds."""
    rows = []
    for f in fields(options_cls):
        rows.append({"name": f.name, "default": f.default, "source": f.metadata.get("source", OURS),
                     "doc": f.metadata.get("doc", ""), "choices": f.metadata.get("choices"),
                     "bounds": f.metadata.get("bounds")})
    return rows


def check_options(options: Any) -> Any:
    """``options`` itself if every field is inside its declared choices and range; else ConfigError."""
    for f in fields(options):
        _check_value(f, getattr(options, f.name))
    return options


def _check_value(f: dataclasses.Field, value: Any) -> None:
    choices, bounds = f.metadata.get("choices"), f.metadata.get("bounds")
    if choices and value not in choices:
        raise ConfigError(f"option {f.name}={quote(value)} is not one of {', '.join(map(str, choices))}")
    if bounds is not None:
        bounds.check(f.name, value, what="option ")


def _coerce(value: str, target: type, name: str) -> Any:
    if target is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option {name}: expected a boolean, got {quote(value)}")
    if target in (int, float, str):
        try:
            return target(value)
        except ValueError:
            raise ConfigError(f"option {name}: expected {target.__name__}, got {quote(value)}") from None
    if getattr(target, "__origin__", None) is tuple or target is tuple:
        try:
            return tuple(float(v) for v in value.strip("()[] ").split(","))
        except ValueError:
            raise ConfigError(f"option {name}: expected a comma-separated tuple, got {quote(value)}") from None
    return value


def apply_overrides(options: Any, overrides: dict[str, Any]) -> Any:
    """Return ``options`` with ``overrides`` applied; strings are converted to the field's type."""
    hints = get_type_hints(type(options))
    by_name = {f.name: f for f in fields(options)}
    changes = {}
    for key, value in overrides.items():
        if key not in by_name:
            raise ConfigError(f"unknown option {quote(key)} for {type(options).__name__}; "
                              f"known: {', '.join(by_name)}")
        converted = _coerce(value, hints[key], key) if isinstance(value, str) else value
        _check_value(by_name[key], converted)
        changes[key] = converted
    # the defaults as well as the overrides: no out-of-range options object leaves here
    return check_options(dataclasses.replace(options, **changes))


def option_names(options_cls: type) -> set[str]:
    return {f.name for f in fields(options_cls)}


__all__ = ["PAPER", "NB201", "OURS", "reference", "XAUTODL_V1", "XAUTODL_V2", "XAUTODL_LR", "XAUTODL_BN",
           "XAUTODL_CONFIG", "XAUTODL_SH", "XAUTODL_NET", "DARTS_CODE", "option", "restate", "describe",
           "apply_overrides", "check_options", "option_names", "dataclass", "Range"]
