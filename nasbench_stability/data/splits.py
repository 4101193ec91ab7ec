"""Search-time train/valid splits of the training set.

NB201 searches on two 25k halves of the CIFAR-10 training set given by ``cifar-split.txt``. Those
indices refer to the original order of the CIFAR-10 python archive; an image-folder copy has lost
that order, so for it (and whenever the split file is missing) a seeded, exactly class-balanced
split is used instead. Which one was used is recorded as a string for the run's metadata.

Every split returned here is in *class-balanced order* (class 0, 1, .., C-1, 0, 1, ...), so any
prefix of it is as balanced as possible: a smoke run taking the first 512 examples gets ~51 per
CIFAR-10 class rather than 512 airplanes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import ConfigError, MissingFileError, NbsError
from .containers import DatasetArrays
from .formats import CIFAR10_PYTHON

SPLIT_POLICIES = ("auto", "official", "balanced")
OFFICIAL_SPLIT_FILE = "cifar-split.txt"


@dataclass(frozen=True)
class SplitIndices:
    """Indices into the training set, and a human-readable record of how they were chosen."""

    train: np.ndarray
    valid: np.ndarray
    description: str


def balanced_order(idx: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``idx`` reordered round-robin over classes, keeping each class's own order."""
    idx = np.asarray(idx, dtype=np.int64)
    labels = y[idx]
    if labels.size == 0:
        return idx
    num_classes = int(labels.max()) + 1
    grouped = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    rank = np.empty(idx.size, dtype=np.int64)
    rank[grouped] = np.arange(idx.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return idx[np.argsort(rank * num_classes + labels, kind="stable")]


def search_split(y: np.ndarray, seed: int, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(len(y))`` putting ``round(fraction * n_c)`` of each class in train.

    Exactly balanced per class (25k/25k, 2,500 per class for CIFAR-10), deterministic for a
    seed, and both halves are returned in class-balanced order.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction must be in (0, 1), got {fraction}")
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed % 2**64)
    shuffled = rng.permutation(y.size)
    grouped = shuffled[np.argsort(y[shuffled], kind="stable")]  # by class, random within class
    counts = np.bincount(y)
    rank = np.arange(y.size) - np.repeat(np.cumsum(counts) - counts, counts)
    in_train = rank < np.repeat(np.rint(counts * fraction).astype(np.int64), counts)
    return balanced_order(grouped[in_train], y), balanced_order(grouped[~in_train], y)


def read_official_split(path: Path | str) -> dict[str, np.ndarray]:
    """Parse an NB201 split file (``{"train": ["int", ["0", "5", ...]], ...}``) into int arrays."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        return {key: np.array([int(v) for v in values], dtype=np.int64) for key, (_type, values) in raw.items()}
    except FileNotFoundError:
        raise MissingFileError(f"split file not found: {path}") from None
    except (ValueError, TypeError) as e:
        raise NbsError(f"cannot parse split file {path}: {e}") from e


def find_official_split(arrays: DatasetArrays) -> Path | None:
    """``cifar-split.txt`` next to the data, in the nbs dataset folder, or in shared/nb201/splits."""
    places = [Path(arrays.source).parent, paths.dataset_cache_dir()]
    shared = paths.shared_dir()
    if shared is not None:
        places.append(shared / "nb201" / "splits")
    return next((p / OFFICIAL_SPLIT_FILE for p in places if (p / OFFICIAL_SPLIT_FILE).is_file()), None)


def _official(arrays: DatasetArrays, split_file: Path, train: np.ndarray, valid: np.ndarray) -> SplitIndices:
    both = np.concatenate([train, valid])
    n = len(arrays.train)
    if both.min() < 0 or both.max() >= n or np.unique(both).size != both.size:
        raise NbsError(f"split file {split_file} does not index {n} distinct training images")
    y = arrays.train.y
    return SplitIndices(balanced_order(train, y), balanced_order(valid, y), f"official NB201 split ({split_file.name})")


def _balanced(arrays: DatasetArrays, seed: int, reason: str = "") -> SplitIndices:
    train, valid = search_split(arrays.train.y, seed)
    why = f" ({reason})" if reason else ""
    return SplitIndices(train, valid, f"seeded class-balanced 50/50 split (seed={seed}){why}")


def _fallback(arrays: DatasetArrays, seed: int, policy: str, reason: str,
              error: type[NbsError] = ConfigError) -> SplitIndices:
    """``auto`` falls back to the balanced split, recording why; ``official`` refuses."""
    if policy == "official":
        raise error(f"cannot use the official NB201 split: {reason} (use split policy 'balanced')")
    return _balanced(arrays, seed, reason)


def split_for(arrays: DatasetArrays, seed: int, policy: str = "auto", *,
              split_file: Path | str | None = None) -> SplitIndices:
    """The search split for ``arrays``.

    ``auto``: NB201's official split if the data is the original 50k-image CIFAR-10 python
    archive and the split file can be found, else ``balanced`` (the description says why).
    ``official``: that split or an error. ``balanced``: ``search_split(y, seed)``.
    """
    if policy not in SPLIT_POLICIES:
        raise ConfigError(f"unknown split policy {policy!r}; valid: {', '.join(SPLIT_POLICIES)}")
    if policy == "balanced":
        return _balanced(arrays, seed)
    if arrays.format != CIFAR10_PYTHON:
        reason = f"NB201's official split indexes the CIFAR-10 python archive, not {arrays.name} {arrays.format}"
        return _fallback(arrays, seed, policy, reason)
    found = Path(split_file) if split_file is not None else find_official_split(arrays)
    if found is None:
        return _fallback(arrays, seed, policy, f"{OFFICIAL_SPLIT_FILE} not found", MissingFileError)
    split = read_official_split(found)
    if "train" not in split or "valid" not in split:
        raise NbsError(f"split file {found} has no 'train'/'valid' entries")
    size = len(split["train"]) + len(split["valid"])
    if size != len(arrays.train):
        reason = f"{found.name} indexes {size} images, the data has {len(arrays.train)}"
        return _fallback(arrays, seed, policy, reason)
    return _official(arrays, found, split["train"], split["valid"])
