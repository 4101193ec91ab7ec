"""Out-of-memory while building or stepping a supernet, as one line that says which sizes to shrink."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import NbsError
from .config import RunConfig

# what torch's allocators say when a request cannot be met (CUDA, CPU, MPS)
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


class OutOfMemoryError(NbsError):
    """The run's sizes (channels, cells, batch, data) do not fit on its device."""


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(t in str(err).lower() for t in _OOM_TEXT)


def error_summary(err: BaseException) -> str:
    """The allocator's own words, cut down: its first line, without the C++ source location."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    return text if len(text) <= 160 else text[:160] + "…"


@contextmanager
def fits_in_memory(cfg: RunConfig, stage: str) -> Iterator[None]:
    """Turns an allocation failure inside the block into :class:`OutOfMemoryError`."""
    try:
        yield
    except BaseException as err:
        if not is_out_of_memory(err):
            raise
        if cfg.device.startswith("cuda"):
            torch.cuda.empty_cache()
        raise OutOfMemoryError(
            f"{cfg.run_name} does not fit in memory on {cfg.device} while {stage} (channels={cfg.channels}, "
            f"cells_per_stage={cfg.cells_per_stage}, batch_size={cfg.batch_size}): {error_summary(err)}; "
            f"use smaller --set channels / cells_per_stage / batch_size") from None
