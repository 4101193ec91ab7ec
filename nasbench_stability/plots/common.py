"""Drawing pieces shared by the figures: interval or ± std bands, method legends, figure-level checks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import ConfigError, NbsError, quote
from .style import MODE_LABELS, MODE_STYLES, method_color

EPOCH_LABEL = "search epoch"


class NothingToPlotError(NbsError):
    """The records hold no values for the figure asked for."""


def methods_in(df: pd.DataFrame) -> list[str]:
    return sorted(df["method"].astype(str).unique())


def mode_of(df: pd.DataFrame, method: str) -> str | None:
    """The optimization mode of a method's runs (None if unrecorded or mixed)."""
    if "mode" not in df:
        return None
    modes = df.loc[df["method"] == method, "mode"].dropna().unique()
    return str(modes[0]) if len(modes) == 1 else None


def method_label(df: pd.DataFrame, method: str, with_mode: bool = False) -> str:
    """``darts-v1 (n=2)``, optionally with the optimization mode."""
    runs = df.loc[df["method"] == method, "run_dir" if "run_dir" in df else "run"].nunique()
    mode = mode_of(df, method) if with_mode else None
    extra = f", {MODE_LABELS.get(mode, mode)}" if mode else ""
    return f"{method} (n={runs}{extra})"


BANDS = ("ci", "std")
BAND_WORDS = {"ci": "band: 95% interval of the mean", "std": "band: ± 1 std"}


def check_band(kind: str) -> None:
    """ConfigError (one line) unless ``kind`` is one of :data:`BANDS`."""
    if kind not in BANDS:
        raise ConfigError(f"unknown band {quote(kind)}; known: {', '.join(BANDS)}")


def band(ax: Axes, curve: pd.DataFrame, *, color: str, label: str | None = None, linestyle: str = "-",
         marker: str | None = None, alpha: float = 0.18, kind: str = "ci") -> Line2D:
    """The mean line of an :func:`epoch_curves` frame and, where ≥ 2 seeds, a band: ``kind="ci"`` its
    95% interval (``ci_low``/``ci_high``), ``kind="std"`` ±1 sample std."""
    check_band(kind)
    x = curve["epoch"].to_numpy(dtype=float)
    mean = curve["mean"].to_numpy(dtype=float)
    (line,) = ax.plot(x, mean, color=color, label=label, linestyle=linestyle, marker=marker,
                      markersize=3.5 if marker else None)
    if kind == "ci":
        low, high = curve["ci_low"].to_numpy(dtype=float), curve["ci_high"].to_numpy(dtype=float)
        has = np.isfinite(low) & np.isfinite(high)
        low, high = np.where(has, low, mean), np.where(has, high, mean)   # one seed: no interval, no band
    else:
        std = np.nan_to_num(curve["std"].to_numpy(dtype=float))
        low, high = mean - std, mean + std
    if (curve["n"] > 1).any():
        ax.fill_between(x, low, high, color=color, alpha=alpha, linewidth=0)
    return line


def method_style(df: pd.DataFrame, method: str) -> dict:
    """Colour by method, line style by optimization mode (bi-level dashed, single-level solid)."""
    return {"color": method_color(method), "linestyle": MODE_STYLES.get(mode_of(df, method) or "", "-")}


def integer_epochs(ax: Axes) -> None:
    ax.xaxis.get_major_locator().set_params(integer=True)


def figure_legend(fig: Figure, handles: Sequence, labels: Sequence[str], ncol: int | None = None) -> None:
    """One legend for the whole figure, below the axes."""
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(labels), 4))


def has_values(series: pd.Series) -> bool:
    """Whether a scalar or array column holds at least one finite number."""
    if series.dtype == object:
        return bool(series.map(lambda v: v is not None and bool(np.isfinite(np.asarray(v, dtype=float)).any())).any())
    return bool(np.isfinite(pd.to_numeric(series, errors="coerce").astype(float)).any())


def require_values(df: pd.DataFrame, column: str, what: str, hint: str = "") -> None:
    """Raise :class:`NothingToPlotError` unless ``column`` holds some finite value."""
    if column not in df or not has_values(df[column]):
        raise NothingToPlotError(f"no {what} in these records ({quote(column)})" + (f"; {hint}" if hint else ""))
