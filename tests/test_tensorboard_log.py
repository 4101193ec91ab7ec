"""`nbs run --log tensorboard`: per-run event files that TensorBoard's own reader reads back as the records."""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import METHOD_RUN_ARGS
from files_helpers import copy_run
from nasbench_stability.space.ops import EDGES, NUM_OPS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EDGE_TAGS = ["alpha/edge_0to1", "alpha/edge_0to2", "alpha/edge_1to2", "alpha/edge_0to3", "alpha/edge_1to3",
             "alpha/edge_2to3"]   # EDGES' order


@pytest.fixture(scope="module")
def packed_logged_runs(cli, tmp_path_factory):
    """`nbs run --log tensorboard` of two darts-v1 seeds packed, 2 epochs, the Hessian at epoch 2."""
    out = tmp_path_factory.mktemp("tensorboard-runs")
    done = cli("run", "--method", "darts-v1", "--seeds", "2", "--pack", "--out", str(out), *METHOD_RUN_ARGS,
               "--hessian-every", "2", "--set", "hessian_batches=1", "--log", "tensorboard")
    assert done.returncode == 0, done.stderr
    return out


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"),
                              size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    return events


def _scalars(events, tag) -> dict[int, float]:
    steps = [(e.step, e.value) for e in events.Scalars(tag)]
    assert len({s for s, _ in steps}) == len(steps), f"{tag}: an epoch logged twice: {steps}"
    return dict(steps)


@pytest.mark.parametrize("seed", [0, 1])
def test_event_files_hold_the_records_of_every_epoch(packed_logged_runs, seed):
    """Two seeds packed into one model (what a CUDA run does by default): each has its own event files."""
    run_dir = packed_logged_runs / f"darts-v1-cifar10-seed{seed}"
    records = pd.read_parquet(run_dir / "records").sort_values("epoch").set_index("epoch")
    assert set(records["pack_size"]) == {2}
    events = _events(run_dir)
    epochs = list(records.index)
    assert epochs == [1, 2]

    bench = [c for c in records if c.startswith("bench_") and c != "bench_index"]
    assert len(bench) >= 12   # every dataset × split × 12/200 epochs of the table
    per_epoch = {f"bench/{c[len('bench_'):]}": c for c in bench} | {
        "supernet/train_loss": "train_loss", "supernet/valid_loss": "valid_loss", "supernet/valid_acc": "valid_acc",
        "gradient_correlation/mean": "gc_mean", "gradient_correlation/cos_mean": "gc_cos_mean"}
    for tag, column in per_epoch.items():
        assert _scalars(events, tag) == pytest.approx(records[column].to_dict(), rel=1e-6), tag
    # the Hessian was measured at epoch 2 only: its NaN of epoch 1 is left out, not logged
    assert np.isnan(records.loc[1, "hessian_max"])
    for tag, column in {"hessian/max": "hessian_max", "hessian/min": "hessian_min"}.items():
        assert _scalars(events, tag) == pytest.approx({2: records.loc[2, column]}, rel=1e-6)
    assert [e.step for e in events.Histograms("hessian/spectrum")] == [2]
    assert events.Histograms("hessian/spectrum")[0].histogram_value.max == pytest.approx(
        records.loc[2, "hessian_max"], rel=1e-6)

    for epoch in epochs:
        weights = np.asarray(records.loc[epoch, "op_weights"]).reshape(len(EDGES), NUM_OPS)
        for edge, tag in enumerate(EDGE_TAGS):   # one histogram of α per edge and epoch
            hist = next(e.histogram_value for e in events.Histograms(tag) if e.step == epoch)
            assert (hist.num, hist.min, hist.max) == (NUM_OPS, pytest.approx(weights[edge].min()),
                                                      pytest.approx(weights[edge].max()))
            assert hist.sum == pytest.approx(weights[edge].sum())
        # the α image: one cell per (edge, op), each edge scaled to its largest weight
        image = next(e for e in events.Images("alpha/weights") if e.step == epoch)
        pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("L"), dtype=float)
        assert pixels.shape[0] % len(EDGES) == 0 and pixels.shape[1] % NUM_OPS == 0
        cells = pixels[::pixels.shape[0] // len(EDGES), ::pixels.shape[1] // NUM_OPS]
        assert cells == pytest.approx(255 * weights / weights.max(axis=1, keepdims=True), abs=1.01)
    assert sorted(e.step for e in events.Images("alpha/weights")) == epochs


def test_a_resumed_run_logs_each_epoch_once_with_its_record(cli, interrupted_run, tmp_path):
    """A run killed after its epoch-2 checkpoint may have logged epoch 3 already; the resumed run
    recomputes epoch 3, and TensorBoard's reader shows only the new value."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = copy_run(interrupted_run, tmp_path) / interrupted_run.name
    done = pd.read_parquet(run_dir / "records").set_index("epoch")["bench_cifar10_test_200"]
    with SummaryWriter(str(run_dir / "tensorboard")) as killed:   # what the killed run had logged
        for epoch, value in [*done.items(), (3, -1.0)]:
            killed.add_scalar("bench/cifar10_test_200", value, epoch)

    out = cli("run", "--method", "darts-v1", "--epochs", "3", "--out", str(tmp_path), *METHOD_RUN_ARGS,
              "--log", "tensorboard")
    assert out.returncode == 0, out.stderr
    records = pd.read_parquet(run_dir / "records").set_index("epoch")
    assert list(records.index) == [1, 2, 3]
    logged = _scalars(_events(run_dir), "bench/cifar10_test_200")
    assert logged == pytest.approx(records["bench_cifar10_test_200"].to_dict(), rel=1e-6)
    assert logged[3] != -1.0
    assert [e.step for e in _events(run_dir).Images("alpha/weights")] == [3]   # only the epoch run here


def test_log_tensorboard_without_the_package_is_one_line_before_any_work(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)   # as if not installed
    out = cli("run", "--method", "darts-v1", "--out", str(tmp_path / "runs"), *METHOD_RUN_ARGS, "--log", "tensorboard")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "needs the tensorboard package" in out.stderr
    assert not (tmp_path / "runs").exists()
    out = cli("run", "--method", "darts-v1", "--out", str(tmp_path / "runs"), *METHOD_RUN_ARGS, "--log", "wandb")
    assert out.returncode == 2 and "'wandb' is not one of" in out.stderr


def test_a_file_where_the_log_folder_belongs_is_one_line_before_any_seed_runs(cli, tmp_path):
    """It was found at the first epoch's log: a long traceback, and a run left 'running' with no process."""
    blocked = tmp_path / "darts-v1-cifar10-seed1"
    blocked.mkdir()
    (blocked / "tensorboard").write_text("a user's file\n")
    out = cli("run", "--method", "darts-v1", "--seeds", "2", "--out", str(tmp_path), *METHOD_RUN_ARGS,
              "--log", "tensorboard")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"--log tensorboard folder {blocked / 'tensorboard'} is a file, not a folder" in out.stderr
    # seed 0 did not run first, and seed 1's folder holds only the user's file: no status, config or lock
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked.name]
    assert [p.name for p in blocked.iterdir()] == ["tensorboard"]
    assert (blocked / "tensorboard").read_text() == "a user's file\n"


