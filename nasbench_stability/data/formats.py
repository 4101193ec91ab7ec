"""The on-disk formats nbs reads, and how to recognize one from its file names.

Recognition is by file names only (never by the folder's name), so a renamed folder or archive
still works. Sniffing stops at the first decisive name, so it costs one header read for a tarball.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .sources import FileSource

CIFAR10_PYTHON = "cifar10-python"
CIFAR100_PYTHON = "cifar100-python"
IMAGENET16_PICKLE = "imagenet16-pickle"
IMAGE_FOLDER = "image-folder"

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
FOLDER_SPLITS = ("train", "test")


def image_folder_parts(name: str) -> tuple[str, str, str] | None:
    """(prefix, split, class) for ``[prefix/]{train,test}/<class>/<file>.{jpg,png}``, else None."""
    p = PurePosixPath(name)
    parts = p.parts
    if len(parts) < 3 or p.suffix.lower() not in IMAGE_SUFFIXES or parts[-3] not in FOLDER_SPLITS:
        return None
    if p.name.startswith("."):  # macOS resource forks (._0001.jpg) are not images
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2]


def format_of_name(name: str) -> str | None:
    """The format a single file name proves, or None if it is not decisive."""
    base = PurePosixPath(name).name
    if base in ("data_batch_1", "test_batch", "batches.meta"):
        return CIFAR10_PYTHON
    if base in ("train", "test"):  # a *file* named train/test: CIFAR-100's pickles
        return CIFAR100_PYTHON
    if base.startswith("train_data_batch_") or base == "val_data":
        return IMAGENET16_PICKLE
    if image_folder_parts(name) is not None:
        return IMAGE_FOLDER
    return None


def sniff_format(source: FileSource) -> str | None:
    """The format of a dataset folder or archive, from the first decisive file name."""
    for name in source.iter_names():
        fmt = format_of_name(name)
        if fmt is not None:
            return fmt
    return None
