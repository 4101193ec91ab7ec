"""Per-epoch checkpoints: everything needed to continue a run bit-for-bit on the same device.

Data order and augmentation need no saved state: every batch stream derives its randomness from
(seed, stream, epoch), so a resumed epoch draws exactly the batches it would have drawn.

A checkpoint holds only tensors and plain values (dicts, lists, tuples, numbers, strings), so it is
read with ``torch.load(weights_only=True)``: a crafted ``checkpoint.pt`` in a run directory cannot
run code. That is why the RNG states are stored as tensors and tuples of ints, not numpy objects.
"""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from .atomic import atomic_path

# 2: RNG state as tensors/ints (format 1 pickled numpy's state tuple, which weights_only refuses)
FORMAT_VERSION = 2

# what a format-1 checkpoint needs beyond weights_only's allow-list: only numpy's RNG state
_FORMAT1_GLOBALS = frozenset({"numpy.dtype", "numpy.ndarray", "numpy._core.multiarray._reconstruct",
                              "numpy.core.multiarray._reconstruct"})


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": random.getstate(),  # (version, tuple of ints, float or None): plain values already
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    # map_location may have moved the saved states to the run's device; generators take CPU bytes
    torch.set_rng_state(state["torch"].cpu())
    npy = state["numpy"]
    np.random.set_state((npy["bit_generator"], npy["keys"].cpu().numpy().astype(np.uint32), int(npy["pos"]),
                         int(npy["has_gauss"]), float(npy["cached_gaussian"])))
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def restore_state(method: Any, payload: dict[str, Any], path: Path, *, rng: bool) -> None:
    """Put a loaded checkpoint's method state (and RNG states) back; a mismatch is one line."""
    try:
        method.load_checkpoint_state(payload["method"])
        if rng:
            set_rng_state(payload["rng"])
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this run's method ({type(err).__name__}); "
                              f"move it away to restart this run from scratch") from None


def _as_tuples(value: Any) -> Any:
    """random.setstate wants tuples all the way down."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, *, config_hash: str, epochs_done: int, method_state: dict[str, Any],
                    wall_seconds: float) -> None:
    payload = {"format": FORMAT_VERSION, "config_hash": config_hash, "epochs_done": epochs_done,
               "method": method_state, "rng": rng_state(), "wall_seconds": wall_seconds}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, *, config_hash: str, device: torch.device) -> dict[str, Any]:
    """Read and validate a checkpoint without running code; any problem is a one-line :class:`CheckpointError`."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols; the error below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/garbled/refused files
        raise CheckpointError(_refusal(path, data, err)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} is not an nbs checkpoint of format {FORMAT_VERSION} "
                              f"(found {found!r}); move it away to restart this run from scratch")
    if payload.get("config_hash") != config_hash:
        raise CheckpointError(f"checkpoint {path} belongs to a different config; refusing to resume")
    problem = _shape_problem(payload)
    if problem:
        raise CheckpointError(f"checkpoint {path} is damaged ({problem}); move it away to restart this run "
                              f"from scratch")
    return payload


def _refusal(path: Path, data: bytes, err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``data``: foreign objects, an old format, or damage."""
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data)))  # scans, runs nothing
    except Exception:  # noqa: BLE001 - not a torch.save zip at all: plain damage
        unsafe = set()
    if unsafe and unsafe <= _FORMAT1_GLOBALS:
        return (f"checkpoint {path} was written by an older nbs (format 1, numpy RNG state) that cannot be loaded "
                f"without unpickling code; finish the run with that nbs, or move it away to restart from scratch")
    if unsafe:
        return (f"checkpoint {path} is not an nbs checkpoint: it would import {', '.join(sorted(unsafe))}, "
                f"and nbs never runs code from a checkpoint; move it away to restart this run from scratch")
    return f"checkpoint {path} is unreadable ({type(err).__name__}); move it away to restart this run from scratch"


def _shape_problem(payload: dict[str, Any]) -> str:
    """What is missing or of the wrong type in a loaded payload ('' if nothing)."""
    epochs = payload.get("epochs_done")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        return f"epochs_done is {epochs!r}"
    if not isinstance(payload.get("wall_seconds"), (int, float)):
        return "wall_seconds is missing"
    if not isinstance(payload.get("method"), dict):
        return "the method state is missing"
    rng = payload.get("rng")
    if (not isinstance(rng, dict) or not isinstance(rng.get("torch"), torch.Tensor)
            or not isinstance(rng.get("numpy"), dict) or not isinstance(rng["numpy"].get("keys"), torch.Tensor)
            or not isinstance(rng.get("python"), (tuple, list))):
        return "the RNG state is missing or malformed"
    return ""
