"""Per-epoch checkpoints: everything needed to continue a run bit-for-bit on the same device.

Data order and augmentation need no saved state: every batch stream derives its randomness from
(seed, stream, epoch), so a resumed epoch draws exactly the batches it would have drawn.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from .atomic import atomic_path

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, *, config_hash: str, epochs_done: int, method_state: dict[str, Any],
                    wall_seconds: float) -> None:
    payload = {"format": FORMAT_VERSION, "config_hash": config_hash, "epochs_done": epochs_done,
               "method": method_state, "rng": rng_state(), "wall_seconds": wall_seconds}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, *, config_hash: str, device: torch.device) -> dict[str, Any]:
    """Read and validate a checkpoint; any problem is a one-line :class:`CheckpointError`."""
    try:
        data = path.read_bytes()
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    except Exception as err:  # torch raises many types for truncated/garbled files
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}); "
                              f"move it away to restart this run from scratch") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} is not an nbs checkpoint of format {FORMAT_VERSION}")
    if payload.get("config_hash") != config_hash:
        raise CheckpointError(f"checkpoint {path} belongs to a different config; refusing to resume")
    return payload
