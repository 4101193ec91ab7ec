"""Plain containers for decoded image data, shared by the readers, the cache and the splits.

Images stay ``uint8`` NHWC in host memory: that is what every on-disk format decodes to, it is
4x smaller than float, and the device pipeline converts/normalizes per batch on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageArrays:
    """One split of a dataset: ``x`` uint8 (N, H, W, 3), ``y`` int64 (N,) with labels 0..C-1."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4 or self.x.shape[-1] != 3:
            raise ValueError(f"x must be uint8 (N, H, W, 3), got {self.x.dtype} {self.x.shape}")
        if self.y.dtype != np.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"y must be int64 ({self.x.shape[0]},), got {self.y.dtype} {self.y.shape}")

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DecodedDataset:
    """What a reader returns: both splits, the class names, and the on-disk format it came from."""

    train: ImageArrays
    test: ImageArrays
    classes: tuple[str, ...]
    format: str


@dataclass(frozen=True)
class DatasetArrays:
    """A decoded dataset plus what downstream code needs to use it correctly.

    ``source`` is the file or folder it was decoded from and ``format`` its kind
    (see ``nasbench_stability.data.formats``): the split policy depends on it, because only the
    original CIFAR-10 python archive keeps the sample order NB201's official split indexes into.
    ``mean``/``std`` are NB201's per-channel normalization constants on the 0..1 scale.
    """

    name: str
    train: ImageArrays
    test: ImageArrays
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    format: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)
