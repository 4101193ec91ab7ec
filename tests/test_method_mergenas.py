"""MergeNAS on its defining math — one shared kernel per edge, the merged conv equals the α-weighted
sum of the separate ops, a one-hot α is the discrete NB201 cell — and end to end through the CLI
(two seeds on real CIFAR-10, resume after SIGKILL gives the records of an uninterrupted run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

# CLI helpers shared with the DNAS and factorized tests (candidates for conftest.py)
from method_helpers import assert_resume_reproduces, batch, check_records, run_all, tiny

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.run import build_method
from nasbench_stability.methods.describe import describe_method
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.merged_cell import MergedCell, kernel_masks, pool_kernel
from nasbench_stability.space.mixed_cell import MixedCell
from nasbench_stability.space.ops import OP_INDEX, OPS
from nasbench_stability.space.reference_cell import ReferenceCell

NONE, SKIP, C1, C3, POOL = (OP_INDEX[o] for o in OPS)
D = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is faster, and much faster on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cell(channels=5, **kw) -> MergedCell:
    torch.manual_seed(0)
    return MergedCell(channels, **kw).double()


def _edge_only(cell: MergedCell, x: torch.Tensor, alpha_row: torch.Tensor) -> torch.Tensor:
    """The output of edge 0→1 alone (weighted by ``alpha_row``), read through the cell: edge 1→3 is a
    skip, every other edge ``none``, so the cell's output is node 1."""
    weights = torch.zeros(6, 5, dtype=D)
    weights[:, NONE] = 1.0
    weights[0] = alpha_row
    weights[4] = torch.tensor([0, 1, 0, 0, 0], dtype=D)
    return cell(x, weights)


# ---------------------------------------------------------------------------------------------
# the merged kernel
# ---------------------------------------------------------------------------------------------
def test_masks_and_pool_kernel_are_exactly_as_stated():
    m1, m3 = kernel_masks(D)
    expected_1x1 = torch.zeros(3, 3, dtype=D)
    expected_1x1[1, 1] = 1
    assert torch.equal(m1, expected_1x1)                 # only the centre tap
    assert torch.equal(m3, torch.ones(3, 3, dtype=D))    # every tap
    p = pool_kernel(4, D)
    assert torch.equal(p[0, 0], torch.full((3, 3), 1 / 9, dtype=D))
    assert torch.equal(p.sum((2, 3)), torch.eye(4, dtype=D))  # channel c only sees channel c


@pytest.mark.parametrize("pool", ["merged", "separate"])
def test_merged_conv_equals_alpha_weighted_separate_convs(pool):
    """conv(x, W̃) = α_1x1·conv1x1(x, centre of W) + α_3x3·conv3x3(x, W) [+ α_pool·avgpool(x)], float64."""
    cell = _cell(pool=pool)
    x = torch.randn(3, 5, 9, 7, dtype=D)
    weights = torch.softmax(torch.randn(6, 5, dtype=D), -1)
    edges = [0, 2, 4]
    merged = F.conv2d(x, cell.merged_kernel(edges, weights), padding=1)
    for k, e in enumerate(edges):
        w, a = cell.kernels[e], weights[e]
        expected = a[C1] * F.conv2d(x, w[:, :, 1:2, 1:2]) + a[C3] * F.conv2d(x, w, padding=1)
        if pool == "merged":  # the merged pool is torch's zero-padded average (count_include_pad=True)
            expected = expected + a[POOL] * F.avg_pool2d(x, 3, 1, 1, count_include_pad=True)
        torch.testing.assert_close(merged[:, k * 5:(k + 1) * 5], expected, rtol=0, atol=1e-10)


def test_one_hot_conv1x1_edge_is_a_real_1x1_conv_with_the_centre_weights():
    cell = _cell()
    x = torch.randn(4, 5, 8, 8, dtype=D)
    conv = nn.Conv2d(5, 5, 1, bias=False).double()
    conv.weight.data.copy_(cell.kernels[0].data[:, :, 1:2, 1:2])
    bn = nn.BatchNorm2d(5, affine=False, track_running_stats=False).double()
    expected = bn(conv(F.relu(x)))
    torch.testing.assert_close(_edge_only(cell, x, torch.tensor([0, 0, 1, 0, 0], dtype=D)), expected,
                               rtol=0, atol=1e-10)


