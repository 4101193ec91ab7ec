"""EDAS / EDAS-inv / α-max on their defining mechanics — one relaxed edge per step and single-path
edges elsewhere, only the sampled α row moves (Adam included), softmax(−α) exactly during the warm-up,
reproducible edge sampling — and end to end through the CLI (two seeds; resume after SIGKILL)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from nasbench_stability.data.pipeline import derive_seed
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.run import build_method
from nasbench_stability.methods.describe import describe_method
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import OP_INDEX, OPS

# CLI helpers shared with the DNAS and factorized tests (candidates for conftest.py)
from method_helpers import assert_resume_reproduces, check_records, run_all

NONE, SKIP, C1, C3, POOL = (OP_INDEX[o] for o in OPS)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is faster, and much faster on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(method: str, seed: int = 0, **overrides):
    cfg = resolve_config(method, preset="smoke", device="cpu", seed=seed,
                         overrides={"channels": "4", **{k: str(v) for k, v in overrides.items()}})
    return build_method(cfg, num_classes=10, steps_per_epoch=4)


def batches(seed: int, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    make = lambda: (torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))  # noqa: E731
    return {"train": make(), "valid": make()}


def record_supernet_calls(method) -> list[dict]:
    """Wrap the supernet's forward to log the op weights and ``active`` mask of every call."""
    calls, forward = [], method.supernet.forward

    def logged(x, weights, active=None):
        calls.append({"weights": weights.detach().clone(), "active": active, "arch": weights.requires_grad})
        return forward(x, weights, active)

    method.supernet.forward = logged
    return calls


def check_single_path(call: dict, relaxed: int | None, probs: torch.Tensor) -> None:
    """Row ``relaxed`` holds all five ops at softmax weights; every other row one op at weight 1."""
    w, active = call["weights"], np.array(call["active"])
    assert (w[~torch.from_numpy(active)] == 0).all()  # ops outside the mask have weight exactly 0
    for e in range(6):
        if e == relaxed:
            assert active[e].all()
            torch.testing.assert_close(w[e], probs[e])
        else:
            op = int(probs[e].argmax())
            assert active[e].tolist() == [o == op for o in range(5)]
            assert w[e, op] == 1.0


# ---------------------------------------------------------------------------------------------
# the network of a step
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["edas", "edas-inv", "alpha-max"])
def test_one_edge_relaxed_the_others_single_path(method):
    m = tiny(method)
    m.begin_epoch(0)
    calls = record_supernet_calls(m)
    for step in range(3):
        calls.clear()
        # edas-inv's warm-up (alternate, the default): odd steps see softmax(−α)
        sign = -1 if method == "edas-inv" and step % 2 else 1
        probs = torch.softmax(sign * m.alpha.detach(), -1)
        m.step(batches(step), epoch=0, step=step, measure_gc=False)
        e = m.sample_edge(0, step)
        arch, weight = [c for c in calls if c["arch"]], [c for c in calls if not c["arch"]]
        assert len(arch) == 1 and len(weight) == 1
        check_single_path(arch[0], e, probs)  # the α step: edge e relaxed
        after = torch.softmax(sign * m.alpha.detach(), -1)  # the weight step runs after the α step (DARTS' order)
        check_single_path(weight[0], None if method == "alpha-max" else e, after)


def test_only_the_sampled_row_of_alpha_moves_adam_state_included():
    """Adam's momentum from earlier steps (and the warm-up's L2) would move unsampled rows: they are
    restored bit for bit; without freeze_unsampled they do move."""
    for freeze in (True, False):
        m = tiny("edas-inv", freeze_unsampled=freeze, a_lr=0.1)
        m.begin_epoch(0)  # warm-up: α weight decay 1e-3, a non-zero gradient on every row
        moved_elsewhere = False
        for step in range(6):
            e = m.sample_edge(0, step)
            before = m.alpha.detach().clone()
            state = {k: v.clone() for k, v in m.a_opt.state.get(m.alpha, {}).items() if k != "step"}
            m.step(batches(step), epoch=0, step=step, measure_gc=False)
            others = torch.arange(6) != e
            assert not torch.equal(m.alpha[e], before[e])
            if freeze:
                assert torch.equal(m.alpha.detach()[others], before[others])
                for k, v in state.items():
                    assert torch.equal(m.a_opt.state[m.alpha][k][others], v[others]), k
            moved_elsewhere |= not torch.equal(m.alpha.detach()[others], before[others])
        assert moved_elsewhere == (not freeze)


