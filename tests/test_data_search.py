"""search_data on small official-format data, and the real CIFAR-10 JPEG tarball from shared/.

The real-data tests use the default dataset cache (``NBS_HOME``), which the rest of the suite
shares: the first run decodes the tarball (~10 s on 2 cores), later runs reload it in < 1 s.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from nasbench_stability import paths
from nasbench_stability.data import BatchStream, load_arrays, search_data
from nasbench_stability.data import cache as cache_mod
from nasbench_stability.data.synthetic import random_images, write_cifar_python
from nasbench_stability.errors import ConfigError


def shared_datasets():
    shared = paths.shared_dir()
    if shared is None or not (shared / "datasets" / "cifar10-jpg.tar.gz").is_file():
        pytest.skip("shared/datasets/cifar10-jpg.tar.gz not available")
    return shared / "datasets"


@pytest.fixture
def tiny_python_cifar(tmp_path, monkeypatch):
    monkeypatch.setenv("NBS_HOME", str(tmp_path / "home"))
    train, test = random_images(200, 32, 10, seed=1), random_images(50, 32, 10, seed=2)
    write_cifar_python(tmp_path / "data", "cifar10", train, test)
    return tmp_path / "data", train, test


def test_search_data_subset_is_a_balanced_prefix(tiny_python_cifar):
    root, train, test = tiny_python_cifar
    full = search_data("cifar10", root, seed=0, split_policy="balanced")
    small = search_data("cifar10", root, seed=0, subset=30, split_policy="balanced")
    assert (len(full.train), len(full.valid), len(full.test)) == (100, 100, 50)
    assert (len(small.train), len(small.valid), len(small.test)) == (30, 30, 30)
    assert torch.equal(small.train.x, full.train.x[:30]) and torch.equal(small.valid.y, full.valid.y[:30])
    for part in (small.train, small.valid, small.test):
        assert torch.bincount(part.y, minlength=10).tolist() == [3] * 10
    assert small.num_classes == 10 and small.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    assert small.split_source == "seeded class-balanced 50/50 split (seed=0)"
    assert "cifar10-python" in small.data_source
    # train and valid are disjoint images of the training set
    rows = {bytes(r) for r in full.train.x.flatten(1).numpy()}
    assert not rows & {bytes(r) for r in full.valid.x.flatten(1).numpy()}


def test_search_data_options(tiny_python_cifar):
    root, *_ = tiny_python_cifar
    assert search_data("cifar10", root, include_test=False).test is None
    with pytest.raises(ConfigError):
        search_data("cifar10", root, subset=0)


def test_real_cifar10_jpg_tarball(monkeypatch):
    """The shared tarball: 50k/10k, 5,000 per class, CIFAR-10's channel means; reloaded from the cache
    (benchmarks/cache_reload.py measures how much faster that is than decoding)."""
    root = shared_datasets()
    arrays = load_arrays("cifar10", root)
    assert arrays.train.x.shape == (50_000, 32, 32, 3) and arrays.test.x.shape == (10_000, 32, 32, 3)
    assert np.bincount(arrays.train.y).tolist() == [5000] * 10
    assert np.bincount(arrays.test.y).tolist() == [1000] * 10
    assert arrays.classes[0] == "airplane" and arrays.classes[-1] == "truck"
    mean = arrays.train.x.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=0.002)

    def no_decode(*args, **kwargs):
        raise AssertionError("a cached dataset was decoded again")
    monkeypatch.setattr(cache_mod, "decode_dataset", no_decode)
    again = load_arrays("cifar10", root)
    assert np.array_equal(again.train.y, arrays.train.y) and np.array_equal(again.test.x[:100], arrays.test.x[:100])


def test_real_cifar10_smoke_search_data():
    root = shared_datasets()
    data = search_data("cifar10", root, seed=0, subset=512)
    assert len(data.train) == len(data.valid) == len(data.test) == 512
    assert data.split_source.startswith("seeded class-balanced")  # JPEG tree: original order lost
    counts = torch.bincount(data.train.y, minlength=10)
    assert counts.min() >= 51 and counts.max() <= 52
    batches = BatchStream(data.train, 64, seed=0, stream="train", augment=True, mean=data.mean, std=data.std)
    x, y = next(iter(batches.epoch(0)))
    assert x.shape == (64, 3, 32, 32) and abs(float(x.mean())) < 0.5


def test_cifar100_search_valid_half_comes_from_the_test_set_xvalid(tmp_path, monkeypatch):
    """With NB201's cifar100-test-split.txt beside the data, α's images are the test set's xvalid half."""
    import json

    monkeypatch.setenv("NBS_HOME", str(tmp_path / "home"))
    train, test = random_images(120, 32, 100, seed=3), random_images(40, 32, 100, seed=4)
    write_cifar_python(tmp_path / "data", "cifar100", train, test)
    xvalid = list(range(1, 40, 2))
    (tmp_path / "data" / "cifar100-test-split.txt").write_text(json.dumps(
        {"xvalid": ["int", [str(i) for i in xvalid]], "xtest": ["int", [str(i) for i in range(0, 40, 2)]]}))
    data = search_data("cifar100", tmp_path / "data", seed=0)
    assert "xvalid" in data.split_source
    assert len(data.train) == 120 and len(data.valid) == 20
    got = {bytes(img.numpy().tobytes()) for img in data.valid.x}
    want = {bytes(torch.from_numpy(test.x[i]).permute(2, 0, 1).contiguous().numpy().tobytes()) for i in xvalid}
    assert got == want
