"""Files nbs reads but did not write itself: no code runs from them, and damage is one line.

A crafted ``checkpoint.pt`` (a pickle whose ``__reduce__`` creates a marker file) placed in a run
directory must neither create the marker on ``nbs run`` nor on ``nbs report --rank-cells``.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from files_helpers import RUN_ARGS, RUN_NAME, copy_run, nbs_call, snapshot
from nasbench_stability.engine.checkpoint import load_checkpoint
from nasbench_stability.errors import CheckpointError
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
