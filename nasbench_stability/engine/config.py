"""The resolved, typed description of one run (its size comes from a preset, :mod:`.presets`).

A :class:`RunConfig` is everything that determines a run's records: it is saved in the run
directory, compared on resume, and hashed into ``config_hash``. Equal configs ⇒ same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

import torch

from .. import ranges
from ..errors import ConfigError, quote
from ..methods.options import apply_overrides
from ..methods.registry import get_method
from .presets import PRESETS, default_preset  # noqa: F401  (re-exported: config is where callers look)

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SPLIT_POLICIES = ("auto", "official", "balanced")

# the allowed range of every numeric run setting; None (where the type allows it) is always allowed
RUN_RANGES: dict[str, ranges.Range] = {
    "seed": ranges.SEED, "epochs": ranges.EPOCHS, "batch_size": ranges.BATCH_SIZE, "channels": ranges.CHANNELS,
    "cells_per_stage": ranges.CELLS_PER_STAGE, "data_subset": ranges.DATA_SUBSET,
    "eval_batches": ranges.EVAL_BATCHES, "hessian_every": ranges.HESSIAN_EVERY,
    "hessian_batches": ranges.HESSIAN_BATCHES,
}
_OPTIONAL = {"data_subset", "eval_batches"}   # None = the whole half


@dataclass(frozen=True)
class RunConfig:
    method: str
    dataset: str = "cifar10"
    seed: int = 0
    preset: str = "paper"
    epochs: int = 50
    batch_size: int = 64
    channels: int = 16
    cells_per_stage: int = 5
    data_subset: int | None = None
    eval_batches: int | None = None
    device: str = "cpu"
    amp: bool = False                   # bf16 autocast (CUDA only)
    channels_last: bool = False
    split_policy: str = "auto"          # "auto" | "official" | "balanced"
    hessian_every: int = 0              # spectrum of ∇²α L_valid every N epochs (0 = off)
    hessian_batches: int = 2
    method_options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        # every way to make a RunConfig (CLI, library, a saved config.json) passes here, so an
        # out-of-range value never reaches a run directory
        for name, allowed in RUN_RANGES.items():
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                allowed.check(name, value)
        if self.split_policy not in SPLIT_POLICIES:
            raise ConfigError(f"split_policy={quote(self.split_policy)} is not one of {', '.join(SPLIT_POLICIES)}")
        if self.data_subset is not None and self.batch_size > self.data_subset:
            raise ConfigError(f"batch_size={self.batch_size} is larger than data_subset={self.data_subset} "
                              f"(examples per half): an epoch would have no full batch")

    # ---- identity -----------------------------------------------------------------------------
    @property
    def run_name(self) -> str:
        return f"{self.method}-{self.dataset}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["method_options"] = {k: v for k, v in self.method_options}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        d = dict(d)
        opts = d.pop("method_options", {}) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"config has unknown fields: {', '.join(sorted(unknown))}")
        return cls(**d, method_options=tuple(sorted((k, _freeze(v)) for k, v in opts.items())))

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def options(self):
        """The method's typed options object."""
        info = get_method(self.method)
        return apply_overrides(info.default_options(), dict(self.method_options))

    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but this torch build sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {quote(device)}; use auto, cpu or cuda[:N]")
    return device


