"""CUDA graphs and packed seeds on a GPU (skipped without one): a graphed step replays exactly what
the eager step computes, a packed step on CUDA agrees with solo steps, and a packed CLI run works."""

import pytest
import torch

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.graphs import BatchScorer, GraphedStep, graphed_step
from nasbench_stability.engine.run import build_method
from nasbench_stability.methods.packing import pack, unpack

pytestmark = pytest.mark.cuda

OVERRIDES = {"channels": "8", "cells_per_stage": "1", "gc_every": "3"}


def _methods(name, seeds):
    return [build_method(resolve_config(name, preset="smoke", seed=s, device="cuda", overrides=OVERRIDES), 10, 8)
            for s in seeds]


def _batches(streams, k=None, n=6, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    shape = (16,) if k is None else (k, 16)
    return [{s: (torch.randn(*shape, 3, 32, 32, device="cuda", generator=g),
                 torch.randint(0, 10, shape, device="cuda", generator=g)) for s in streams} for _ in range(n)]


@pytest.mark.parametrize("name", ["darts-v1", "darts-v2", "single-darts", "mergenas-v2"])
def test_graph_replay_equals_the_eager_step(name):
    eager, graphed = _methods(name, [0]) + _methods(name, [0])
    step_fn = graphed_step(graphed)
    assert isinstance(step_fn, GraphedStep)
    batches = _batches(eager.streams, n=8)
    for i, b in enumerate(batches):
        measure = i % 3 == 0
        a = eager.step(b, 0, i, measure)
        s = step_fn(b, 0, i, measure)
        torch.testing.assert_close(s.loss_sum, a.loss_sum, rtol=1e-5, atol=1e-6)
    assert step_fn.graphs, "no graph was captured"
    torch.testing.assert_close(graphed.alpha, eager.alpha, rtol=1e-5, atol=1e-6)
    for p, q in zip(graphed.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_per_step_schedule_and_solo_methods_fall_back_to_eager():
    cfg = resolve_config("darts-v1", preset="smoke", device="cuda", overrides={**OVERRIDES, "lr_schedule": "per-step"})
    per_step = build_method(cfg, 10, 8)
    assert graphed_step(per_step) == per_step.step
    edas = _methods("edas-inv", [0])[0]
    assert graphed_step(edas) == edas.step


@pytest.mark.parametrize("name", ["darts-v1", "darts-v2", "single-darts"])
def test_packed_step_on_cuda_agrees_with_solo_steps(name):
    solos, packed_from = _methods(name, [0, 1, 2]), _methods(name, [0, 1, 2])
    packed = pack(packed_from)
    step_fn = graphed_step(packed)
    per_seed = [_batches(solos[0].streams, n=5, seed=k) for k in range(3)]
    for i in range(5):
        for k in range(3):
            solos[k].step(per_seed[k][i], 0, i, i % 3 == 0)
        stacked = {s: (torch.stack([per_seed[k][i][s][0] for k in range(3)]),
                       torch.stack([per_seed[k][i][s][1] for k in range(3)])) for s in solos[0].streams}
        step_fn(stacked, 0, i, i % 3 == 0)
    unpack(packed, packed_from)
    # fp32 grouped vs separate kernels: rounding, amplified in α by Adam's normalised first steps
    # (and for darts-v2 by the finite difference); a seed mix-up would differ by O(α) ≈ 1e-3
    for k in range(3):
        torch.testing.assert_close(packed_from[k].alpha, solos[k].alpha, rtol=0, atol=5e-4 if name == "darts-v2" else 5e-5)
        assert not torch.allclose(packed_from[k].alpha, solos[(k + 1) % 3].alpha, rtol=0, atol=5e-4)


def test_packed_scorer_scores_each_seed_on_its_own_batch():
    solos = _methods("darts-v1", [0, 1])
    packed = pack(solos)
    b = _batches(("eval",), k=2, n=1)[0]["eval"]
    loss, correct = BatchScorer(packed)(*b)
    for k in range(2):
        solo_loss, solo_correct = BatchScorer(solos[k])(b[0][k], b[1][k])
        torch.testing.assert_close(loss[k], solo_loss, rtol=1e-4, atol=1e-4)
        assert int(correct[k]) == int(solo_correct)


def test_packed_cli_run_on_cuda(tmp_path, bench_path, cifar_root, nbs_home, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setenv("NBS_HOME", str(nbs_home))
    from nasbench_stability.cli.main import main
    result = CliRunner().invoke(main, ["run", "-m", "darts-v1", "--seeds", "2", "--preset", "smoke", "--device",
                                       "cuda", "--out", str(tmp_path), "--benchmark", str(bench_path),
                                       "--data-root", str(cifar_root), "--quiet"])
    assert result.exit_code == 0, result.output
    import pandas as pd
    for s in range(2):
        rec = pd.read_parquet(tmp_path / f"darts-v1-cifar10-seed{s}" / "records" / "epoch-0002.parquet")
        assert int(rec["pack_size"].iloc[0]) == 2
