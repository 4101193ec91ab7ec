"""The datasets nbs knows: names, NB201 normalization constants, accepted formats, file names.

The mean/std are the constants NB201 (xautodl ``get_datasets``) trains with, so accuracies stay
comparable with the benchmark; they are on the 0..1 scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, quote
from .formats import CIFAR10_PYTHON, CIFAR100_PYTHON, IMAGE_FOLDER, IMAGENET16_PICKLE
from .pickled import CIFAR10_LAYOUT, CIFAR100_LAYOUT, IMAGENET16_120_LAYOUT, PickleLayout


def _scaled(*values: float) -> tuple[float, float, float]:
    a, b, c = (v / 255 for v in values)
    return a, b, c


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: PickleLayout
    # File/folder names looked for inside a data folder, most faithful first: the official
    # pickles keep exact pixels and the original order (which the official split indexes).
    candidates: tuple[str, ...]

    @property
    def formats(self) -> tuple[str, ...]:
        return (self.layout.format, IMAGE_FOLDER)


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "cifar10", 10, 32, _scaled(125.3, 123.0, 113.9), _scaled(63.0, 62.1, 66.7), CIFAR10_LAYOUT,
            ("cifar-10-batches-py", "cifar-10-python.tar.gz", "cifar10-jpg", "cifar10-jpg.tar.gz"),
        ),
        DatasetSpec(
            "cifar100", 100, 32, _scaled(129.3, 124.1, 112.4), _scaled(68.2, 65.4, 70.4), CIFAR100_LAYOUT,
            ("cifar-100-python", "cifar-100-python.tar.gz", "cifar100-jpg", "cifar100-jpg.tar.gz"),
        ),
        DatasetSpec(
            "ImageNet16-120", 120, 16, _scaled(122.68, 116.66, 104.01), _scaled(63.22, 61.26, 65.09),
            IMAGENET16_120_LAYOUT,
            ("ImageNet16", "ImageNet16-120", "ImageNet16.tar", "ImageNet16.tar.gz"),
        ),
    )
}

_BY_LOWER_NAME = {k.lower(): v for k, v in DATASETS.items()}
assert {s.layout.format for s in DATASETS.values()} == {CIFAR10_PYTHON, CIFAR100_PYTHON, IMAGENET16_PICKLE}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec for a dataset name (case-insensitive); a ConfigError listing the valid names otherwise."""
    spec = _BY_LOWER_NAME.get(name.lower())
    if spec is None:
        raise ConfigError(f"unknown dataset {quote(name)}; valid: {', '.join(DATASETS)}")
    return spec
