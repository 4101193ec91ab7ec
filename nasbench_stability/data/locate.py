"""Find a dataset on disk: explicit root, else ``NBS_DATA``, else the nbs dataset folder, else shared/.

An explicit root is authoritative (no silent fallback to some other copy); it may be a folder
holding the data under one of the spec's usual names, or the archive/folder itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from ..errors import MissingFileError
from .catalog import DatasetSpec
from .formats import CIFAR10_PYTHON, CIFAR100_PYTHON, IMAGE_FOLDER, IMAGENET16_PICKLE


def data_search_dirs(root: Path | str | None = None) -> list[Path]:
    """Folders searched for datasets, in order."""
    if root is not None:
        return [Path(root).expanduser()]
    dirs = []
    if os.environ.get(paths.DATA_ENV):
        dirs.append(Path(os.environ[paths.DATA_ENV]).expanduser())
    dirs.append(paths.dataset_cache_dir())
    shared = paths.shared_dir()
    if shared is not None:
        dirs.append(shared / "datasets")
    return dirs


def _dir_format(d: Path) -> str | None:
    """The format of a folder that *is* a dataset (checked without walking it), else None."""
    if (d / "data_batch_1").is_file():
        return CIFAR10_PYTHON
    if (d / "train").is_file() and (d / "test").is_file():
        return CIFAR100_PYTHON
    if (d / "train_data_batch_1").is_file():
        return IMAGENET16_PICKLE
    if (d / "train").is_dir() and (d / "test").is_dir():
        return IMAGE_FOLDER
    return None


def locate_dataset(spec: DatasetSpec, root: Path | str | None = None) -> Path:
    """The archive or folder to read ``spec`` from; MissingFileError saying where it looked."""
    dirs = data_search_dirs(root)
    for d in dirs:
        if d.is_file() or (d.is_dir() and _dir_format(d) in spec.formats):
            return d
        for name in spec.candidates:
            if (d / name).exists():
                return d / name
    hint = "check the data root" if root is not None else f"pass a data root or set {paths.DATA_ENV}"
    raise MissingFileError(
        f"{spec.name} not found: looked for {', '.join(spec.candidates)} in "
        f"{', '.join(str(d) for d in dirs)}; {hint}"
    )
