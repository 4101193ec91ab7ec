import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.space.cost import count_cost
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.mixed_cell import MixedCell
from nasbench_stability.space.ops import OP_INDEX
from nasbench_stability.space.pooling import avg_pool_3x3
from nasbench_stability.space.reference_cell import ReferenceCell
from nasbench_stability.space.supernet import NetworkShape, Supernet

C1, C3 = OP_INDEX["nor_conv_1x1"], OP_INDEX["nor_conv_3x3"]


def _twin_cells(channels=6, track=False):
    torch.manual_seed(0)
    fused = MixedCell(channels, track_running_stats=track).double()
    ref = ReferenceCell(channels, track_running_stats=track).double()
    for e in range(6):  # ReLU → Conv → BN: the conv is module [1]
        ref.edges[e][C1][1].weight.data.copy_(fused.conv1x1[e].data)
        ref.edges[e][C3][1].weight.data.copy_(fused.conv3x3[e].data)
    return fused, ref


def test_fused_cell_equals_literal_sum_of_ops_and_its_gradients():
    fused, ref = _twin_cells()
    x = torch.randn(5, 6, 8, 8, dtype=torch.double)
    alpha = torch.randn(6, 5, dtype=torch.double, requires_grad=True)
    outs, grads = [], []
    for cell in (fused, ref):
        w = torch.softmax(alpha, -1)
        out = cell(x, w)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=torch.double).view_as(out)).sum()
        params = [alpha] + [p for p in cell.parameters()]
        outs.append(out)
        grads.append(torch.autograd.grad(loss, params))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=1e-10)   # ∂/∂α
    fused_conv = {id(p): g for p, g in zip(fused.parameters(), grads[0][1:])}
    for e in range(6):
        ref_conv3 = dict(zip([id(p) for p in ref.parameters()], grads[1][1:]))[id(ref.edges[e][C3][1].weight)]
        torch.testing.assert_close(fused_conv[id(fused.conv3x3[e])], ref_conv3, rtol=0, atol=1e-10)


def test_single_path_mask_computes_only_chosen_ops_and_matches():
    fused, ref = _twin_cells()
    x = torch.randn(3, 6, 8, 8, dtype=torch.double)
    g = Genotype.from_str("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    onehot = torch.tensor(g.one_hot(), dtype=torch.double)
    active = g.one_hot().astype(bool)
    torch.testing.assert_close(fused(x, onehot, active), ref(x, onehot), rtol=0, atol=1e-12)


def test_running_stats_option_is_used_in_eval_mode():
    fused, ref = _twin_cells(track=True)
    w = torch.softmax(torch.randn(6, 5, dtype=torch.double), -1)
    for _ in range(3):
        x = torch.randn(8, 6, 8, 8, dtype=torch.double) * 2 + 1
        fused(x, w), ref(x, w)
    fused.eval(), ref.eval()
    x = torch.randn(2, 6, 8, 8, dtype=torch.double)
    torch.testing.assert_close(fused(x, w), ref(x, w), rtol=0, atol=1e-12)
    assert fused.running_mean_0_3.abs().sum() > 0  # statistics really were tracked


def test_avg_pool_matches_count_include_pad_false():
    x = torch.randn(2, 4, 7, 9)
    torch.testing.assert_close(avg_pool_3x3(x), F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))


def test_supernet_accepts_shared_or_per_cell_weights():
    torch.manual_seed(0)
    net = Supernet(NetworkShape(4, 1, 10), lambda c: MixedCell(c)).eval()
    x = torch.randn(2, 3, 32, 32)
    w = torch.softmax(torch.randn(6, 5), -1)
    shared_out = net(x, w)
    assert shared_out.shape == (2, 10)
    torch.testing.assert_close(net(x, w.expand(3, 6, 5)), shared_out)
    per_cell = w.expand(3, 6, 5).clone()
    per_cell[1] = torch.softmax(torch.randn(6, 5), -1)
    assert not torch.allclose(net(x, per_cell), shared_out)
    with pytest.raises(ValueError):
        net(x, w.expand(2, 6, 5))


def test_params_equal_benchmark_table_and_flops_differ_only_by_elementwise_terms(shared):
    """Params match the table exactly. Its FLOPs also count BN/ReLU (3 per output element of a conv
    op) and the 3×3 pool (9 per output element); our count is conv+linear MACs. So the table minus
    ours must be one constant plus exactly those terms."""
    zc = pd.read_csv(shared / "nb201" / "extras" / "nb201_zc_proxies.csv").sample(12, random_state=0)
    per_cell_elements = 5 * (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8) / 1e6
    rests = []
    for net_str, params, flops in zip(zc.net_str, zc.params, zc.flops):
        g = Genotype.from_str(net_str)
        cost = count_cost(g)
        assert cost.params_m == pytest.approx(params, abs=1e-9)
        n_conv = sum(o.startswith("nor_conv") for o in g.ops)
        n_pool = g.ops.count("avg_pool_3x3")
        rests.append(flops - cost.flops_m - per_cell_elements * (3 * n_conv + 9 * n_pool))
    assert np.ptp(rests) < 1e-9  # the same skeleton constant for every cell
