"""Decode a dataset once, then reload it from an uncompressed ``.npz`` in well under a second.

Decoding 60k JPEGs takes seconds; every search run and test needs the same arrays. The cache
file lives in ``paths.dataset_cache_dir()`` (under ``NBS_HOME``) and its name hashes the source's
path, size and mtime plus a format version, so a changed source or a reader fix never serves stale
arrays. It is written to a temporary file and renamed into place, so concurrent runs or a killed
process can never leave a half-written cache that a later run would trust.
"""

from __future__ import annotations

import os
import uuid
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import NbsError
from .catalog import DatasetSpec, dataset_spec
from .containers import DatasetArrays, DecodedDataset, ImageArrays
from .formats import IMAGE_FOLDER, sniff_format
from .image_folder import read_image_folder
from .locate import locate_dataset
from .pickled import read_pickled
from .sources import FileSource, open_source

CACHE_VERSION = 1


def decode_dataset(spec: DatasetSpec, source: FileSource, *, progress: bool = True) -> DecodedDataset:
    """Decode ``source`` (any accepted format of ``spec``) and check it fits the spec."""
    fmt = sniff_format(source)
    if fmt not in spec.formats:
        found = f"{fmt} data" if fmt else "no recognizable dataset files"
        raise NbsError(f"cannot read {source.path} as {spec.name}: found {found}, expected {' or '.join(spec.formats)}")
    decoded = (
        read_image_folder(source, progress=progress) if fmt == IMAGE_FOLDER else read_pickled(source, spec.layout)
    )
    _check_fits(spec, decoded, source)
    return decoded


def _check_fits(spec: DatasetSpec, d: DecodedDataset, source: FileSource) -> None:
    if len(d.classes) != spec.num_classes:
        raise NbsError(
            f"cannot use {source.path} as {spec.name}: {len(d.classes)} classes, expected {spec.num_classes}"
        )
    for split, arr in (("train", d.train), ("test", d.test)):
        if arr.x.shape[1:3] != (spec.image_size, spec.image_size):
            raise NbsError(f"cannot use {source.path} as {spec.name}: {split} images are {arr.x.shape[1:3]}")
        if len(arr) and (arr.y.min() < 0 or arr.y.max() >= spec.num_classes):
            raise NbsError(f"cannot use {source.path} as {spec.name}: {split} labels outside 0..{spec.num_classes - 1}")


def cache_path(spec: DatasetSpec, source: FileSource) -> Path:
    """Where the decoded arrays of ``source`` are cached."""
    return paths.dataset_cache_dir() / f"{spec.name}-v{CACHE_VERSION}-{source.fingerprint()}.npz"


def _save(path: Path, d: DecodedDataset, source: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(
                f, x_train=d.train.x, y_train=d.train.y, x_test=d.test.x, y_test=d.test.y,
                classes=np.array(d.classes, dtype=np.str_), format=np.array(d.format), source=np.array(str(source)),
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path) -> DecodedDataset | None:
    """The cached arrays, or None if the file is missing or unreadable (then we re-decode)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return DecodedDataset(
                ImageArrays(z["x_train"], z["y_train"]), ImageArrays(z["x_test"], z["y_test"]),
                tuple(str(c) for c in z["classes"]), str(z["format"]),
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        warnings.warn(f"ignoring unreadable dataset cache {path}: {e}", stacklevel=3)
        return None


def load_arrays(dataset: str, root: Path | str | None = None, *, cache: bool = True,
                progress: bool = True) -> DatasetArrays:
    """Locate ``dataset``, decode it (or reuse the cache) and attach NB201's normalization.

    ``root`` is a folder holding the data (or the archive/folder itself); without it the
    ``NBS_DATA`` folder, the nbs dataset folder and ``shared/datasets`` are searched. The cache
    goes to ``paths.dataset_cache_dir()``, i.e. follows ``NBS_HOME``; ``cache=False`` skips it.
    """
    spec = dataset_spec(dataset)
    location = locate_dataset(spec, root)
    source = open_source(location)
    target = cache_path(spec, source) if cache else None
    decoded = _load(target) if target is not None else None
    if decoded is None:
        decoded = decode_dataset(spec, source, progress=progress)
        if target is not None:
            try:
                _save(target, decoded, location)
            except OSError as e:  # a read-only NBS_HOME must not stop a run
                warnings.warn(f"could not write dataset cache {target}: {e}", stacklevel=2)
    return DatasetArrays(
        name=spec.name, train=decoded.train, test=decoded.test, classes=decoded.classes,
        mean=spec.mean, std=spec.std, source=str(location), format=decoded.format,
    )
