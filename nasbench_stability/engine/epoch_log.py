"""Where a run reports each epoch besides its records: nowhere (the default) or TensorBoard.

The engine sees only :class:`EpochLog` (``epoch(record)`` after each record is written, ``close()`` when
the run lets go of its directory); a logging library is imported only when its log is asked for. The
log is an execution choice like CUDA graphs, not part of the RunConfig: it changes no result, so a run
started without it resumes with it (and the reverse) under the same config hash.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping, Protocol

from ..destinations import check_folder_path
from ..errors import ConfigError, quote

#: the values of ``nbs run --log``
LOG_KINDS = ("none", "tensorboard")
#: where ``--log tensorboard`` writes, in each run directory
TENSORBOARD_DIR = "tensorboard"


class EpochLog(Protocol):
    def epoch(self, record: Mapping[str, Any]) -> None:
        """Log one epoch's record (the dict just written to ``records/``)."""

    def close(self) -> None:
        """Flush and release; called once, also when the run fails."""


class NoEpochLog:
    """The default: the records are the log."""

    def epoch(self, record: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def check_log_kind(kind: str) -> None:
    """ConfigError (one line) for an unknown kind or a kind whose library is not installed, before any run starts."""
    if kind not in LOG_KINDS:
        raise ConfigError(f"unknown log {quote(kind)}; known: {', '.join(LOG_KINDS)}")
    if kind == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--log tensorboard needs the tensorboard package: pip install 'nasbench_stability[tensorboard]'")


def check_log_destination(kind: str, run_dir: Path) -> None:
    """A one-line WriteError, before the run starts, if the log's folder cannot be one (``<run>/tensorboard``
    is a file): found only at the first epoch's log, it failed the run after its first record, left as
    if killed. Creates nothing."""
    if kind == "tensorboard":
        check_folder_path(Path(run_dir) / TENSORBOARD_DIR, "--log tensorboard folder")


def open_epoch_log(kind: str, run_dir: Path, start_epoch: int) -> EpochLog:
    """The log of the run in ``run_dir``, whose next epoch is ``start_epoch + 1``."""
    check_log_kind(kind)
    if kind == "tensorboard":
        from .tensorboard_log import TensorBoardLog

        return TensorBoardLog(Path(run_dir) / TENSORBOARD_DIR, start_epoch)
    return NoEpochLog()
