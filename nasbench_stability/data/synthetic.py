"""Write small datasets in the official on-disk formats, for tests and offline smoke runs.

CIFAR-100 and ImageNet16 are not available offline, and decoding the real CIFAR-10 takes
seconds, so tests write a few dozen random images in exactly the layout users have (Python-2-style
``bytes`` keys for CIFAR, ``str`` keys and 1-based labels for ImageNet16) and read them back.
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from .catalog import dataset_spec
from .containers import ImageArrays
from .pickled import CIFAR10_CLASSES


def random_images(n: int, size: int, num_classes: int, seed: int = 0) -> ImageArrays:
    """``n`` random uint8 images with labels cycling over the classes (all classes present)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    y = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    return ImageArrays(x, y)


def _chw_rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), -1))


def _dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _tar_gz(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    shutil.rmtree(folder)
    return archive


def write_cifar_python(dest: Path, dataset: str, train: ImageArrays, test: ImageArrays, *,
                       archive: bool = True) -> Path:
    """``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (or the extracted folder) in ``dest``."""
    spec = dataset_spec(dataset)
    layout = spec.layout
    folder = Path(dest) / ("cifar-10-batches-py" if spec.name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = layout.label_key.encode()
    chunks = np.array_split(np.arange(len(train)), len(layout.train_files))
    for name, idx in zip(layout.train_files, chunks):
        _dump(folder / name, {b"data": _chw_rows(train.x[idx]), label_key: train.y[idx].tolist()})
    _dump(folder / layout.test_files[0], {b"data": _chw_rows(test.x), label_key: test.y.tolist()})
    names = CIFAR10_CLASSES if spec.name == "cifar10" else tuple(f"class{i:03d}" for i in range(spec.num_classes))
    assert layout.meta_file and layout.meta_names_key
    _dump(folder / layout.meta_file, {layout.meta_names_key.encode(): [n.encode() for n in names]})
    if not archive:
        return folder
    archive_name = "cifar-10-python.tar.gz" if spec.name == "cifar10" else "cifar-100-python.tar.gz"
    return _tar_gz(folder, Path(dest) / archive_name)


def write_imagenet16(dest: Path, x_train: np.ndarray, labels_train: np.ndarray, x_test: np.ndarray,
                     labels_test: np.ndarray) -> Path:
    """NB201's ``ImageNet16/`` folder; labels are the raw 1-based ImageNet ones (1..1000)."""
    layout = dataset_spec("ImageNet16-120").layout
    folder = Path(dest) / "ImageNet16"
    folder.mkdir(parents=True, exist_ok=True)
    chunks = np.array_split(np.arange(len(x_train)), len(layout.train_files))
    for name, idx in zip(layout.train_files, chunks):
        _dump(folder / name, {"data": _chw_rows(x_train[idx]), "labels": labels_train[idx].tolist()})
    _dump(folder / layout.test_files[0], {"data": _chw_rows(x_test), "labels": labels_test.tolist()})
    return folder


def write_image_folder(dest: Path, name: str, train: ImageArrays, test: ImageArrays,
                       classes: tuple[str, ...], *, suffix: str = ".png", archive: bool = True) -> Path:
    """``<name>/{train,test}/<class>/NNNN<suffix>`` (PNG is lossless, so pixels round-trip)."""
    root = Path(dest) / name
    for split, arr in (("train", train), ("test", test)):
        for i, (img, label) in enumerate(zip(arr.x, arr.y)):
            d = root / split / classes[label]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}{suffix}")
    return _tar_gz(root, Path(dest) / f"{name}.tar.gz") if archive else root
