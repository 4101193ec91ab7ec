"""One look for every figure: colours keyed by method and op, fonts, and saving by file suffix.

Colours are a pure function of the method name, so a method has the same colour in every figure
of a report, across reports, and in a reader's own plots (``method_color("darts-v2")``). Figures
are built with :class:`matplotlib.figure.Figure` directly (the Agg canvas), never through pyplot's
global state, so plotting is headless, thread-safe and leaks no open figures.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import matplotlib as mpl
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..destinations import ensure_folder, writing
from ..engine.atomic import atomic_path
from ..errors import ConfigError, quote
from ..space.ops import OPS

# Known methods get fixed slots of the colour-blind palette, in the order of the project's papers
# (bi-level DARTS first, then the methods that try to fix it). Unknown names hash into the rest.
KNOWN_METHODS: tuple[str, ...] = (
    "darts-v1", "darts-v2", "single-darts", "mergenas-v1", "mergenas-v2", "edas-inv", "edas",
    "alpha-max", "dnas", "factorized-act", "factorized-kernel", "nonfactorized-act",
    # the stabilizers, then NB201's weight-sharing and table-search baselines
    "darts-minus", "pc-darts", "fair-darts", "sdarts-rs", "sdarts-adv", "drnas", "beta-darts", "darts-es",
    "rdarts-l2", "rdarts-dp", "darts-pt",
    "gdas", "setn", "rsps", "enas", "rs", "rea", "reinforce", "bohb",
)
_BASE = sns.color_palette("colorblind", 10).as_hex()
_EXTRA = sns.color_palette("dark", 10).as_hex()
# colour-blind slots without its grey and yellow (poor as lines on white), then dark tones
# (one distinct colour for every registered method: a figure of any of them never repeats one)
_KNOWN_PALETTE = ([_BASE[i] for i in (0, 1, 2, 3, 4, 5, 6, 9)] + [_EXTRA[i] for i in (0, 3, 4, 9)]
                  + [_EXTRA[i] for i in (1, 2, 5, 6, 8)] + sns.color_palette("muted", 10).as_hex()
                  + [c for c in sns.color_palette("tab20b", 20).as_hex()[::2]])
_HASHED = sns.color_palette("husl", 16).as_hex()

OP_COLORS: dict[str, str] = dict(zip(OPS, ("#9e9e9e", "#d55e00", "#56b4e9", "#0072b2", "#009e73")))
OP_LABELS: dict[str, str] = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv 1×1",
                             "nor_conv_3x3": "conv 3×3", "avg_pool_3x3": "avg pool 3×3"}
OP_SHORT: dict[str, str] = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "1×1",
                           "nor_conv_3x3": "3×3", "avg_pool_3x3": "pool"}

# Bi-level runs are dashed, single-level solid, so the optimization mode reads without the legend.
MODE_STYLES: dict[str, str] = {"bilevel": "--", "single-level-two-batches": "-.", "single-level": "-"}
MODE_LABELS: dict[str, str] = {"bilevel": "bi-level", "single-level-two-batches": "single-level, 2 batches",
                               "single-level": "single-level"}

SUFFIXES = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
PNG_DPI = 200

RC = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6, "lines.linewidth": 1.6,
    "legend.frameon": False, "svg.fonttype": "none", "pdf.fonttype": 42, "figure.dpi": 100,
}


class PlotFormatError(ConfigError):
    """An output file whose suffix names no supported figure format."""


def method_color(method: str) -> str:
    """The colour of ``method`` in every figure (hex)."""
    if method in KNOWN_METHODS:
        return _KNOWN_PALETTE[KNOWN_METHODS.index(method)]
    return _HASHED[zlib.crc32(method.encode()) % len(_HASHED)]


def method_palette(methods: Iterable[str]) -> dict[str, str]:
    return {m: method_color(m) for m in methods}


def op_color(op: str, index: int = 0, count: int = 10) -> str:
    """NB201 ops have fixed colours; other labels (activations, kernels: ``index`` of ``count``) take
    tab10, or evenly spaced husl hues when there are more than 10."""
    if op in OP_COLORS:
        return OP_COLORS[op]
    palette = sns.color_palette("tab10" if count <= 10 else "husl", max(count, 1)).as_hex()
    return palette[index % len(palette)]


@contextmanager
def figure_style() -> Iterator[None]:
    """The project's rc settings, for building one figure."""
    with mpl.rc_context(RC):
        yield


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A pyplot-free figure (Agg canvas) in the project's style; build it inside :func:`figure_style`."""
    fig = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` in the format its suffix names (.png at 200 dpi, .pdf, .svg); no timestamps in
    vector files, so re-rendering the same data gives the same bytes."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise PlotFormatError(f"cannot write a figure as {quote(path.name)}; use a .png, .pdf or .svg file name")
    if path.is_dir():
        raise PlotFormatError(f"cannot write a figure to {path}: it is a folder; give a file name")
    ensure_folder(path.parent, "figure folder")
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
    # into a temporary file renamed over the target: a failed write never leaves half a figure
    with writing(path, "figure"), atomic_path(path) as tmp, figure_style():
        fig.savefig(tmp, format=fmt, dpi=PNG_DPI if fmt == "png" else None, metadata=metadata)
    return path