def test_one_hot_alpha_gives_the_discrete_nb201_cell():
    """At a one-hot α (no pool: the merged pool is a surrogate) the merged cell is the literal NB201
    cell whose 1×1 convs hold the centre taps and whose 3×3 convs hold the whole shared kernels."""
    cell = _cell()
    ref = ReferenceCell(5).double()
    for e in range(6):
        ref.edges[e][C1][1].weight.data.copy_(cell.kernels[e].data[:, :, 1:2, 1:2])
        ref.edges[e][C3][1].weight.data.copy_(cell.kernels[e].data)
    g = Genotype.from_str("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|")
    onehot = torch.tensor(g.one_hot(), dtype=D)
    x = torch.randn(3, 5, 8, 8, dtype=D)
    torch.testing.assert_close(cell(x, onehot), ref(x, onehot), rtol=0, atol=1e-10)
    # with pooling kept separate, the pool edge is NB201's too
    sep = _cell(pool="separate")
    for e in range(6):
        ref.edges[e][C1][1].weight.data.copy_(sep.kernels[e].data[:, :, 1:2, 1:2])
        ref.edges[e][C3][1].weight.data.copy_(sep.kernels[e].data)
    g = Genotype.from_str("|avg_pool_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|")
    onehot = torch.tensor(g.one_hot(), dtype=D)
    torch.testing.assert_close(sep(x, onehot), ref(x, onehot), rtol=0, atol=1e-10)


def test_merged_pool_is_bn_of_zero_padded_box_average_of_relu():
    """The documented surrogate: BN(avgpool_incl_pad(ReLU x)), which differs from NB201's pool."""
    x = torch.randn(4, 5, 8, 8, dtype=D)
    out = _edge_only(_cell(), x, torch.tensor([0, 0, 0, 0, 1], dtype=D))
    bn = nn.BatchNorm2d(5, affine=False, track_running_stats=False).double()
    torch.testing.assert_close(out, bn(F.avg_pool2d(F.relu(x), 3, 1, 1, count_include_pad=True)), rtol=0, atol=1e-10)
    assert not torch.allclose(out, F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))


def test_bn_after_merge_sees_only_the_ratios_of_the_branch_weights():
    """BN(conv(·, c·W̃)) = BN(conv(·, W̃)): scaling α_1x1, α_3x3, α_pool together changes nothing,
    unless branch_scale=alpha-sum puts the branch's total weight back in front of it."""
    x = torch.randn(4, 5, 8, 8, dtype=D)
    row = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2], dtype=D)
    scaled = row.clone()
    scaled[[C1, C3, POOL]] *= 3
    plain, summed = _cell(eps=1e-30), _cell(branch_scale="alpha-sum", eps=1e-30)  # BN's ε aside
    torch.testing.assert_close(_edge_only(plain, x, row), _edge_only(plain, x, scaled), rtol=0, atol=1e-10)
    branch = _edge_only(summed, x, row) - row[SKIP] * x
    branch_scaled = _edge_only(summed, x, scaled) - row[SKIP] * x
    torch.testing.assert_close(branch_scaled, 3 * branch, rtol=0, atol=1e-10)


def test_one_kernel_per_edge():
    c = 6
    merged, mixed = MergedCell(c), MixedCell(c)
    assert [tuple(p.shape) for p in merged.parameters()] == [(c, c, 3, 3)] * 6
    assert sum(p.numel() for p in merged.parameters()) == 6 * c * c * 9
    assert sum(p.numel() for p in mixed.parameters()) == 6 * c * c * (9 + 1)
    assert merged.conv_weights(2, C1)[0] is merged.conv_weights(2, C3)[0] is merged.kernels[2]


def test_track_running_stats_updates_and_is_used_in_eval():
    cell = _cell(track_running_stats=True)
    w = torch.softmax(torch.randn(6, 5, dtype=D), -1)
    cell(torch.randn(8, 5, 8, 8, dtype=D) * 2 + 1, w)
    assert cell.running_mean_0.abs().sum() > 0
    cell.eval()
    x = torch.randn(2, 5, 8, 8, dtype=D)
    assert not torch.allclose(cell(x, w), _cell()(x, w))  # eval normalises with the running stats


# ---------------------------------------------------------------------------------------------
# the method
# ---------------------------------------------------------------------------------------------




def test_registry_defaults_and_sources():
    v1, v2 = tiny("mergenas-v1"), tiny("mergenas-v2")
    assert (v1.options.order, v2.options.order) == (1, 2)
    for m in (v1, v2):
        assert m.options.w_weight_decay == 2e-2 and m.options.pool == "merged"
        assert all(isinstance(c, MergedCell) for c in m.supernet.search_cells)
    text = describe_method("mergenas-v1")
    assert "w_weight_decay = 0.02" in text and "1e-2" in text and "departures from the paper" in text
    assert resolve_config("mergenas-v2", preset="paper", device="cpu").epochs == 50


