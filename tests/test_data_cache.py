"""The decode-once cache and the data search order."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nasbench_stability import paths
from nasbench_stability.data import ImageArrays, load_arrays
from nasbench_stability.data import cache as cache_mod
from nasbench_stability.data.pickled import CIFAR10_CLASSES
from nasbench_stability.data.synthetic import random_images, write_cifar_python, write_image_folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NBS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBS_DATA", raising=False)
    return tmp_path / "home"


@pytest.fixture
def tiny_cifar(tmp_path):
    train, test = random_images(40, 32, 10, seed=1), random_images(20, 32, 10, seed=2)
    write_image_folder(tmp_path / "data", "cifar10-jpg", train, test, CIFAR10_CLASSES)
    return tmp_path / "data"


def count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = cache_mod.decode_dataset

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "decode_dataset", spy)
    return calls


def caches(home):
    return sorted((home / "datasets").glob("*.npz"))


def test_roundtrip_equal_and_decoded_once(home, tiny_cifar, monkeypatch):
    calls = count_decodes(monkeypatch)
    first = load_arrays("cifar10", tiny_cifar)
    second = load_arrays("cifar10", tiny_cifar)
    assert len(calls) == 1 and len(caches(home)) == 1
    for a, b in ((first.train, second.train), (first.test, second.test)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        assert b.x.dtype == np.uint8 and b.y.dtype == np.int64
    assert first.classes == second.classes == CIFAR10_CLASSES
    assert (first.format, first.source) == (second.format, second.source)
    assert second.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    assert second.std == pytest.approx((63.0 / 255, 62.1 / 255, 66.7 / 255))
    assert not list((home / "datasets").glob("*.tmp")), "temporary file left behind"


def test_changed_source_is_decoded_again(home, tiny_cifar, monkeypatch):
    calls = count_decodes(monkeypatch)
    load_arrays("cifar10", tiny_cifar)
    archive = tiny_cifar / "cifar10-jpg.tar.gz"
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_arrays("cifar10", tiny_cifar)
    assert len(calls) == 2 and len(caches(home)) == 2


def test_corrupt_cache_is_ignored_and_rewritten(home, tiny_cifar, monkeypatch):
    load_arrays("cifar10", tiny_cifar)
    (path,) = caches(home)
    path.write_bytes(path.read_bytes()[:1000])
    calls = count_decodes(monkeypatch)
    with pytest.warns(UserWarning, match="ignoring unreadable dataset cache"):
        again = load_arrays("cifar10", tiny_cifar)
    assert len(calls) == 1 and len(again.train) == 40
    load_arrays("cifar10", tiny_cifar)  # the rewritten cache is good
    assert len(calls) == 1


def test_cache_follows_nbs_home(home, tiny_cifar):
    load_arrays("cifar10", tiny_cifar)
    assert caches(home) and caches(home)[0].parent == paths.dataset_cache_dir()


def test_search_order_env_then_home(home, tmp_path, monkeypatch):
    """Without a root: NBS_DATA first, then NBS_HOME/datasets."""
    in_home = random_images(10, 32, 10, seed=3)
    write_cifar_python(home / "datasets", "cifar10", in_home, in_home)
    assert load_arrays("cifar10", cache=False).source.startswith(str(home))

    in_env = random_images(12, 32, 10, seed=4)
    write_cifar_python(tmp_path / "env", "cifar10", in_env, in_env)
    monkeypatch.setenv("NBS_DATA", str(tmp_path / "env"))
    got = load_arrays("cifar10", cache=False)
    np.testing.assert_array_equal(got.train.x, in_env.x)


def test_python_archive_preferred_over_image_tree(home, tmp_path):
    """The python archive keeps exact pixels and the order the official split indexes."""
    arrays = random_images(20, 32, 10, seed=5)
    write_image_folder(tmp_path, "cifar10-jpg", arrays, arrays, CIFAR10_CLASSES)
    write_cifar_python(tmp_path, "cifar10", arrays, arrays)
    assert load_arrays("cifar10", tmp_path, cache=False).format == "cifar10-python"


def test_a_cifar10_sized_cache_reloads_without_decoding(home, tmp_path, monkeypatch):
    """A full-size (50k + 10k) cache is reloaded from the cache, exactly, without decoding again (its speed
    against a decode is benchmarks/cache_reload.py's to measure)."""
    def big(n):  # cheap to make: pixels are the image index mod 256
        x = np.empty((n, 32, 32, 3), np.uint8)
        x[:] = (np.arange(n) % 256).astype(np.uint8)[:, None, None, None]
        return ImageArrays(x, np.arange(n, dtype=np.int64) % 10)

    big_train, big_test = big(50_000), big(10_000)
    monkeypatch.setattr(cache_mod, "decode_dataset", lambda spec, source, **_: cache_mod.DecodedDataset(
        big_train, big_test, CIFAR10_CLASSES, "image-folder"))
    write_image_folder(tmp_path / "data", "cifar10-jpg", random_images(10, 32, 10), random_images(10, 32, 10),
                       CIFAR10_CLASSES)
    load_arrays("cifar10", tmp_path / "data")

    def no_decode(*args, **kwargs):
        raise AssertionError("a cached dataset was decoded again")
    monkeypatch.setattr(cache_mod, "decode_dataset", no_decode)
    got = load_arrays("cifar10", tmp_path / "data")
    assert np.array_equal(got.train.x, big_train.x)  # (assert_array_equal takes seconds here)
    assert np.array_equal(got.test.y, big_test.y)
