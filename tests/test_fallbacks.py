"""A first GPU must not kill a run (engine/fallback.py), and a pack holds one copy of its seeds' data.

The failures a real device can raise (a CUDA-graph capture error, out of memory at K packed seeds, an op
unsupported under vmap) are forced on CPU by monkeypatching the step (CPU has no graphs: a fake
``graphed_step`` stands in for them). Each failing run must finish with exactly the records of the
fallback path run alone (timing columns aside; ``exec_path`` says which path ran), warn once per
fallback, and a plain bug must still surface. Runs are darts-v1 at the smoke preset, one step an epoch.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nasbench_stability.cli.main import main
from nasbench_stability.data import search as search_module
from nasbench_stability.data.pipeline import DeviceSplit
from nasbench_stability.engine import packed_run
from nasbench_stability.engine import run as run_module
from nasbench_stability.engine.executor import run_seeds
from nasbench_stability.engine.fallback import GRAPH, MEMORY, VMAP, Failure, FallbackWarning, describe, split_pack
from nasbench_stability.engine.graphs import GraphCaptureError, GraphedStep
from nasbench_stability.engine.memory import OutOfMemoryError
from nasbench_stability.methods.gradient.darts_family import DartsFamily

from packed_helpers import SEEDS, SMALL, assert_records_close, records, run_dir, status

METHOD, EPOCHS = "darts-v1", 3
OOM_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total capacity)"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, its module-scoped reference runs included: float sums depend on the thread count,
    and the runs that fell back are compared exactly with the references."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(bench_path, cifar_root, nbs_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBS_HOME", str(nbs_home))
        yield {"benchmark_path": bench_path, "data_root": cifar_root, "home": nbs_home}


def search(data, out: Path, *, pack: bool, seeds=SEEDS, cuda_graphs: bool = True, log=None):
    return run_seeds(METHOD, list(seeds), preset="smoke", epochs=EPOCHS, device="cpu", out=out,
                     overrides={**SMALL, "gc_every": "0"}, data_root=data["data_root"],
                     benchmark_path=data["benchmark_path"], progress=False, pack=pack, cuda_graphs=cuda_graphs,
                     log=log or (lambda line: None))


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def references(data, tmp_path_factory):
    """The fallback paths run alone: seeds 0-2 solo, packed, seeds 0-1 packed, and packed for epoch 1 then
    resumed solo (a stop from the log callback right after seed 2's first checkpoint)."""
    root = tmp_path_factory.mktemp("references")
    search(data, root / "solo", pack=False)
    search(data, root / "packed", pack=True)
    search(data, root / "pair", pack=True, seeds=[0, 1])

    def stop(line: str) -> None:
        if re.search(r"seed2 epoch 1/3", line):
            raise _Stop(line)

    with pytest.raises(_Stop):
        search(data, root / "packed-then-solo", pack=True, log=stop)
    search(data, root / "packed-then-solo", pack=False)
    return root


def assert_same_records(out: Path, reference: Path, seeds, paths: list[str], pack_sizes: list[int]) -> None:
    """Every seed finished with the reference's records, bit for bit (timing aside), ``exec_path`` as given."""
    for s in seeds:
        rd = run_dir(out, METHOD, s)
        assert status(rd)["state"] == "finished" and status(rd)["epochs_done"] == EPOCHS
        got, want = records(rd), records(run_dir(reference, METHOD, s))
        assert got.exec_path.tolist() == paths, s
        assert got.pack_size.tolist() == pack_sizes, s
        assert_records_close(got.drop(columns="exec_path"), want.drop(columns="exec_path"), exact=True,
                             what=f"seed {s}")


def fallback_lines(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]


# ---- failures, forced ------------------------------------------------------------------------------
def fake_graphs(monkeypatch, error: BaseException, at_epoch: int) -> None:
    """``graphed_step`` as on a GPU whose graphs fail once: its steps are the eager step (what a replay
    computes), and the first one of ``at_epoch`` (0-based) raises ``error`` after it was taken, leaving the
    state partly updated, as a capture after the eager warm-up steps does."""
    left = [error]

    def graphed_step(method, enabled=True):
        if not enabled:
            return method.step

        def step(batches, epoch, index, measure_gc):
            stats = method.step(batches, epoch, index, measure_gc)
            if epoch == at_epoch and left:
                raise left.pop()
            return stats
        return step

    monkeypatch.setattr(run_module, "graphed_step", graphed_step)
    monkeypatch.setattr(packed_run, "graphed_step", graphed_step)


def failing_step(monkeypatch, error, *, when) -> None:
    """darts-v1's step raises ``error()`` after it was taken wherever ``when(method, epoch)`` says."""
    real = DartsFamily.step

    def step(self, batches, epoch, index, measure_gc):
        stats = real(self, batches, epoch, index, measure_gc)
        if when(self, epoch):
            raise error()
        return stats

    monkeypatch.setattr(DartsFamily, "step", step)


def capture_error() -> GraphCaptureError:
    return GraphCaptureError("CUDA graph capture of the DartsFamily step failed (operation not permitted when "
                             "stream is capturing)")


@pytest.mark.parametrize("error,needle", [
    (capture_error, "CUDA graph capture of the DartsFamily step failed"),
    (lambda: torch.cuda.OutOfMemoryError(OOM_TEXT), "out of memory (CUDA out of memory. Tried to allocate 2.00 GiB"),
], ids=["capture", "out-of-memory"])
def test_a_solo_run_whose_graphs_fail_restarts_the_epoch_eagerly(data, references, monkeypatch, tmp_path,
                                                                   error, needle):
    """Epoch 1 replays "graphs"; epoch 2's first step is taken, then fails: the epoch starts again from the
    checkpoint, eagerly, and the run ends with the records of a run that was eager throughout."""
    fake_graphs(monkeypatch, error(), at_epoch=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [result] = search(data, tmp_path, pack=False, seeds=[0])
    assert result.state == "finished"
    assert_same_records(tmp_path, references / "solo", [0], ["graph", "eager", "eager"], [1, 1, 1])
    [line] = fallback_lines(caught)
    assert line.startswith(f"{METHOD}-cifar10-seed0: {needle}") and "in epoch 2/3" in line, line
    assert "restarting the epoch with eager steps" in line


def test_a_pack_whose_graphs_fail_goes_on_eagerly_with_one_warning_line(data, references, monkeypatch, tmp_path):
    """`nbs run --pack` (CUDA graphs on, the default): epoch 2 fails in its first packed step; the pack
    restarts it from the seeds' checkpoints with eager steps. One warning line on stderr, exit 0."""
    fake_graphs(monkeypatch, capture_error(), at_epoch=1)
    sets = [a for k, v in {**SMALL, "gc_every": "0"}.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, [
        "run", "--method", METHOD, "--seeds", "3", "--pack", "--device", "cpu", "--preset", "smoke", "--epochs",
        str(EPOCHS), "--quiet", "--out", str(tmp_path), "--benchmark", str(data["benchmark_path"]),
        "--data-root", str(data["data_root"]), *sets], env={"NBS_HOME": str(data["home"])})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("nbs: warning: darts-v1-cifar10 seeds 0, 1, 2 (3 packed): CUDA graph capture"), line
    assert "in epoch 2/3; restarting the epoch with eager steps" in line
    assert_same_records(tmp_path, references / "packed", SEEDS, ["graph", "eager", "eager"], [3, 3, 3])


def test_out_of_memory_at_three_seeds_goes_on_as_a_pack_of_two_and_one_solo(data, references, monkeypatch,
                                                                            tmp_path, recwarn):
    """The packed step fails (after it was taken) whenever it holds more than 2 seeds: from epoch 1 seeds 0
    and 1 run as a pack and seed 2 solo, exactly as those runs alone."""
    failing_step(monkeypatch, lambda: torch.cuda.OutOfMemoryError(OOM_TEXT),
                 when=lambda m, epoch: (m.pack_size or 1) > 2)
    results = search(data, tmp_path, pack=True)
    assert [r.state for r in results] == ["finished"] * 3
    assert_same_records(tmp_path, references / "pair", [0, 1], ["eager"] * EPOCHS, [2, 2, 2])
    assert_same_records(tmp_path, references / "solo", [2], ["eager"] * EPOCHS, [1, 1, 1])
    [line] = fallback_lines(recwarn)
    assert line.startswith("darts-v1-cifar10 seeds 0, 1, 2 (3 packed): out of memory (CUDA out of memory."), line
    assert "in epoch 1/3; restarting the epoch with a pack of seeds 0, 1 and seed 2 solo" in line


def test_out_of_memory_at_every_pack_size_ends_solo_with_a_warning_per_fallback(data, references, monkeypatch,
                                                                                tmp_path, recwarn):
    failing_step(monkeypatch, lambda: torch.cuda.OutOfMemoryError(OOM_TEXT), when=lambda m, epoch: m.pack_size)
    assert [r.state for r in search(data, tmp_path, pack=True)] == ["finished"] * 3
    assert_same_records(tmp_path, references / "solo", SEEDS, ["eager"] * EPOCHS, [1, 1, 1])
    lines = fallback_lines(recwarn)
    assert len(lines) == 2, lines
    assert "(3 packed)" in lines[0] and "a pack of seeds 0, 1 and seed 2 solo" in lines[0]
    assert lines[1].startswith("darts-v1-cifar10 seeds 0, 1 (2 packed): out of memory") and "each seed solo" in lines[1]


def test_an_op_unsupported_under_vmap_in_the_evaluation_sends_every_seed_solo(data, references, monkeypatch,
                                                                              tmp_path, recwarn):
    """torch's own vmap error, raised in the packed evaluation of epoch 1: after the packed steps were
    unpacked into the seeds, so only the rewind to a fresh build gives the solo runs' records."""
    real = DartsFamily.logits
    left = [True]

    def logits(self, x):
        if self.pack_size is not None and left:
            left.pop()
            torch.func.vmap(lambda t: t.sum().item())(x)   # what torch raises for .item() under vmap
        return real(self, x)

    monkeypatch.setattr(DartsFamily, "logits", logits)
    assert [r.state for r in search(data, tmp_path, pack=True)] == ["finished"] * 3
    assert_same_records(tmp_path, references / "solo", SEEDS, ["eager"] * EPOCHS, [1, 1, 1])
    [line] = fallback_lines(recwarn)
    assert "an op unsupported under vmap (vmap: It looks like you're calling .item()" in line, line
    assert "in epoch 1/3; restarting the epoch with each seed solo" in line


def test_a_not_implemented_packed_step_in_epoch_2_goes_on_solo_from_the_checkpoints(data, references, monkeypatch,
                                                                                  tmp_path, recwarn):
    failing_step(monkeypatch, lambda: NotImplementedError("aten::foo has no batching rule"),
                 when=lambda m, epoch: m.pack_size and epoch == 1)
    assert [r.state for r in search(data, tmp_path, pack=True)] == ["finished"] * 3
    assert_same_records(tmp_path, references / "packed-then-solo", SEEDS, ["eager"] * EPOCHS, [3, 1, 1])
    [line] = fallback_lines(recwarn)
    assert "an op unsupported under vmap (aten::foo has no batching rule) in epoch 2/3" in line, line


@pytest.mark.parametrize("pack,error,raised", [
    (True, lambda: ValueError("a bug in the step"), ValueError),
    (True, lambda: RuntimeError("CUDA error: an illegal memory access was encountered"), RuntimeError),
    (False, lambda: torch.cuda.OutOfMemoryError(OOM_TEXT), OutOfMemoryError),   # solo eager: nothing smaller
    (False, lambda: NotImplementedError("not written yet"), NotImplementedError),
], ids=["bug-packed", "cuda-error-packed", "oom-solo-eager", "not-implemented-solo"])
def test_other_failures_surface(data, monkeypatch, tmp_path, recwarn, pack, error, raised):
    failing_step(monkeypatch, error, when=lambda m, epoch: True)
    with pytest.raises(raised):
        search(data, tmp_path, pack=pack)
    assert fallback_lines(recwarn) == []


def test_a_failed_capture_raises_graph_capture_error_from_the_torch_error(monkeypatch):
    """GraphedStep (which needs CUDA to be built) with its warm-up done: torch's capture error becomes a
    GraphCaptureError naming the step, for the engine to fall back on."""
    step_fn = object.__new__(GraphedStep)
    step_fn.method, step_fn.warmup, step_fn.graphs = DartsFamily.__new__(DartsFamily), 0, {}
    torch_error = RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore text")

    def capture(*args):
        raise torch_error

    monkeypatch.setattr(GraphedStep, "_capture", capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    with pytest.raises(GraphCaptureError) as err:
        step_fn({}, 0, 0, False)
    assert str(err.value) == ("CUDA graph capture of the DartsFamily step failed (CUDA error: operation not "
                              "permitted when stream is capturing)")
    assert err.value.__cause__ is torch_error


def test_a_failed_pack_is_halved_and_then_solo():
    memory, vmap, graph = Failure(MEMORY, ""), Failure(VMAP, ""), Failure(GRAPH, "")
    assert split_pack([0, 1, 2, 3, 4], memory) == [[0, 1, 2], [3, 4]]
    assert split_pack([0, 1], memory) == [[0], [1]] and split_pack([7], memory) == [[7]]
    assert split_pack([0, 1, 2], vmap) == [[0], [1], [2]] and split_pack([0, 1, 2], graph) == [[0, 1, 2]]
    names = {i: str(10 + i) for i in range(5)}
    assert describe([[0, 1, 2], [3, 4]], memory, names) == "a pack of seeds 10, 11, 12 and a pack of seeds 13, 14"
    assert describe([[0], [1]], memory, names) == "each seed solo"
    assert describe([[0, 1, 2]], graph, names) == "eager steps"


# ---- one copy of the data in a pack ----------------------------------------------------------------
def count_copies(monkeypatch) -> list:
    """Every split put on the device (DeviceSplit.from_arrays), in order."""
    made = []
    real = DeviceSplit.from_arrays.__func__

    def from_arrays(cls, arrays, device="cpu"):
        made.append(len(arrays.y))
        return real(cls, arrays, device)

    monkeypatch.setattr(DeviceSplit, "from_arrays", classmethod(from_arrays))
    return made


def prepared_searches(monkeypatch) -> list:
    """The SeedSearch of each run the engine prepares, in order."""
    found = []
    real = run_module.Run.prepare

    def prepare(self, *args, **kwargs):
        found.append(real(self, *args, **kwargs))
        return found[-1]

    monkeypatch.setattr(run_module.Run, "prepare", prepare)
    return found


def same_split_for_every_seed(monkeypatch) -> None:
    """The test data is an image folder, whose split is seeded (one per seed); NB201's official split of
    the CIFAR-10 archive is the same for every seed: give every seed seed 0's."""
    real = search_module.split_for
    monkeypatch.setattr(search_module, "split_for", lambda arrays, seed, *a, **k: real(arrays, 0, *a, **k))


def one_epoch(data, out: Path, seeds=SEEDS):
    return run_seeds(METHOD, list(seeds), preset="smoke", epochs=1, device="cpu", out=out,
                     overrides={**SMALL, "gc_every": "0"}, data_root=data["data_root"],
                     benchmark_path=data["benchmark_path"], progress=False, pack=True, log=lambda line: None)


def test_a_pack_of_three_seeds_with_one_split_holds_one_copy_of_the_data(data, monkeypatch, tmp_path):
    same_split_for_every_seed(monkeypatch)
    made, searches = count_copies(monkeypatch), prepared_searches(monkeypatch)
    one_epoch(data, tmp_path / "shared")
    assert len(made) == 2, made   # the train half and the valid half, once for the three seeds
    for stream in ("train", "valid"):
        splits = [s.streams[stream].split for s in searches]
        assert len(splits) == 3 and all(x is splits[0] for x in splits)
        assert len({x.x.data_ptr() for x in splits}) == 1 and len({x.y.data_ptr() for x in splits}) == 1
    assert searches[0].streams["train"].split is not searches[0].streams["valid"].split

    # the records are those of seeds that each held their own copy
    real = run_module.search_data
    monkeypatch.setattr(run_module, "search_data", lambda *a, shared=None, **k: real(*a, **k))
    made.clear()
    one_epoch(data, tmp_path / "own")
    assert len(made) == 6, made
    for s in SEEDS:
        assert_records_close(records(run_dir(tmp_path / "shared", METHOD, s)),
                             records(run_dir(tmp_path / "own", METHOD, s)), exact=True, what=f"seed {s}")


def test_seeds_with_their_own_seeded_split_share_nothing(data, monkeypatch, tmp_path):
    made, searches = count_copies(monkeypatch), prepared_searches(monkeypatch)
    one_epoch(data, tmp_path)
    assert len(made) == 6, made
    assert len({s.streams["train"].split.x.data_ptr() for s in searches}) == 3


def test_search_data_shares_only_the_same_images(data):
    shared: dict = {}

    def load(seed: int, subset: int):
        return search_module.search_data("cifar10", data["data_root"], seed, subset=subset, include_test=True,
                                         split_policy="balanced", shared=shared)

    a, again, other_seed, other_subset = load(0, 16), load(0, 16), load(1, 16), load(0, 8)
    assert again.train is a.train and again.valid is a.valid and again.test is a.test
    assert other_seed.train is not a.train and other_seed.valid is not a.valid
    assert other_seed.test is a.test   # the test set's subset does not depend on the split
    assert other_subset.train is not a.train and other_subset.test is not a.test
    fresh = search_module.search_data("cifar10", data["data_root"], 0, subset=16, split_policy="balanced")
    assert torch.equal(fresh.train.x, a.train.x) and fresh.train.x.data_ptr() != a.train.x.data_ptr()