@pytest.mark.parametrize("method", ["mergenas-v1", "mergenas-v2"])
def test_a_step_updates_w_and_alpha_and_derives_an_nb201_cell(method):
    m = tiny(method)
    alpha, kernel = m.alpha.detach().clone(), m.supernet.search_cells[0].kernels[0].detach().clone()
    stats = m.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=True)
    assert not torch.equal(alpha, m.alpha) and not torch.equal(kernel, m.supernet.search_cells[0].kernels[0])
    assert torch.isfinite(stats.op_grad).all() and stats.op_grad.abs().sum() > 0
    assert Genotype.from_str(m.derive().to_str()) == Genotype.from_weights(m.op_weights())


def test_gradient_correlation_of_1x1_uses_only_the_centre_taps():
    m = tiny("mergenas-v1")
    g = torch.Generator().manual_seed(3)
    params = {p for ps in m._gc_groups.values() for p in ps}
    g_w = {p: torch.randn(p.shape, generator=g) for p in params}
    g_a = {p: torch.randn(p.shape, generator=g) for p in params}
    inner, cos = m._gradient_correlation(g_w, g_a)
    for e in range(6):
        ps = m._gc_groups[(e, C1)]
        assert ps == m._gc_groups[(e, C3)]  # one shared kernel per edge
        full = sum((g_w[p] * g_a[p]).sum() for p in ps)
        centre = sum((g_w[p][:, :, 1, 1] * g_a[p][:, :, 1, 1]).sum() for p in ps)
        assert inner[e, C3].item() == pytest.approx(full.item(), rel=1e-5, abs=1e-4)
        assert inner[e, C1].item() == pytest.approx(centre.item(), rel=1e-5, abs=1e-4)
    assert torch.isnan(inner[:, [NONE, SKIP, POOL]]).all() and (cos[:, [C1, C3]].abs() <= 1).all()


# ---------------------------------------------------------------------------------------------
# end to end: `nbs run` in subprocesses on real CIFAR-10 (CLI helpers shared with the DNAS tests)
# ---------------------------------------------------------------------------------------------
METHODS = ("mergenas-v1", "mergenas-v2")


@pytest.fixture(scope="module")
def smoke_runs(method_cli, tmp_path_factory) -> Path:
    """Both variants, two seeds each, smoke preset for 3 epochs (seed 0 is the resume test's reference)."""
    out = tmp_path_factory.mktemp("mergenas")
    run_all(method_cli, [(m, out, ("--seeds", "2", "--epochs", "3")) for m in METHODS])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_seeds_on_cifar10(smoke_runs, method):
    frames = [check_records(smoke_runs / f"{method}-cifar10-seed{s}", 3) for s in (0, 1)]
    assert (frames[0].method == method).all()
    assert frames[0].op_weights.iloc[-1].tolist() != frames[1].op_weights.iloc[-1].tolist()  # seeds differ


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(method_cli, smoke_runs, tmp_path):
    assert_resume_reproduces(method_cli, "mergenas-v2", smoke_runs / "mergenas-v2-cifar10-seed0", tmp_path, 3)


# ---------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# ---------------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_merged_cell_on_cuda_matches_cpu():
    cell = _cell(track_running_stats=True)
    x = torch.randn(4, 5, 16, 16, dtype=D)
    w = torch.softmax(torch.randn(6, 5, dtype=D), -1)
    cpu = cell(x, w)
    torch.testing.assert_close(cell.cuda()(x.cuda(), w.cuda()).cpu(), cpu, rtol=0, atol=1e-10)


@pytest.mark.cuda
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amp", [False, True])
def test_search_step_on_cuda(method, amp):
    cfg = resolve_config(method, preset="smoke", device="cuda",
                         overrides={"channels": "8", **({"amp": "true", "channels_last": "true"} if amp else {})})
    m = build_method(cfg, 10, 4)
    g = torch.Generator(device="cuda").manual_seed(0)
    make = lambda: (torch.randn(16, 3, 32, 32, device="cuda", generator=g),  # noqa: E731
                    torch.randint(0, 10, (16,), device="cuda", generator=g))
    alpha = m.alpha.detach().clone()
    stats = m.step({name: make() for name in m.streams}, 0, 0, measure_gc=True)
    assert torch.isfinite(stats.loss_sum) and stats.op_grad.is_cuda and not torch.equal(alpha, m.alpha.detach())
    Genotype.from_str(m.derive().to_str())
