"""The one registry of search methods. A method module registers itself with ``@register``.

``nbs methods`` and the engine only ever go through :func:`get_method` / :func:`list_methods`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError, quote


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str           # one line for `nbs methods`
    paper: str             # where it comes from
    options_cls: type      # a frozen dataclass of options with documented defaults
    factory: Callable      # (options, context) -> SearchMethod
    departures: tuple[str, ...] = ()  # where nbs differs from the paper, and why

    def default_options(self):
        return self.options_cls()

    @property
    def packable(self) -> bool:
        """Whether K seeds run as one packed model (the factory is the method's class)."""
        return bool(getattr(self.factory, "packable", False))

    @property
    def solo_reason(self) -> str:
        return getattr(self.factory, "solo_reason", "")

    @property
    def needs_hessian(self) -> bool:
        """Whether the method measures the α-Hessian itself every epoch (DARTS-ES stops on it)."""
        return bool(getattr(self.factory, "needs_hessian", False))

    @property
    def table_search(self) -> bool:
        """Whether the method searches the benchmark table (no supernet, no data: :mod:`.multitrial`)."""
        return bool(getattr(self.factory, "table_search", False))

    def packing_line(self) -> str:
        if self.table_search:
            return ("seeds: run one after another; a seed queries the benchmark table (no supernet, no dataset) "
                    "and takes well under a second")
        if self.packable:
            return ("seeds: packed on CUDA (one model with stacked parameters; each seed's results equal its solo "
                    "run's to fp32 rounding, not bitwise: grouped kernels sum in another order; --no-pack runs "
                    "them one by one)")
        return f"seeds: run solo, one after another ({self.solo_reason})"


_REGISTRY: dict[str, MethodInfo] = {}
_LOADED = False


def register(name: str, *, summary: str, paper: str, options: type, departures: tuple[str, ...] = (),
             factory: Callable | None = None):
    """Class decorator (or call with ``factory=``) adding a method variant under ``name``."""

    def add(target):
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} registered twice")
        _REGISTRY[name] = MethodInfo(name, summary, paper, options, factory or target, departures)
        return target

    if factory is not None:
        add(factory)
        return factory
    return add


def _load_all() -> None:
    """Import every module of this package and its subpackages once so that their ``@register`` calls run."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    _import_modules(__package__)


def _import_modules(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for mod in pkgutil.iter_modules(package.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{package_name}.{mod.name}")
            if mod.ispkg:
                _import_modules(f"{package_name}.{mod.name}")


def list_methods() -> list[MethodInfo]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_method(name: str) -> MethodInfo:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown method {quote(name)}; known: {', '.join(sorted(_REGISTRY))}") from None
