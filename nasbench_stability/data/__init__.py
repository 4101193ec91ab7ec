"""Datasets for the search: read official formats, cache decoded arrays, split, batch on device.

``load_arrays`` (decode once, cached under ``NBS_HOME``) → ``split_for`` (NB201's official split
or a seeded class-balanced one) → ``search_data`` (splits on the device) → ``BatchStream``
(reproducible augmented batches per epoch).
"""

from .cache import decode_dataset, load_arrays
from .catalog import DATASETS, DatasetSpec, dataset_spec
from .containers import DatasetArrays, DecodedDataset, ImageArrays
from .pipeline import BatchStream, DeviceSplit, augment, derive_seed, eval_transform, normalize
from .search import SearchData, search_data
from .splits import SplitIndices, balanced_order, read_official_split, search_split, split_for

__all__ = [
    "DATASETS",
    "BatchStream",
    "DatasetArrays",
    "DatasetSpec",
    "DecodedDataset",
    "DeviceSplit",
    "ImageArrays",
    "SearchData",
    "SplitIndices",
    "augment",
    "balanced_order",
    "dataset_spec",
    "decode_dataset",
    "derive_seed",
    "eval_transform",
    "load_arrays",
    "normalize",
    "read_official_split",
    "search_data",
    "search_split",
    "split_for",
]
