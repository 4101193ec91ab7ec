"""Readers of the official on-disk formats, on small files written in those formats."""

from __future__ import annotations

import numpy as np
import pytest

from nasbench_stability.data import load_arrays
from nasbench_stability.data.pickled import CIFAR10_CLASSES
from nasbench_stability.data.synthetic import (
    random_images,
    write_cifar_python,
    write_image_folder,
    write_imagenet16,
)
from nasbench_stability.errors import ConfigError, MissingFileError, NbsError


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Keep caches and the data search path inside the test's folder."""
    monkeypatch.setenv("NBS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBS_DATA", raising=False)


def assert_same(a, b):
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "extracted"])
def test_cifar10_python_roundtrip(tmp_path, archive):
    train, test = random_images(50, 32, 10, seed=1), random_images(20, 32, 10, seed=2)
    path = write_cifar_python(tmp_path / "data", "cifar10", train, test, archive=archive)
    assert path.name == ("cifar-10-python.tar.gz" if archive else "cifar-10-batches-py")
    got = load_arrays("cifar10", tmp_path / "data", cache=False)
    assert_same(got.train, train)
    assert_same(got.test, test)
    assert got.classes == CIFAR10_CLASSES
    assert got.format == "cifar10-python"
    assert got.train.x.shape == (50, 32, 32, 3) and got.train.y.dtype == np.int64


def test_cifar10_root_may_be_the_archive_itself(tmp_path):
    train, test = random_images(10, 32, 10, seed=1), random_images(10, 32, 10, seed=2)
    path = write_cifar_python(tmp_path, "cifar10", train, test)
    assert_same(load_arrays("cifar10", path, cache=False).train, train)


def test_cifar100_python_roundtrip(tmp_path):
    train, test = random_images(200, 32, 100, seed=3), random_images(100, 32, 100, seed=4)
    write_cifar_python(tmp_path, "cifar100", train, test)
    got = load_arrays("cifar100", tmp_path, cache=False)
    assert_same(got.train, train)
    assert_same(got.test, test)
    assert got.num_classes == 100 and got.classes[7] == "class007"
    assert got.format == "cifar100-python"


def test_imagenet16_keeps_first_120_classes_zero_based(tmp_path):
    rng = np.random.default_rng(0)
    # raw 1-based ImageNet labels: every class 1..120 once, plus 30 from classes 121..1000
    labels_train = rng.permutation(np.concatenate([np.arange(1, 121), rng.integers(121, 1001, 30)]))
    labels_test = rng.permutation(np.concatenate([np.arange(1, 21), [121, 500, 999, 1000]]))
    x_train = rng.integers(0, 256, (len(labels_train), 16, 16, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (len(labels_test), 16, 16, 3), dtype=np.uint8)
    write_imagenet16(tmp_path, x_train, labels_train, x_test, labels_test)

    got = load_arrays("ImageNet16-120", tmp_path, cache=False)
    for arrays, x, labels in ((got.train, x_train, labels_train), (got.test, x_test, labels_test)):
        keep = labels <= 120
        np.testing.assert_array_equal(arrays.x, x[keep])
        np.testing.assert_array_equal(arrays.y, labels[keep] - 1)
    assert len(got.train) == 120 and len(got.test) == 20
    assert got.train.x.shape[1:] == (16, 16, 3) and got.num_classes == 120
    assert got.format == "imagenet16-pickle"


@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "folder"])
def test_image_folder_sorted_classes_and_lossless_pixels(tmp_path, archive):
    train, test = random_images(30, 32, 10, seed=5), random_images(10, 32, 10, seed=6)
    write_image_folder(tmp_path, "cifar10-jpg", train, test, CIFAR10_CLASSES, archive=archive)
    got = load_arrays("cifar10", tmp_path, cache=False)
    assert got.format == "image-folder" and got.classes == CIFAR10_CLASSES
    # the reader orders by (class, file name); the writer numbered files in input order
    order = np.lexsort((np.arange(len(train)), train.y))
    np.testing.assert_array_equal(got.train.x, train.x[order])
    np.testing.assert_array_equal(got.train.y, train.y[order])
    assert np.bincount(got.test.y).tolist() == [1] * 10


def test_jpeg_tree_decodes_close_to_source(tmp_path):
    """JPEG is lossy, so use flat-colored images, which it reproduces to within a few levels."""
    def flat(n, seed):
        a = random_images(n, 32, 10, seed=seed)
        return type(a)(np.ascontiguousarray(np.broadcast_to(a.x[:, :1, :1, :], a.x.shape)), a.y)

    train, test = flat(20, 7), flat(10, 8)
    write_image_folder(tmp_path, "cifar10-jpg", train, test, CIFAR10_CLASSES, suffix=".jpg")
    got = load_arrays("cifar10", tmp_path, cache=False)
    order = np.lexsort((np.arange(len(train)), train.y))
    diff = np.abs(got.train.x.astype(int) - train.x[order].astype(int))
    assert got.train.x.dtype == np.uint8 and diff.max() <= 8, diff.max()


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar11'.*cifar10, cifar100, ImageNet16-120"):
        load_arrays("cifar11")


def test_dataset_names_are_case_insensitive(tmp_path):
    write_cifar_python(tmp_path, "cifar10", random_images(10, 32, 10), random_images(10, 32, 10))
    assert load_arrays("CIFAR10", tmp_path, cache=False).name == "cifar10"


def test_missing_dataset_is_a_one_line_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError) as e:
        load_arrays("cifar100", tmp_path / "nowhere")
    assert "cifar-100-python.tar.gz" in str(e.value) and "\n" not in str(e.value)


def test_unreadable_archive(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"this is not a tarball")
    with pytest.raises(NbsError, match="cannot read archive"):
        load_arrays("cifar10", tmp_path, cache=False)


def test_truncated_archive(tmp_path):
    path = write_cifar_python(tmp_path, "cifar10", random_images(200, 32, 10), random_images(10, 32, 10))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(NbsError, match="cannot read archive"):
        load_arrays("cifar10", tmp_path, cache=False)


def test_wrong_dataset_in_archive(tmp_path):
    path = write_cifar_python(tmp_path, "cifar100", random_images(100, 32, 100), random_images(10, 32, 100))
    with pytest.raises(NbsError, match="expected cifar10-python or image-folder"):
        load_arrays("cifar10", path, cache=False)
