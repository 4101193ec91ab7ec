"""Search splits: seeded class-balanced halves, NB201's official split file, the policy choice."""

from __future__ import annotations

import numpy as np
import pytest

from nasbench_stability import paths
from nasbench_stability.data import balanced_order, read_official_split, search_split, split_for
from nasbench_stability.data import splits
from nasbench_stability.data.containers import DatasetArrays
from nasbench_stability.data.synthetic import random_images
from nasbench_stability.errors import ConfigError, MissingFileError

CIFAR_Y = np.repeat(np.arange(10), 5000)[np.random.default_rng(0).permutation(50_000)]


def official_split_file():
    shared = paths.shared_dir()
    path = shared / "nb201" / "splits" / "cifar-split.txt" if shared else None
    if path is None or not path.is_file():
        pytest.skip("shared/nb201/splits/cifar-split.txt not available")
    return path


def test_search_split_is_exactly_balanced_and_disjoint():
    train, valid = search_split(CIFAR_Y, seed=0)
    assert len(train) == len(valid) == 25_000
    assert np.bincount(CIFAR_Y[train]).tolist() == [2500] * 10
    assert np.bincount(CIFAR_Y[valid]).tolist() == [2500] * 10
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(50_000))


def test_search_split_depends_on_the_seed_only():
    a, b, c = search_split(CIFAR_Y, 1), search_split(CIFAR_Y, 1), search_split(CIFAR_Y, 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[0]), np.sort(c[0]))


def test_search_split_fraction_and_uneven_classes():
    y = np.array([0] * 7 + [1] * 4 + [2] * 1)
    train, valid = search_split(y, seed=3, fraction=0.5)
    assert np.bincount(y[train], minlength=3).tolist() == [4, 2, 0]  # round-half-even: 3.5 -> 4, 0.5 -> 0
    with pytest.raises(ConfigError):
        search_split(y, seed=0, fraction=1.0)


def test_prefixes_are_class_balanced():
    train, _ = search_split(CIFAR_Y, seed=0)
    assert np.bincount(CIFAR_Y[train[:512]]).tolist() == [52, 52] + [51] * 8
    grouped = np.flatnonzero(CIFAR_Y == 3)  # one class only, in ascending order
    idx = np.concatenate([grouped[:5], np.flatnonzero(CIFAR_Y == 1)[:5]])
    out = balanced_order(idx, CIFAR_Y)
    assert CIFAR_Y[out].tolist() == [1, 3] * 5
    assert out[1::2].tolist() == grouped[:5].tolist(), "order within a class is kept"


def test_official_split_file_parses_to_disjoint_halves():
    split = read_official_split(official_split_file())
    train, valid = split["train"], split["valid"]
    assert train.dtype == np.int64 and len(train) == len(valid) == 25_000
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(50_000))
    assert train[:3].tolist() == [0, 5, 7]


def test_read_official_split_errors(tmp_path):
    with pytest.raises(MissingFileError):
        read_official_split(tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_text('{"train": ["int", ["0", "x"]]}')
    with pytest.raises(Exception, match="cannot parse split file"):
        read_official_split(tmp_path / "bad.txt")


def fake_arrays(fmt: str, n: int = 50_000) -> DatasetArrays:
    test = random_images(10, 32, 10)
    train = type(test)(np.zeros((n, 1, 1, 3), np.uint8), CIFAR_Y[:n].copy())
    return DatasetArrays("cifar10", train, test, tuple("abcdefghij"), (0.5,) * 3, (0.25,) * 3, "/x", fmt)


def test_auto_policy_uses_official_split_only_for_python_archive():
    split_file = official_split_file()
    official = split_for(fake_arrays("cifar10-python"), seed=0, split_file=split_file)
    assert official.description.startswith("official NB201 split")
    assert set(official.train.tolist()) == set(read_official_split(split_file)["train"].tolist())
    assert np.bincount(CIFAR_Y[official.train[:100]]).tolist() == [10] * 10

    seeded = split_for(fake_arrays("image-folder"), seed=0)
    assert seeded.description.startswith("seeded class-balanced 50/50 split (seed=0)")
    assert seeded.description.endswith("archive, not cifar10 image-folder)")
    small = split_for(fake_arrays("cifar10-python", n=200), seed=0, split_file=split_file)
    assert "indexes 50000 images, the data has 200" in small.description
    forced = split_for(fake_arrays("cifar10-python"), seed=0, policy="balanced")
    assert forced.description == "seeded class-balanced 50/50 split (seed=0)"


def test_official_policy_refuses_reordered_data_and_unknown_policy():
    with pytest.raises(ConfigError, match="use split policy 'balanced'"):
        split_for(fake_arrays("image-folder"), seed=0, policy="official")
    with pytest.raises(ConfigError, match="unknown split policy"):
        split_for(fake_arrays("image-folder"), seed=0, policy="random")


def test_missing_split_file(monkeypatch):
    monkeypatch.setattr(splits, "find_official_split", lambda arrays: None)
    with pytest.raises(MissingFileError, match="cifar-split.txt not found"):
        split_for(fake_arrays("cifar10-python"), seed=0, policy="official")
    auto = split_for(fake_arrays("cifar10-python"), seed=0)
    assert auto.description.endswith("(cifar-split.txt not found)")


@pytest.mark.parametrize("name,file,n_test,n_valid", [
    ("cifar100", "cifar100-test-split.txt", 10_000, 5_000),
    ("ImageNet16-120", "imagenet-16-120-test-split.txt", 6_000, 3_000),
])
def test_cifar100_and_imagenet16_use_nb201_protocol_train_plus_xvalid_of_test(name, file, n_test, n_valid, tmp_path):
    """NB201 (xautodl get_nas_search_loaders): w on the whole train set, α on the test set's xvalid half."""
    shared = paths.shared_dir()
    split_file = shared / "nb201" / "splits" / file if shared else None
    if split_file is None or not split_file.is_file():
        pytest.skip(f"shared/nb201/splits/{file} not available")
    rng = np.random.default_rng(0)
    n_classes = 100 if name == "cifar100" else 120
    small = type(random_images(1, 8, 1))
    train = small(np.zeros((1000, 1, 1, 3), np.uint8), rng.integers(0, n_classes, 1000))
    test = small(np.zeros((n_test, 1, 1, 3), np.uint8), rng.integers(0, n_classes, n_test))
    arrays = DatasetArrays(name, train, test, tuple(map(str, range(n_classes))), (0.5,) * 3, (0.25,) * 3, "/x", "fmt")
    split = split_for(arrays, seed=0, split_file=split_file)
    assert split.valid_from == "test" and "xvalid" in split.description
    assert np.array_equal(np.sort(split.train), np.arange(1000))
    assert np.array_equal(np.sort(split.valid), np.sort(read_official_split(split_file)["xvalid"]))
    assert len(split.valid) == n_valid

    # a test set the file does not fit (e.g. a subset of the data): auto falls back, official refuses
    tiny = DatasetArrays(name, train, small(test.x[:100], test.y[:100]), arrays.classes, (0.5,) * 3, (0.25,) * 3,
                         "/x", "fmt")
    fallback = split_for(tiny, seed=0, split_file=split_file)
    assert fallback.valid_from == "train" and "balanced" in fallback.description
    with pytest.raises(ConfigError):
        split_for(tiny, seed=0, policy="official", split_file=split_file)
