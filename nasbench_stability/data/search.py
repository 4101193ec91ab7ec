"""Everything a search run needs from the data, in one call, already on the device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .cache import load_arrays
from .containers import ImageArrays
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


def search_data(dataset: str, root: Path | str | None = None, seed: int = 0, *, subset: int | None = None,
                device: torch.device | str = "cpu", split_policy: str = "auto",
                include_test: bool = True) -> SearchData:
    """Load ``dataset``, split its training set for search and move the splits to ``device``.

    ``subset`` keeps the first ``subset`` examples of train, valid and test in class-balanced
    order (e.g. 512 real images each for a smoke preset); the split itself does not depend on
    it, so a subset run sees a prefix of the full run's halves.
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
        test = _take(arrays.test, test_idx, device)
    return SearchData(
        train=_take(arrays.train, split.train[cut], device),
        valid=_take(arrays.test if split.valid_from == "test" else arrays.train, split.valid[cut], device),
        test=test,
        num_classes=arrays.num_classes,
        mean=arrays.mean,
        std=arrays.std,
        split_source=split.description,
        data_source=f"{arrays.source} ({arrays.format})",
    )
