"""A study file: the grid of a stability study in TOML, parsed into a typed :class:`Study`.

```toml
name = "smoke"               # optional; default: the file's name without .toml
preset = "smoke"             # optional; default: the device's (paper on CUDA, cpu on CPU)
device = "cpu"               # optional; default "auto"
epochs = 2                   # optional; default: the preset's / method's
seeds = 2                    # a count (seeds 0..K-1) or a list [0, 3, 7]; default 1
datasets = ["cifar10"]       # or one name; default cifar10
pack = false                 # optional; default: packed seeds on CUDA for methods that pack

[set]                        # `--set` values for every method: a value, or a list = one grid axis
data_subset = 16
lr = [0.025, 0.05]

[methods.darts-v1]           # a method, with its own grid (overrides [set] on the same key)
mode = ["bilevel", "single-level"]

[methods.single-darts]       # a method at its defaults (or: methods = ["darts-v1", "single-darts"])

[methods.darts-v2]           # `seeds` in a method's table: its own seeds (a count or a list), not an axis
seeds = 3
```

Every mistake is a :class:`ConfigError` of one line that names the file and the key. Each grid value
is checked here against its method (a value that no method accepts fails before anything runs); the
combinations are checked when the grid is expanded (:mod:`.expand`).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import ranges
from ..errors import ConfigError, MissingFileError, NbsError, quote
from ..engine.config import DATASETS, PRESETS, resolve_config, resolve_device
from ..methods.registry import get_method

#: --seeds K makes K configs per grid point up front; more is a typo (as `nbs run --seeds`)
MAX_SEEDS = 10_000
#: the most runs one study may expand to (methods × grid points × datasets × seeds). Every run is a
#: resolved config in memory and a line of --dry-run (about 1 ms each: 10,000 take seconds, a million
#: took minutes and GBs), and 10,000 runs are days of work even at the smoke preset; a larger grid is
#: a typo, or several studies. Checked from the axes' lengths, before anything is expanded.
MAX_RUNS = 10_000
TOP_KEYS = ("name", "preset", "device", "epochs", "seeds", "datasets", "pack", "set", "methods")

Grid = tuple[tuple[str, tuple[str, ...]], ...]   # (key, values as `--set` strings), in file order


@dataclass(frozen=True)
class MethodGrid:
    name: str
    grid: Grid = ()          # this method's own option axes; a key here replaces the same key of [set]
    seeds: tuple[int, ...] | None = None   # this method's own seeds; None: the study's


@dataclass(frozen=True)
class Study:
    """A parsed, checked study file. Defaults are those of `nbs run`."""

    path: Path
    name: str
    methods: tuple[MethodGrid, ...]
    seeds: tuple[int, ...] = (0,)
    datasets: tuple[str, ...] = ("cifar10",)
    preset: str | None = None     # None: the device's default preset
    device: str = "auto"
    epochs: int | None = None     # None: the preset's / method's epochs
    pack: bool | None = None      # None: packed seeds on CUDA for methods that pack
    grid: Grid = ()               # the shared [set] axes

    def method_grid(self, method: MethodGrid) -> Grid:
        """The axes of one method: [set]'s, with the method's own replacing the same keys."""
        own = dict(method.grid)
        return tuple((k, v) for k, v in self.grid if k not in own) + method.grid

    def method_seeds(self, method: MethodGrid) -> tuple[int, ...]:
        return method.seeds if method.seeds is not None else self.seeds

    def grid_points(self, method: MethodGrid) -> int:
        """How many grid points ``method`` has: the product of its axes' lengths (nothing expanded)."""
        return math.prod(len(values) for _, values in self.method_grid(method))

    def method_runs(self, method: MethodGrid) -> int:
        return self.grid_points(method) * len(self.datasets) * len(self.method_seeds(method))

    def run_count(self) -> int:
        """How many runs the study expands to, from the axes' lengths alone."""
        return sum(self.method_runs(m) for m in self.methods)


