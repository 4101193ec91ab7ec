"""Per-epoch TensorBoard event files under ``<run>/tensorboard/`` (``tensorboard --logdir runs/``).

The global step is the record's epoch (1-based). Scalars: every finite numeric column of the record
(benchmark accuracies, supernet losses and accuracies, gradient correlation, Hessian eigenvalues,
learning rates, timing, method extras), grouped by tag prefix; NaN (an epoch without a Hessian
measurement) is left out. α: one image (edges × ops, each edge scaled to its largest weight, so the
brightest cell of a row is that edge's leading op) and one histogram per edge. The Hessian spectrum,
when measured, is a histogram.

A resumed run writes a new event file that starts with a purge at its first epoch (``purge_step``):
TensorBoard's reader then drops what a killed run logged after its last checkpoint, so each epoch
shows once, with the value its record holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..destinations import WriteError, reason
from ..space.ops import EDGES, NUM_OPS

#: record columns that identify a run or an epoch: not curves
IDENTITY = frozenset({"seed", "epoch", "epochs", "bench_index", "pack_size", "best_query", "budget_total"})
#: (column prefix, tag group): bench_cifar10_test_200 -> bench/cifar10_test_200
PREFIX_GROUPS = (("bench_", "bench/"), ("hessian_", "hessian/"), ("gc_", "gradient_correlation/"))
SUPERNET = frozenset({"train_loss", "valid_loss", "train_acc", "valid_acc"})
PIXELS = 16   # an α cell's side in the image: a 6×5 image is too small to see


def scalar_tag(column: str) -> str:
    for prefix, group in PREFIX_GROUPS:
        if column.startswith(prefix):
            return group + column[len(prefix):]
    return ("supernet/" if column in SUPERNET else "search/") + column


def edge_tag(edge: int) -> str:
    a, b = EDGES[edge]
    return f"alpha/edge_{a}to{b}"


def record_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """Tag -> value of every finite numeric scalar of ``record`` that is not an identity column."""
    out = {}
    for column, value in record.items():
        if column in IDENTITY or isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            continue
        if math.isfinite(value):
            out[scalar_tag(column)] = float(value)
    return out


def alpha_image(weights: np.ndarray) -> np.ndarray:
    """(edges·PIXELS, ops·PIXELS) in [0, 1]: each edge's weights over its largest (zeros stay black)."""
    w = np.clip(np.nan_to_num(weights.reshape(len(EDGES), NUM_OPS)), 0.0, None)
    top = w.max(axis=1, keepdims=True)
    scaled = np.divide(w, top, out=np.zeros_like(w), where=top > 0)
    return np.kron(scaled, np.ones((PIXELS, PIXELS)))


class TensorBoardLog:
    """:class:`~.epoch_log.EpochLog` to TensorBoard; the writer (and its folder) appear with the first epoch,
    so a run that fails before any epoch leaves no trace."""

    def __init__(self, log_dir: Path, start_epoch: int) -> None:
        # the folder is named by epoch_log (TENSORBOARD_DIR), which imports this module, not the reverse
        self.log_dir, self.start_epoch = Path(log_dir), start_epoch
        self._writer = None

    def _open(self):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: what an earlier writer logged from this epoch on (a killed run's lost epochs) is hidden
        try:
            return SummaryWriter(str(self.log_dir), purge_step=self.start_epoch + 1)
        except OSError as err:   # checked before the run (check_log_destination), but the disk may change since
            raise WriteError(f"cannot write the TensorBoard log {self.log_dir}: {reason(err)}") from None

    def epoch(self, record: Mapping[str, Any]) -> None:
        writer = self._writer = self._writer or self._open()
        step = int(record["epoch"])
        for tag, value in record_scalars(record).items():
            writer.add_scalar(tag, value, step)
        weights = _array(record.get("op_weights"))
        if weights is not None and weights.size == len(EDGES) * NUM_OPS and np.isfinite(weights).all():
            writer.add_image("alpha/weights", alpha_image(weights), step, dataformats="HW")
            for edge, row in enumerate(weights.reshape(len(EDGES), NUM_OPS)):
                writer.add_histogram(edge_tag(edge), row, step)
        spectrum = _array(record.get("hessian_spectrum"))
        if spectrum is not None and spectrum.size and np.isfinite(spectrum).all():
            writer.add_histogram("hessian/spectrum", spectrum, step)
        writer.flush()   # each epoch visible at once, and kept if the run is killed

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64).ravel()
