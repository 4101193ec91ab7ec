"""Readers for the pickled-batch formats: CIFAR-10/100 python archives and NB201's ImageNet16.

All three store rows of ``3*S*S`` uint8 in CHW order plus a label list, split over a few pickle
files; they differ only in file names, the label key and the label convention, which
``PickleLayout`` captures, so one reader serves all of them.

ImageNet16-120 follows xautodl's ``ImageNet16(use_num_of_class_only=120)``: labels are 1-based
over 1000 classes, samples with ``1 <= label <= 120`` are kept and shifted to 0-based.

These formats are pickles (as shipped upstream, and as torchvision reads them), but what they hold
is plain: dicts, lists, bytes and numpy arrays. So they are unpickled with an allow-list of exactly
those types (:class:`_BatchUnpickler`): a crafted batch file found on the data search path is
refused with one line instead of running code. Content of the wrong type is one line too.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from ..errors import NbsError
from .containers import DecodedDataset, ImageArrays
from .formats import CIFAR10_PYTHON, CIFAR100_PYTHON, IMAGENET16_PICKLE
from .sources import FileSource

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True)
class PickleLayout:
    """Where a pickled-batch dataset keeps its pixels and labels."""

    format: str
    image_size: int
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    meta_file: str | None = None
    meta_names_key: str | None = None
    first_label: int = 0          # 1 for ImageNet16's 1-based labels
    keep_classes: int | None = None  # keep only the first K classes (ImageNet16-120)


CIFAR10_LAYOUT = PickleLayout(
    format=CIFAR10_PYTHON, image_size=32,
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
    label_key="labels", meta_file="batches.meta", meta_names_key="label_names",
)
CIFAR100_LAYOUT = PickleLayout(
    format=CIFAR100_PYTHON, image_size=32, train_files=("train",), test_files=("test",),
    label_key="fine_labels", meta_file="meta", meta_names_key="fine_label_names",
)
IMAGENET16_120_LAYOUT = PickleLayout(
    format=IMAGENET16_PICKLE, image_size=16,
    train_files=tuple(f"train_data_batch_{i}" for i in range(1, 11)), test_files=("val_data",),
    label_key="labels", first_label=1, keep_classes=120,
)


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what batch files hold: numpy arrays (and scalars), and bytes as protocol 2 writes them."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it would import {module}.{name}, which no batch file needs; refused")
        return super().find_class(module, name)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def unpickle(data: bytes, what: str) -> dict[str, Any]:
    """Load a batch pickled by Python 2 or 3, with str keys either way (never running code)."""
    try:
        obj = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # corrupt pickles raise a zoo of exception types
        raise NbsError(f"cannot unpickle {what}: {_one_line(e)}") from None
    if not isinstance(obj, dict):
        raise NbsError(f"cannot read {what}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _rows_to_nhwc(rows: Any, size: int, what: str) -> np.ndarray:
    """(N, 3*size*size) CHW rows -> (N, size, size, 3) uint8, which is what everything else uses."""
    try:
        arr = np.asarray(rows, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as err:
        raise NbsError(f"cannot read {what}: 'data' is not rows of bytes ({_one_line(err)})") from None
    if arr.ndim != 2 or arr.shape[1] != 3 * size * size:
        raise NbsError(f"cannot read {what}: expected rows of {3 * size * size} bytes, got {arr.shape}")
    return np.ascontiguousarray(arr.reshape(-1, 3, size, size).transpose(0, 2, 3, 1))


def _read_split(batches: dict[str, dict[str, Any]], files: tuple[str, ...], layout: PickleLayout,
                source: FileSource) -> ImageArrays:
    xs, ys = [], []
    for f in files:
        what = f"{source.path}:{f}"
        batch = batches[f]
        if "data" not in batch or layout.label_key not in batch:
            raise NbsError(f"cannot read {what}: missing key 'data' or {layout.label_key!r}")
        xs.append(_rows_to_nhwc(batch["data"], layout.image_size, what))
        try:
            ys.append(np.asarray(batch[layout.label_key], dtype=np.int64))
        except (TypeError, ValueError, OverflowError) as err:
            raise NbsError(f"cannot read {what}: {layout.label_key!r} is not a list of integers "
                           f"({_one_line(err)})") from None
        if ys[-1].shape != (len(xs[-1]),):
            raise NbsError(f"cannot read {what}: {len(xs[-1])} images but {layout.label_key!r} has shape "
                           f"{ys[-1].shape}")
    x, y = np.concatenate(xs), np.concatenate(ys) - layout.first_label
    if layout.keep_classes is not None:
        keep = (y >= 0) & (y < layout.keep_classes)
        x, y = x[keep], y[keep]
    return ImageArrays(np.ascontiguousarray(x), y)


def read_pickled(source: FileSource, layout: PickleLayout) -> DecodedDataset:
    """Decode a pickled-batch dataset (folder or archive) in one pass over its files."""
    wanted = set(layout.train_files + layout.test_files)
    if layout.meta_file:
        wanted.add(layout.meta_file)
    found: dict[str, bytes] = {}
    for name, data in source.iter_files(lambda n: PurePosixPath(n).name in wanted):
        base = PurePosixPath(name).name
        if base in found:
            raise NbsError(f"cannot read {source.path}: more than one file named {base!r}")
        found[base] = data
    missing = [f for f in layout.train_files + layout.test_files if f not in found]
    if missing:
        raise NbsError(f"cannot read {source.path}: missing {', '.join(missing)} ({layout.format} format)")
    batches = {f: unpickle(found[f], f"{source.path}:{f}") for f in layout.train_files + layout.test_files}
    train = _read_split(batches, layout.train_files, layout, source)
    test = _read_split(batches, layout.test_files, layout, source)
    return DecodedDataset(train, test, _class_names(found, layout, source, train), layout.format)


def _class_names(found: dict[str, bytes], layout: PickleLayout, source: FileSource,
                 train: ImageArrays) -> tuple[str, ...]:
    """Names from the meta file when present; CIFAR-10's are also known without it."""
    if layout.meta_file and layout.meta_file in found:
        meta = unpickle(found[layout.meta_file], f"{source.path}:{layout.meta_file}")
        names = meta.get(layout.meta_names_key or "")
        if names is not None:
            if not isinstance(names, (list, tuple)):
                raise NbsError(f"cannot read {source.path}:{layout.meta_file}: {layout.meta_names_key!r} is a "
                               f"{type(names).__name__}, not a list of names")
            return tuple(n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names)
    if layout is CIFAR10_LAYOUT:
        return CIFAR10_CLASSES
    n = layout.keep_classes or (int(train.y.max()) + 1 if len(train) else 0)
    return tuple(str(i) for i in range(n))
