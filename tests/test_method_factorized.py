"""A-DARTS factorized architecture parameters on NB201: |O1| + |O2| parameters per edge, the tri-level
step order (w, then α, then β with the updated α), the kernel variant's exact NB201 mapping, the
activation mixture reducing to ReLU-Conv-BN, reproducible RReLU noise; and every variant end to end
through the CLI on real CIFAR-10 (two seeds, resume after SIGKILL)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# CLI helpers shared with the DNAS tests (candidates for conftest.py)
from method_helpers import assert_resume_reproduces, batch, check_records, run_all, tiny

from nasbench_stability.space.blocks import ReLUConvBN
from nasbench_stability.space.factorized_cell import (
    ACTIVATIONS,
    CONV_OPS,
    PAIR_CANDIDATES,
    ActivationPairCell,
    FactorizedActivationCell,
    SeededRReLU,
    pack_activation_weights,
)
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.mixed_cell import MixedCell
from nasbench_stability.space.ops import OP_INDEX, OPS
from nasbench_stability.space.pooling import avg_pool_3x3

NONE, SKIP, C1, C3, POOL = (OP_INDEX[o] for o in OPS)
RELU = ACTIVATIONS.index("relu")
D = torch.float64
METHODS = ("factorized-act", "factorized-kernel", "nonfactorized-act")


def one_hot(i: int, n: int, rows: int = 6) -> torch.Tensor:
    return F.one_hot(torch.full((rows,), i), n).to(D)


def test_factorized_variants_have_o1_plus_o2_parameters_per_edge():
    for method, (o1, o2) in {"factorized-act": (5, 9), "factorized-kernel": (4, 2)}.items():
        m = tiny(method)
        assert m.alpha.shape == (6, o1) and m.beta.shape == (6, o2)
        assert [id(p) for p in m.arch_parameters()] == [id(m.alpha)]   # β has its own optimizer
        assert set(m.optimizers()) == {"w", "alpha", "beta"} and o1 + o2 < o1 * o2
    flat = tiny("nonfactorized-act")
    assert flat.alpha.shape == (6, 21) == (6, 2 * 9 + 3) and "beta" not in dict(flat.named_parameters())
    assert len(PAIR_CANDIDATES) == 21 and PAIR_CANDIDATES[:3] == ("none", "skip_connect", "avg_pool_3x3")


def test_step_is_w_then_alpha_then_beta_with_the_updated_alpha():
    m = tiny("factorized-kernel")  # deterministic cell: gradients can be recomputed exactly
    train, valid = batch(1, 4, 16), batch(2, 4, 16)
    some_w = next(iter(m.supernet.search_cells[0].parameters()))
    alpha0, w0 = m.alpha.detach().clone(), some_w.detach().clone()

    def grad_now(param, alpha=None):
        saved = m.alpha.detach().clone()
        with torch.no_grad():
            m.alpha.copy_(saved if alpha is None else alpha)
        loss, _ = m.loss_and_logits(*valid, arch_grad=True)
        grad = torch.autograd.grad(loss, [param])[0]
        with torch.no_grad():
            m.alpha.copy_(saved)
        return grad

    log = []

    def spy(name, opt):
        original = opt.step

        def step(*args, **kw):
            entry = {"name": name, "alpha": m.alpha.detach().clone(), "w": some_w.detach().clone()}
            if name != "w":
                param = m.alpha if name == "alpha" else m.beta
                entry["grad"], entry["fresh"] = param.grad.clone(), grad_now(param)
                entry["with_old_alpha"] = grad_now(param, alpha0)
            log.append(entry)
            return original(*args, **kw)

        opt.step = step

    for name, opt in m.optimizers().items():
        spy(name, opt)
    m.step({"train": train, "valid": valid}, epoch=0, step=0, measure_gc=True)

    assert [e["name"] for e in log] == ["w", "alpha", "beta"]
    w_step, a_step, b_step = log
    assert torch.equal(w_step["alpha"], alpha0) and torch.equal(w_step["w"], w0)
    # α's gradient: on the valid batch, at the updated weights
    assert not torch.equal(a_step["w"], w0)
    torch.testing.assert_close(a_step["grad"], a_step["fresh"], rtol=0, atol=0)
    # β's gradient: after α moved, and it is the gradient at the new α, not the old one
    assert torch.equal(b_step["alpha"], m.alpha.detach()) and not torch.equal(b_step["alpha"], alpha0)
    torch.testing.assert_close(b_step["grad"], b_step["fresh"], rtol=0, atol=0)
    assert not torch.allclose(b_step["grad"], b_step["with_old_alpha"], rtol=0, atol=1e-12)


def test_kernel_variant_derives_nb201_cells_with_the_chosen_kernel():
    m = tiny("factorized-kernel")
    with torch.no_grad():      # α over (none, skip, conv, pool), β over (1x1, 3x3); edge 5: a = .1 .3 .5 .1
        m.alpha.copy_(torch.tensor([[0, 0, 3, 0], [0, 0, 3, 0], [0, 3, 0, 0], [3, 0, 0, 0], [0, 0, 0, 3],
                                    [0, 0, 0, 0]], dtype=torch.float))
        m.alpha[5] = torch.tensor([0.1, 0.3, 0.5, 0.1]).log()
        m.beta.copy_(torch.tensor([[2.0, 0], [0, 2], [0, 0], [0, 0], [0, 0], [0, 0.1]]))
    g = m.derive()
    assert g == Genotype.from_str(g.to_str())
    assert g.ops == ("nor_conv_1x1", "nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_3x3")

    w = m.op_weights()   # NB201-ordered: the conv's weight split by β
    a, b = (t.detach().numpy() for t in m.factor_weights())
    assert w.shape == (6, 5)
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(w[:, [C1, C3]], a[:, 2:3] * b, rtol=1e-6)
    np.testing.assert_allclose(w[:, [NONE, SKIP, POOL]], a[:, [0, 1, 3]], rtol=1e-6)
    # edge 5: conv (0.5) beats skip (0.3) in O1, though skip is the largest single NB201 weight
    assert Genotype.from_weights(w).ops[5] == "skip_connect"
    # the supernet runs on exactly these NB201 weights
    x, cell = torch.randn(2, 4, 8, 8), m.supernet.search_cells[0]
    torch.testing.assert_close(cell(x, m.activate(m.alpha)), cell(x, torch.tensor(w)))
    assert m.extra_records()["lookup_exact"] is True


def _twin_cells(cell_cls, channels=6):
    torch.manual_seed(0)
    return cell_cls(channels).to(D), MixedCell(channels).to(D)


def test_one_hot_relu_mixture_is_relu_conv_bn():
    cell, fused = _twin_cells(FactorizedActivationCell)
    x = torch.randn(4, 6, 8, 8, dtype=D)
    for op, kernel in CONV_OPS:
        ref = ReLUConvBN(6, 6, kernel, 1, affine=False, track_running_stats=False).to(D)
        ref[1].weight.data.copy_(cell.convs[0][op].weight.data)
        mixed = cell.mixtures[0](x, one_hot(RELU, 9)[0])
        torch.testing.assert_close(cell.convs[0][op](mixed), ref(x), rtol=0, atol=1e-12)
    # the whole cell with ReLU on every edge is NB201's mixed cell with the same conv weights
    for e in range(6):
        fused.conv1x1[e].data.copy_(cell.convs[e]["nor_conv_1x1"].weight.data)
        fused.conv3x3[e].data.copy_(cell.convs[e]["nor_conv_3x3"].weight.data)
    w = torch.softmax(torch.randn(6, 5, dtype=D), -1)
    torch.testing.assert_close(cell(x, pack_activation_weights(w, one_hot(RELU, 9))), fused(x, w), rtol=0, atol=1e-12)
    # another activation changes the output
    assert not torch.allclose(cell(x, pack_activation_weights(w, one_hot(ACTIVATIONS.index("selu"), 9))), fused(x, w))


def test_pair_cell_equals_separate_activation_conv_bn_ops():
    torch.manual_seed(0)
    cell = ActivationPairCell(6).to(D).eval()   # eval: RReLU uses its mean slope (deterministic)
    x, w = torch.randn(4, 6, 8, 8, dtype=D), torch.softmax(torch.randn(6, 21, dtype=D), -1)
    e = 0  # edge 0→1: node 1 is exactly this edge's output
    literal = w[e, 1] * x + w[e, 2] * avg_pool_3x3(x)
    for op, kernel in CONV_OPS:
        for j, col in enumerate(cell.columns(op)):
            assert PAIR_CANDIDATES[col] == f"{ACTIVATIONS[j]}+{op}"
            conv = cell.kernels[e][op][j * 6:(j + 1) * 6]
            y = F.conv2d(cell.acts[e][op][j](x), conv, padding=kernel // 2)
            literal = literal + w[e, col] * F.batch_norm(y, None, None, training=True)
    torch.testing.assert_close(sum(cell.edge_terms(e, x, w[e], lambda col: True)), literal, rtol=0, atol=1e-12)


def test_pair_cell_with_only_relu_pairs_is_the_mixed_cell():
    cell, fused = _twin_cells(ActivationPairCell)
    relu = {op: cell.columns(op)[RELU] for op, _ in CONV_OPS}
    for e in range(6):
        fused.conv1x1[e].data.copy_(cell.kernels[e]["nor_conv_1x1"][RELU * 6:(RELU + 1) * 6].data)
        fused.conv3x3[e].data.copy_(cell.kernels[e]["nor_conv_3x3"][RELU * 6:(RELU + 1) * 6].data)
    w = torch.softmax(torch.randn(6, 5, dtype=D), -1)
    pairs = torch.zeros(6, 21, dtype=D)
    for name in ("none", "skip_connect", "avg_pool_3x3"):
        pairs[:, PAIR_CANDIDATES.index(name)] = w[:, OP_INDEX[name]]
    for op, col in relu.items():
        pairs[:, col] = w[:, OP_INDEX[op]]
    x = torch.randn(4, 6, 8, 8, dtype=D)
    torch.testing.assert_close(cell(x, pairs), fused(x, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell_cls", [FactorizedActivationCell, ActivationPairCell])
def test_running_stats_option_updates_and_is_used_in_eval(cell_cls):
    torch.manual_seed(0)
    cell = cell_cls(4, track_running_stats=True).to(D)
    w = torch.softmax(torch.randn(6, len(cell_cls.COLUMNS), dtype=D), -1)
    buffers = {k: v.clone() for k, v in cell.named_buffers()}
    assert buffers   # one mean/var pair per BN
    x = torch.randn(8, 4, 8, 8, dtype=D) * 2 + 1
    train_out = cell(x, w)
    assert all(not torch.equal(v, buffers[k]) for k, v in cell.named_buffers() if "num_batches" not in k)
    cell.eval()
    assert not torch.allclose(cell(x, w), train_out)   # eval normalises with the running statistics


def test_rrelu_noise_comes_from_its_generator_and_eval_uses_the_mean_slope():
    g = torch.Generator().manual_seed(5)
    act = SeededRReLU(generator=g)
    x = -torch.ones(2000)
    first = act(x)
    g.manual_seed(5)
    assert torch.equal(act(x), first)
    assert first.min() >= -1 / 3 and first.max() <= -1 / 8 and first.std() > 0.01
    assert torch.equal(act(-x), -x)  # positive inputs pass
    act.eval()
    torch.testing.assert_close(act(x), torch.full_like(x, -(1 / 8 + 1 / 3) / 2))


def test_factorized_act_steps_are_reproducible_and_noise_depends_on_the_step():
    batches = {"train": batch(1, 4, 16), "valid": batch(2, 4, 16)}
    a, b, c = tiny("factorized-act"), tiny("factorized-act"), tiny("factorized-act")
    a.step(batches, epoch=0, step=3, measure_gc=False)
    b.step(batches, epoch=0, step=3, measure_gc=False)
    c.step(batches, epoch=0, step=4, measure_gc=False)   # same lr up to the schedule, other RReLU draws
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.beta, c.beta)


def test_activation_choices_and_lookup_exactness_are_recorded():
    m = tiny("factorized-act")
    with torch.no_grad():
        m.alpha.zero_()
        m.alpha[:, C3] = 2.0
        m.alpha[5, C3], m.alpha[5, SKIP] = 0.0, 2.0
        m.beta.zero_()
        m.beta[:, ACTIVATIONS.index("selu")] = 2.0
    rec = m.extra_records()
    assert m.derive().ops == ("nor_conv_3x3",) * 5 + ("skip_connect",)
    assert rec["act_choice"] == ["selu"] * 6 and rec["lookup_exact"] is False
    assert rec["activation_genotype"] == ("|nor_conv_3x3[selu]~0|+|nor_conv_3x3[selu]~0|nor_conv_3x3[selu]~1|+"
                                          "|nor_conv_3x3[selu]~0|nor_conv_3x3[selu]~1|skip_connect~2|")
    assert rec["act_weights"].shape == (6, 9)
    with torch.no_grad():
        m.beta[:5, RELU] = 5.0   # every conv edge on ReLU: an exact NB201 cell, whatever edge 5 prefers
    assert m.extra_records()["lookup_exact"] is True


def test_nonfactorized_records_nb201_marginals_and_the_pair_choice():
    m = tiny("nonfactorized-act")
    with torch.no_grad():
        m.alpha.zero_()
        m.alpha[0, PAIR_CANDIDATES.index("selu+nor_conv_3x3")] = 3.0
    w = m.op_weights()
    assert w.shape == (6, 5)
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(w[1], [1 / 21, 1 / 21, 9 / 21, 9 / 21, 1 / 21], rtol=1e-6)
    rec = m.extra_records()
    assert m.derive().ops[0] == "nor_conv_3x3" and rec["act_choice"][0] == "selu" and rec["lookup_exact"] is False
    assert rec["candidate_weights"].shape == (6, 21)


# ---------------------------------------------------------------------------------------------
# end to end: all three variants in parallel, two seeds each; resume after SIGKILL
# ---------------------------------------------------------------------------------------------
# factorized-act runs 3 epochs: its seed 0 is the uninterrupted reference of the resume test
EPOCHS = {"factorized-act": 3, "factorized-kernel": 2, "nonfactorized-act": 2}


@pytest.fixture(scope="module")
def smoke_runs(method_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("factorized")
    run_all(method_cli, [(m, out, ("--seeds", "2", "--epochs", str(EPOCHS[m]))) for m in METHODS])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_seeds_on_cifar10(smoke_runs, method):
    epochs = EPOCHS[method]
    frames = [check_records(smoke_runs / f"{method}-cifar10-seed{s}", epochs) for s in (0, 1)]
    for df in frames:
        weights = np.stack(df.op_weights.to_numpy())
        np.testing.assert_allclose(weights.reshape(epochs, 6, 5).sum(-1), 1, rtol=1e-5)
        if method == "factorized-kernel":
            assert df.lookup_exact.all() and all(len(k) == 12 for k in df.kernel_weights)
        else:
            assert all(len(a) == 6 and set(a) <= set(ACTIVATIONS) for a in df.act_choice)
            exact = [all(a == "relu" for a in re.findall(r"\[(\w+)\]", arch)) for arch in df.activation_genotype]
            assert df.lookup_exact.tolist() == exact
    assert not np.array_equal(frames[0].op_weights.iloc[-1], frames[1].op_weights.iloc[-1])


@pytest.mark.slow
def test_factorized_act_resume_after_sigkill_reproduces_the_uninterrupted_run(method_cli, smoke_runs, tmp_path):
    assert_resume_reproduces(method_cli, "factorized-act", smoke_runs / "factorized-act-cifar10-seed0", tmp_path,
                             EPOCHS["factorized-act"], "--seeds", "1")