def resolve_config(method: str, *, dataset: str = "cifar10", seed: int = 0, preset: str | None = None,
                   device: str = "auto", epochs: int | None = None,
                   overrides: dict[str, str] | None = None) -> RunConfig:
    """Build a RunConfig from CLI-level choices. ``overrides`` are ``--set key=value`` pairs: keys of
    RunConfig or of the method's options (a method option wins when both have the key)."""
    info = get_method(method)
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {quote(dataset)}; known: {', '.join(DATASETS)}")
    if info.table_search:
        return _table_config(info, dataset, seed, preset, epochs, dict(overrides or {}))
    device = resolve_device(device)
    preset_name = preset or default_preset(device)
    if preset_name not in PRESETS:
        raise ConfigError(f"unknown preset {quote(preset_name)}; known: {', '.join(PRESETS)}")
    p = PRESETS[preset_name]
    overrides = dict(overrides or {})

    option_fields = {f.name for f in fields(info.options_cls)}
    method_overrides = {k: v for k, v in overrides.items() if k in option_fields}
    run_overrides = {k: v for k, v in overrides.items() if k not in option_fields}
    if epochs is not None:
        method_overrides["epochs"] = str(epochs)
    options = apply_overrides(info.default_options(), method_overrides)
    if p.epochs is not None and "epochs" not in method_overrides:
        options = dataclasses.replace(options, epochs=p.epochs)

    # one RunConfig from preset + overrides together: checks that relate two settings
    # (batch_size vs data_subset) see the final values, not the preset's
    return RunConfig(**{
        "method": method, "dataset": dataset, "seed": seed, "preset": preset_name, "epochs": options.epochs,
        "batch_size": options.batch_size, "channels": p.channels, "cells_per_stage": p.cells_per_stage,
        "data_subset": p.data_subset, "eval_batches": p.eval_batches, "device": device,
        "method_options": tuple(sorted((f.name, getattr(options, f.name)) for f in fields(options))),
        **_run_overrides(method, device, run_overrides),
    })


#: the preset name a table search's config records: presets size a supernet, a table search has none
TABLE_PRESET = "table"


def _table_config(info, dataset: str, seed: int, preset: str | None, epochs: int | None,
                  overrides: dict[str, str]) -> RunConfig:
    """The RunConfig of a table search: its method options, and ``epochs`` = the records it writes
    (``checkpoints``). Supernet and data settings do not apply, so asking for one is refused."""
    if preset is not None:
        raise ConfigError(f"{info.name} searches the benchmark table: --preset sizes a supernet and does not apply")
    if epochs is not None:
        raise ConfigError(f"{info.name} searches the benchmark table and has no epochs; its budget is "
                          f"--set max_queries=N (see `nbs methods --show {info.name}`)")
    option_fields = {f.name for f in fields(info.options_cls)}
    unknown = sorted(set(overrides) - option_fields)
    if unknown:
        raise ConfigError(f"unknown --set key {quote(unknown[0])} for {info.name}, a table search; its options: "
                          f"{', '.join(sorted(option_fields))}")
    options = apply_overrides(info.default_options(), overrides)
    return RunConfig(method=info.name, dataset=dataset, seed=seed, preset=TABLE_PRESET, epochs=options.checkpoints,
                     method_options=tuple(sorted((f.name, getattr(options, f.name)) for f in fields(options))))


_LOCKED = {"method", "dataset", "seed", "preset", "method_options", "epochs", "batch_size", "device"}


def _run_overrides(method: str, device: str, overrides: dict[str, str]) -> dict[str, Any]:
    hints = get_type_hints(RunConfig)
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in hints or key in _LOCKED:
            settable = sorted(set(hints) - _LOCKED)
            raise ConfigError(f"unknown --set key {quote(key)}; run keys: {', '.join(settable)}, or a method "
                              f"option (see `nbs methods --show {method}`)")
        changes[key] = _parse_value(raw, hints[key], key)
    if changes.get("amp") and not device.startswith("cuda"):
        raise ConfigError("amp (bf16 autocast) is for CUDA runs; drop --set amp=true on CPU")
    return changes


def _parse_value(raw: str, hint: Any, key: str) -> Any:
    text = str(raw).strip()
    if text.lower() in ("none", "null") and "None" in str(hint):
        return None
    if hint is bool or hint == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {key}: expected true/false, got {quote(raw)}")
    kind = int if "int" in str(hint) else float if "float" in str(hint) else str
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"--set {key}: expected {kind.__name__}, got {quote(raw)}") from None