def test_dead_node_gets_no_gradient_correlation_and_does_not_break_the_step():
    """Node 1 has only `none` out-edges: the conv on edge 0→1 runs but cannot reach the loss."""
    m = tiny("alpha-max")
    with torch.no_grad():
        m.alpha.zero_()
        m.alpha[0, C3] = m.alpha[2, NONE] = m.alpha[4, NONE] = 1.0  # 0→1 conv, 1→2 and 1→3 none
        m.alpha[[1, 3, 5], C1] = 1.0
    step = next(s for s in range(100) if m.sample_edge(0, s) == 5)
    stats = m.step(batches(0), epoch=0, step=step, measure_gc=True)
    finite = {tuple(ix) for ix in torch.isfinite(stats.gc_inner).nonzero().tolist()}
    assert finite == {(1, C1), (3, C1), (5, C1)}  # 0→1's conv is dead; 1→2/1→3 hold none


# ---------------------------------------------------------------------------------------------
# warm-up with inversion
# ---------------------------------------------------------------------------------------------
def test_constant_inversion_uses_softmax_of_minus_alpha_exactly_during_the_warm_up():
    m = tiny("edas-inv", epochs=5, inversion="constant")
    assert m.warmup_epochs == 2  # 40% of 5
    alpha = m.alpha.detach()
    for epoch, warm in [(0, True), (1, True), (2, False), (4, False)]:
        m.begin_epoch(epoch)
        sign = -1 if warm else 1
        np.testing.assert_array_equal(m.op_weights(), torch.softmax(sign * alpha, -1).numpy())
        assert m.a_opt.param_groups[0]["weight_decay"] == (1e-3 if warm else 0.0)
        assert m.extra_records()["warmup_active"] is warm
        chosen = (alpha.argmin(1) if warm else alpha.argmax(1)).tolist()  # the single-path ops
        assert m.derive() == Genotype.from_op_indices(chosen)
        _, active = m.single_path(None)
        assert [row.index(True) for row in active] == chosen
    plain = tiny("edas", epochs=5)
    assert plain.warmup_epochs == 0
    np.testing.assert_array_equal(plain.op_weights(), torch.softmax(plain.alpha.detach(), -1).numpy())


def alpha_grad_with_sign(m, b, edge: int, sign: int) -> torch.Tensor:
    """∂L_valid/∂α of the network with ``edge`` relaxed under softmax(sign·α), built by hand."""
    alpha = m.alpha.detach().clone().requires_grad_()
    probs = torch.softmax(sign * alpha, -1)
    chosen = probs.detach().argmax(1)
    weights = torch.nn.functional.one_hot(chosen, 5).to(probs.dtype)
    weights = torch.where((torch.arange(6) == edge)[:, None], probs, weights)
    active = [[e == edge or o == int(chosen[e]) for o in range(5)] for e in range(6)]
    x, y = b["valid"]
    loss = torch.nn.functional.cross_entropy(m.supernet(x, weights, active), y)
    return torch.autograd.grad(loss, [alpha])[0]


def test_alternate_inversion_is_the_default():
    assert tiny("edas-inv").options.inversion == "alternate"


# (epoch, step) → sign of α; tiny() has 4 steps per epoch, so (1, 0) is step 4 of the run (even: +α)
# and (1, 1) step 5 (odd: −α): the alternation counts steps over the run, not within an epoch
@pytest.mark.parametrize("inversion,steps", [
    ("constant", [((0, 0), -1), ((0, 1), -1), ((0, 2), -1)]),
    ("alternate", [((0, 0), 1), ((0, 1), -1), ((0, 2), 1), ((1, 0), 1), ((1, 1), -1)]),
])
def test_warm_up_alpha_gradient_goes_through_the_inverted_alpha(inversion, steps):
    m = tiny("edas-inv", inversion=inversion, epochs=5)
    assert m.warmup_epochs == 2
    for (epoch, step), sign in steps:
        m.begin_epoch(epoch)
        b, e = batches(step), m.sample_edge(epoch, step)
        expected = alpha_grad_with_sign(copy.deepcopy(m), b, e, sign)
        stats = m.step(b, epoch=epoch, step=step, measure_gc=False)
        torch.testing.assert_close(stats.op_grad, expected)
        assert stats.op_grad[torch.arange(6) != e].abs().sum() == 0 and stats.op_grad[e].abs().sum() > 0
    # between steps: constant shows softmax(−α) all warm-up long, alternate shows α itself
    shown = torch.softmax((-1 if inversion == "constant" else 1) * m.alpha.detach(), -1).numpy()
    np.testing.assert_array_equal(m.op_weights(), shown)