def load_study(path: Path) -> Study:
    """Read and check ``path``; ConfigError (MissingFileError) of one line naming the file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(f"study file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"study file {path} is a folder, not a TOML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read study file {path}: {getattr(err, 'strerror', None) or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    return _StudyReader(path, raw).study()


class _StudyReader:
    """Checks one parsed file key by key; every message starts with the file and the key."""

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path, self.raw = path, raw

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def study(self) -> Study:
        unknown = [k for k in self.raw if k not in TOP_KEYS]
        if unknown:
            raise self.fail(unknown[0], f"unknown key; a study file has {', '.join(TOP_KEYS)}")
        study = Study(
            path=self.path, name=self._name(), methods=self._methods(), seeds=self._seeds(),
            datasets=self._strings("datasets", ("cifar10",)), preset=self._optional("preset", str),
            device=self._optional("device", str) or "auto", epochs=self._epochs(),
            pack=self._optional("pack", bool), grid=self._grid("set", self.raw.get("set", {})))
        self._check_size(study)   # before any config is resolved: a huge grid is refused at once
        self._check_pack(study)
        self._check_values(study)
        return study

    def _check_size(self, study: Study) -> None:
        runs = study.run_count()
        if runs <= MAX_RUNS:
            return
        biggest = max(study.methods, key=study.method_runs)
        axes = " × ".join(str(len(v)) for _, v in study.method_grid(biggest)) or "1"
        seeds, datasets = len(study.method_seeds(biggest)), len(study.datasets)
        raise self.fail(f"methods.{biggest.name}",
                        f"the study expands to {runs:,} runs, more than the {MAX_RUNS:,} a study may have "
                        f"({biggest.name}: {axes} grid points × {seeds} seed{'s' * (seeds != 1)} × {datasets} "
                        f"dataset{'s' * (datasets != 1)} = {study.method_runs(biggest):,} runs); thin an axis or "
                        f"split the study into several files")

    def _check_pack(self, study: Study) -> None:
        """``pack = true`` asks every method to pack: one that cannot is this file's mistake (the engine's
        own message names the `nbs run --pack` option, not the file and key)."""
        if not study.pack:
            return
        for method in study.methods:
            info = get_method(method.name)
            if not info.packable:
                raise self.fail("pack", f"{info.name} does not pack: {info.solo_reason}; leave pack out (the "
                                        f"default packs the methods that can, on CUDA) or set pack = false")

    # ---- scalars ----------------------------------------------------------------------------------
    def _optional(self, key: str, kind: type) -> Any:
        value = self.raw.get(key)
        if value is not None and (type(value) is not kind):
            raise self.fail(key, f"expected {_kind(kind)}, got {_describe(value)}")
        return value

    def _name(self) -> str:
        name = self._optional("name", str) or self.path.stem
        if not name.strip() or "/" in name or name in (".", ".."):
            raise self.fail("name", f"{quote(name)} cannot name a folder (the default --out is sweeps/NAME)")
        return name

    def _epochs(self) -> int | None:
        epochs = self._optional("epochs", int)
        if epochs is not None:
            self._checked("epochs", lambda: ranges.EPOCHS.check("epochs", epochs))
        return epochs

    def _seeds(self, seeds: Any = 1, key: str = "seeds") -> tuple[int, ...]:
        seeds = self.raw.get("seeds", 1) if key == "seeds" else seeds
        if type(seeds) is int:
            if not 1 <= seeds <= MAX_SEEDS:
                raise self.fail(key, f"a count must be between 1 and {MAX_SEEDS:,}, got {seeds}")
            return tuple(range(seeds))
        if not isinstance(seeds, list) or not seeds or any(type(s) is not int for s in seeds):
            raise self.fail(key, f"expected a count or a non-empty list of integers, got {_describe(seeds)}")
        for s in seeds:
            self._checked(key, lambda: ranges.SEED.check("seed", s))
        self._no_repeats(key, seeds)
        return tuple(seeds)

    def _strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw.get(key, list(default))
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or any(not isinstance(v, str) for v in values):
            raise self.fail(key, f"expected a name or a non-empty list of names, got {_describe(value)}")
        self._no_repeats(key, values)
        return tuple(values)

    # ---- methods and grids ------------------------------------------------------------------------
    def _methods(self) -> tuple[MethodGrid, ...]:
        if "methods" not in self.raw:
            raise self.fail("methods", "missing; name the methods as a list or as [methods.NAME] tables")
        methods = self.raw["methods"]
        if isinstance(methods, list):
            if not methods or any(not isinstance(m, str) for m in methods):
                raise self.fail("methods", f"expected a non-empty list of method names, got {_describe(methods)}")
            self._no_repeats("methods", methods)
            methods = {m: {} for m in methods}
        if not isinstance(methods, dict) or not methods:
            raise self.fail("methods", f"expected a list of names or [methods.NAME] tables, got {_describe(methods)}")
        out = []
        for name, grid in methods.items():
            self._checked(f"methods.{name}", lambda: get_method(name))
            seeds = None
            if isinstance(grid, dict) and "seeds" in grid:
                grid = dict(grid)
                seeds = self._seeds(grid.pop("seeds"), f"methods.{name}.seeds")
            out.append(MethodGrid(name, self._grid(f"methods.{name}", grid), seeds))
        return tuple(out)

    def _grid(self, table: str, grid: Any) -> Grid:
        if not isinstance(grid, dict):
            raise self.fail(table, f"expected a table of KEY = value or [values], got {_describe(grid)}")
        axes = []
        for key, value in grid.items():
            values = value if isinstance(value, list) else [value]
            if not values:
                raise self.fail(f"{table}.{key}", "an empty list leaves no runs; give at least one value")
            bad = next((v for v in values if not isinstance(v, (str, int, float, bool))), None)
            if bad is not None:
                raise self.fail(f"{table}.{key}", f"a value must be a string, number or boolean, got {_describe(bad)}")
            texts = [_as_text(v) for v in values]
            self._no_repeats(f"{table}.{key}", texts)
            axes.append((key, tuple(texts)))
        return tuple(axes)

    def _check_values(self, study: Study) -> None:
        """The study-wide settings, then every axis value against every method it applies to, with the
        other axes at their first values (a resolved config each, no run)."""
        self._checked("device", lambda: resolve_device(study.device))
        if study.preset is not None and study.preset not in PRESETS:
            raise self.fail("preset", f"unknown preset {quote(study.preset)}; known: {', '.join(PRESETS)}")
        for dataset in study.datasets:
            if dataset not in DATASETS:
                raise self.fail("datasets", f"unknown dataset {quote(dataset)}; known: {', '.join(DATASETS)}")
        for method in study.methods:
            axes = study.method_grid(method)
            own = dict(method.grid)
            first = {k: v[0] for k, v in axes}   # each axis's first value: the point each value is tried at
            self._check_point(study, method, first)
            for key, values in axes:
                table = f"methods.{method.name}" if key in own else "set"
                for value in values[1:]:
                    point = {**first, key: value}
                    self._checked(f"{table}.{key}", lambda: self._resolve(study, method, point),
                                  f" (for {method.name})" if table == "set" else "")

    def _check_point(self, study: Study, method: MethodGrid, point: dict[str, str]) -> None:
        """ConfigError naming the key to blame if ``point`` does not resolve: the first key without
        which it does (an unknown key, a value that clashes with the others), else the method."""
        try:
            self._resolve(study, method, point)
            return
        except NbsError as err:
            problem = err
        for key in point:
            try:
                self._resolve(study, method, {k: v for k, v in point.items() if k != key})
            except NbsError:
                continue
            table = f"methods.{method.name}" if key in dict(method.grid) else "set"
            raise self.fail(f"{table}.{key}", f"{problem}" + (f" (for {method.name})" if table == "set" else ""))
        raise self.fail(f"methods.{method.name}", f"{problem}"
                        + (f" (at {', '.join(f'{k}={v}' for k, v in point.items())})" if point else ""))

    # ---- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _resolve(study: Study, method: MethodGrid, point: dict[str, str]):
        """The config of ``point`` for the study's first dataset and seed (the others differ in name only)."""
        return resolve_run(study, method.name, study.datasets[0], study.method_seeds(method)[0], point)

    def _checked(self, key: str, check, note: str = "") -> Any:
        try:
            return check()
        except NbsError as err:
            raise self.fail(key, f"{err}{note}") from None

    def _no_repeats(self, key: str, values: list) -> None:
        seen = set()
        for v in values:
            if v in seen:
                raise self.fail(key, f"{quote(v)} is listed twice")
            seen.add(v)


def resolve_run(study: Study, method: str, dataset: str, seed: int, overrides: dict[str, str]):
    """The RunConfig of one grid point (what `nbs run` resolves for the same options). A table search
    has no supernet, so the study's preset and epochs do not apply to it."""
    table = get_method(method).table_search
    return resolve_config(method, dataset=dataset, seed=seed, preset=None if table else study.preset,
                          device=study.device, epochs=None if table else study.epochs, overrides=overrides)


def _as_text(value: str | int | float | bool) -> str:
    """A TOML value as `--set` would spell it (true/false, not Python's True/False)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def _kind(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false"}.get(kind, kind.__name__)


def _describe(value: Any) -> str:
    kind = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list",
            dict: "table"}.get(type(value), type(value).__name__)
    return f"{kind} {quote(value)}"