def test_a_run_started_directly_checks_its_log_folder_before_writing(bench_path, tmp_path):
    """The check is the run's own too (a sweep's worker starts runs without `nbs run`'s checks)."""
    from nasbench_stability.bench.table import Benchmark
    from nasbench_stability.destinations import WriteError
    from nasbench_stability.engine.config import resolve_config
    from nasbench_stability.engine.run import Run

    config = resolve_config("darts-v1", preset="smoke", device="cpu")
    run_dir = tmp_path / config.run_name
    run_dir.mkdir()
    (run_dir / "tensorboard").write_text("a user's file\n")
    with pytest.raises(WriteError, match="is a file, not a folder"):
        Run(config, tmp_path, benchmark=Benchmark.load(bench_path), progress=False, epoch_log="tensorboard").execute()
    assert [p.name for p in run_dir.iterdir()] == ["tensorboard"]


def test_an_ended_run_is_answered_as_ended_whatever_is_at_its_log_folder(cli, tmp_path):
    """A run that has ended logs nothing more: re-running it with --log tensorboard is "already finished",
    not a refusal over a folder it will never write (a user's file there stays as it is)."""
    out = cli("run", "--method", "darts-v1", "--epochs", "1", "--out", str(tmp_path), *METHOD_RUN_ARGS)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "darts-v1-cifar10-seed0"
    (run_dir / "tensorboard").write_text("a user's file\n")
    again = cli("run", "--method", "darts-v1", "--epochs", "1", "--out", str(tmp_path), *METHOD_RUN_ARGS,
                "--log", "tensorboard")
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout + again.stderr
    assert (run_dir / "tensorboard").read_text() == "a user's file\n"
    # a second seed that has not run is still checked before any work
    (tmp_path / "darts-v1-cifar10-seed1").mkdir()
    (tmp_path / "darts-v1-cifar10-seed1" / "tensorboard").write_text("a user's file\n")
    both = cli("run", "--method", "darts-v1", "--epochs", "1", "--seeds", "2", "--out", str(tmp_path),
               *METHOD_RUN_ARGS, "--log", "tensorboard")
    assert both.returncode == 2 and "is a file, not a folder" in both.stderr, both.stderr
