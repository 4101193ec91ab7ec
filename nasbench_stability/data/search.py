"""Everything a search run needs from the data, in one call, already on the device."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .cache import load_arrays
from .containers import DatasetArrays, ImageArrays
from .pipeline import DeviceSplit
from .splits import balanced_order, split_for


@dataclass(frozen=True)
class SearchData:
    """Search train/valid halves and the test set on the device, plus how they were made."""

    train: DeviceSplit
    valid: DeviceSplit
    test: DeviceSplit | None
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    split_source: str
    data_source: str


def _take(arrays: ImageArrays, idx: np.ndarray, device: torch.device | str) -> DeviceSplit:
    return DeviceSplit.from_arrays(ImageArrays(arrays.x[idx], arrays.y[idx]), device)


def _shared_take(data: DatasetArrays, part: str, idx: np.ndarray, device: torch.device | str,
                 shared: dict | None) -> DeviceSplit:
    """``_take`` of ``data.<part>[idx]``, or the copy already in ``shared`` of the same images: same source,
    same set, same indices in the same order (split and subset), same device."""
    if shared is None:
        return _take(getattr(data, part), idx, device)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    key = (data.source, data.format, data.name, part, str(torch.device(device)),
           hashlib.sha256(idx.tobytes()).hexdigest())
    if key not in shared:
        shared[key] = _take(getattr(data, part), idx, device)
    return shared[key]


def search_data(dataset: str, root: Path | str | None = None, seed: int = 0, *, subset: int | None = None,
                device: torch.device | str = "cpu", split_policy: str = "auto",
                include_test: bool = True, shared: dict | None = None) -> SearchData:
    """Load ``dataset``, split its training set for search and move the splits to ``device``.

    ``subset`` keeps the first ``subset`` examples of train, valid and test in class-balanced
    order (e.g. 512 real images each for a smoke preset); the split itself does not depend on
    it, so a subset run sees a prefix of the full run's halves.

    ``shared``: a dict kept by the caller across calls (the seeds of one pack): a split already loaded
    by an earlier call with the same images (same data, split and subset) is taken from it, the same
    tensors, instead of a second copy on the device (~154 MB a seed for CIFAR-10). The official split
    is the same for every seed; a seeded balanced split is not, and is never shared.
    """
    if subset is not None and subset < 1:
        raise ConfigError(f"subset must be a positive number of examples, got {subset}")
    arrays = load_arrays(dataset, root)
    split = split_for(arrays, seed, split_policy)
    cut = slice(None, subset)
    test = None
    if include_test:  # the test set is stored class by class for image trees: balance before cutting
        test_idx = np.arange(len(arrays.test))
        if subset is not None:
            test_idx = balanced_order(test_idx, arrays.test.y)[cut]
        test = _shared_take(arrays, "test", test_idx, device, shared)
    return SearchData(
        train=_shared_take(arrays, "train", split.train[cut], device, shared),
        valid=_shared_take(arrays, "test" if split.valid_from == "test" else "train", split.valid[cut], device, shared),
        test=test,
        num_classes=arrays.num_classes,
        mean=arrays.mean,
        std=arrays.std,
        split_source=split.description,
        data_source=f"{arrays.source} ({arrays.format})",
    )
