"""Typed method options whose every default carries its source (paper / NB201 reference / our choice)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from ..errors import ConfigError

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


def option(default: Any, source: str, doc: str, choices: tuple | None = None) -> Any:
    """A dataclass field with its provenance; ``nbs methods --show`` prints ``source`` and ``doc``."""
    meta = {"source": source, "doc": doc, "choices": choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable")
    return field(default=default, metadata=meta)


def describe(options_cls: type) -> list[dict[str, Any]]:
    """One row per option: name, default, source, doc, choices."""
    rows = []
    for f in fields(options_cls):
        rows.append({"name": f.name, "default": f.default, "source": f.metadata.get("source", OURS),
                     "doc": f.metadata.get("doc", ""), "choices": f.metadata.get("choices")})
    return rows


def _coerce(value: str, target: type, name: str) -> Any:
    if target is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option {name}: expected a boolean, got {value!r}")
    if target in (int, float, str):
        try:
            return target(value)
        except ValueError:
            raise ConfigError(f"option {name}: expected {target.__name__}, got {value!r}") from None
    if getattr(target, "__origin__", None) is tuple or target is tuple:
        try:
            return tuple(float(v) for v in value.strip("()[] ").split(","))
        except ValueError:
            raise ConfigError(f"option {name}: expected a comma-separated tuple, got {value!r}") from None
    return value


def apply_overrides(options: Any, overrides: dict[str, Any]) -> Any:
    """Return ``options`` with ``overrides`` applied; strings are converted to the field's type."""
    hints = get_type_hints(type(options))
    by_name = {f.name: f for f in fields(options)}
    changes = {}
    for key, value in overrides.items():
        if key not in by_name:
            raise ConfigError(f"unknown option {key!r} for {type(options).__name__}; known: {', '.join(by_name)}")
        converted = _coerce(value, hints[key], key) if isinstance(value, str) else value
        choices = by_name[key].metadata.get("choices")
        if choices and converted not in choices:
            raise ConfigError(f"option {key}={converted!r} is not one of {', '.join(map(str, choices))}")
        changes[key] = converted
    return dataclasses.replace(options, **changes)


def option_names(options_cls: type) -> set[str]:
    return {f.name for f in fields(options_cls)}


__all__ = ["PAPER", "NB201", "OURS", "reference", "XAUTODL_V1", "XAUTODL_V2", "XAUTODL_LR", "XAUTODL_BN", "XAUTODL_CONFIG", "XAUTODL_SH", "XAUTODL_NET", "DARTS_CODE", "option", "describe", "apply_overrides", "option_names", "dataclass"]
