"""Search-time train/valid splits.

NB201 searches on two 25k halves of the CIFAR-10 training set given by ``cifar-split.txt``. On
CIFAR-100 and ImageNet16-120 its search protocol (xautodl ``get_nas_search_loaders``) is different:
the weights train on the whole training set and α on the ``xvalid`` half of the *test* set given by
``cifar100-test-split.txt`` / ``imagenet-16-120-test-split.txt``. Those
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
from ..errors import ConfigError, MissingFileError, NbsError, quote
from .containers import DatasetArrays
from .formats import CIFAR10_PYTHON

SPLIT_POLICIES = ("auto", "official", "balanced")
OFFICIAL_SPLIT_FILE = "cifar-split.txt"
# datasets whose NB201 search takes α's data from the xvalid half of the test set
TEST_SPLIT_FILES = {"cifar100": "cifar100-test-split.txt", "ImageNet16-120": "imagenet-16-120-test-split.txt"}


@dataclass(frozen=True)
class SplitIndices:
    """Indices of the search halves, and a human-readable record of how they were chosen.

    ``train`` indexes the training set; ``valid`` indexes the set named by ``valid_from``.
    """

    train: np.ndarray
    valid: np.ndarray
    description: str
    valid_from: str = "train"   # "train" | "test"


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


def find_official_split(arrays: DatasetArrays, name: str = OFFICIAL_SPLIT_FILE) -> Path | None:
    """An NB201 split file next to the data, in the nbs dataset folder, or in shared/nb201/splits."""
    places = [Path(arrays.source).parent, paths.dataset_cache_dir()]
    shared = paths.shared_dir()
    if shared is not None:
        places.append(shared / "nb201" / "splits")
    return next((p / name for p in places if (p / name).is_file()), None)


def _test_split_protocol(arrays: DatasetArrays, seed: int, policy: str, split_file: Path | str | None) -> SplitIndices:
    """CIFAR-100 / ImageNet16-120: all of train for w, the test set's xvalid half for α (NB201)."""
    name = TEST_SPLIT_FILES[arrays.name]
    found = Path(split_file) if split_file is not None else find_official_split(arrays, name)
    if found is None:
        return _fallback(arrays, seed, policy, f"{name} not found", MissingFileError)
    xvalid = read_official_split(found).get("xvalid")
    if xvalid is None:
        raise NbsError(f"split file {found} has no 'xvalid' entry")
    n = len(arrays.test)
    if xvalid.min() < 0 or xvalid.max() >= n or np.unique(xvalid).size != xvalid.size:
        return _fallback(arrays, seed, policy, f"{found.name} indexes a test set larger than this data's {n} images")
    train = balanced_order(np.arange(len(arrays.train)), arrays.train.y)
    return SplitIndices(train, balanced_order(xvalid, arrays.test.y),
                        f"NB201 search protocol: all {len(arrays.train)} training images for w, the xvalid half of "
                        f"the test set for α ({found.name})", valid_from="test")


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
    archive and the split file can be found (for CIFAR-100 / ImageNet16-120: NB201's protocol of
    train + the test set's xvalid half), else ``balanced`` (the description says why).
    ``official``: that split or an error. ``balanced``: ``search_split(y, seed)``.
    """
    if policy not in SPLIT_POLICIES:
        raise ConfigError(f"unknown split policy {quote(policy)}; valid: {', '.join(SPLIT_POLICIES)}")
    if policy == "balanced":
        return _balanced(arrays, seed)
    if arrays.name in TEST_SPLIT_FILES:
        return _test_split_protocol(arrays, seed, policy, split_file)
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