# ---------------------------------------------------------------------------------------------
# edge sampling
# ---------------------------------------------------------------------------------------------
def test_edge_sampling_is_a_pure_uniform_function_of_seed_epoch_step():
    a, b, other = tiny("edas", seed=3), tiny("edas", seed=3), tiny("edas", seed=4)
    torch.manual_seed(123)  # the global RNG plays no part
    seq = [a.sample_edge(ep, st) for ep in range(3) for st in range(200)]
    torch.manual_seed(456)
    assert seq == [b.sample_edge(ep, st) for ep in range(3) for st in range(200)]
    assert seq != [other.sample_edge(ep, st) for ep in range(3) for st in range(200)]
    g = torch.Generator().manual_seed(derive_seed(3, "edas", 2, 7))
    assert a.sample_edge(2, 7) == int(torch.randint(6, (1,), generator=g))
    counts = np.bincount(seq, minlength=6)
    assert counts.min() > 60 and counts.max() < 140  # 600 draws, 100 expected per edge


def test_sample_counts_are_recorded_per_epoch():
    m = tiny("edas")
    m.begin_epoch(1)
    for step in range(4):
        m.step(batches(step), epoch=1, step=step, measure_gc=False)
    expected = np.bincount([m.sample_edge(1, s) for s in range(4)], minlength=6).tolist()
    assert m.extra_records() == {"edge_samples": expected, "warmup_active": False}
    m.begin_epoch(2)
    assert m.extra_records()["edge_samples"] == [0] * 6


def test_registry_defaults_and_sources():
    inv, plain, amax = (tiny(n).options for n in ("edas-inv", "edas", "alpha-max"))
    assert (inv.warmup_fraction, plain.warmup_fraction, amax.warmup_fraction) == (0.4, 0.0, 0.0)
    assert (inv.weight_path, plain.weight_path, amax.weight_path) == ("sampled-edge", "sampled-edge", "argmax")
    assert (inv.a_lr, inv.a_weight_decay, inv.warmup_a_weight_decay, inv.w_weight_decay) == (0.025, 0.0, 1e-3, 3e-4)
    assert resolve_config("edas-inv", preset="paper", device="cpu").epochs == 25
    text = describe_method("edas-inv")
    assert "warmup_fraction" in text and "paper" in text and "departures from the paper" in text


# ---------------------------------------------------------------------------------------------
# end to end: `nbs run` in subprocesses on real CIFAR-10 (CLI helpers shared with the DNAS tests)
# ---------------------------------------------------------------------------------------------
METHODS = ("edas", "edas-inv", "alpha-max")


@pytest.fixture(scope="module")
def smoke_runs(method_cli, tmp_path_factory) -> Path:
    """Every variant, two seeds, smoke preset for 3 epochs (edas-inv: the first one is the warm-up)."""
    out = tmp_path_factory.mktemp("edas")
    run_all(method_cli, [(m, out, ("--seeds", "2", "--epochs", "3")) for m in METHODS])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_seeds_on_cifar10(smoke_runs, method):
    for seed in (0, 1):
        df = check_records(smoke_runs / f"{method}-cifar10-seed{seed}", 3)
        assert [sum(c) for c in df.edge_samples] == [2, 2, 2]  # 16 images / batch 8 (METHOD_RUN_ARGS) = 2 steps an epoch
        assert df.warmup_active.tolist() == [method == "edas-inv", False, False]


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(method_cli, smoke_runs, tmp_path):
    """edas-inv killed after ≥ 1 epoch: the resumed run crosses the warm-up switch."""
    assert_resume_reproduces(method_cli, "edas-inv", smoke_runs / "edas-inv-cifar10-seed0", tmp_path, 3)


# ---------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# ---------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amp", [False, True])
def test_search_step_on_cuda(method, amp):
    cfg = resolve_config(method, preset="smoke", device="cuda",
                         overrides={"channels": "8", **({"amp": "true", "channels_last": "true"} if amp else {})})
    m = build_method(cfg, 10, 4)
    m.begin_epoch(0)
    g = torch.Generator(device="cuda").manual_seed(0)
    make = lambda: (torch.randn(16, 3, 32, 32, device="cuda", generator=g),  # noqa: E731
                    torch.randint(0, 10, (16,), device="cuda", generator=g))
    for step in range(3):
        alpha = m.alpha.detach().clone()
        stats = m.step({name: make() for name in m.streams}, 0, step, measure_gc=True)
        moved = (m.alpha.detach() != alpha).any(1).nonzero().flatten().tolist()
        assert moved == [m.sample_edge(0, step)] and torch.isfinite(stats.loss_sum)
    assert m.extra_records()["edge_samples"] == np.bincount([m.sample_edge(0, s) for s in range(3)],
                                                            minlength=6).tolist()
