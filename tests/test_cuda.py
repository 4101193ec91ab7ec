"""CUDA correctness (skipped without a GPU): the fused cell, a search step, bf16 autocast."""

import pytest
import torch

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.run import build_method
from nasbench_stability.space.mixed_cell import MixedCell
from nasbench_stability.space.reference_cell import ReferenceCell

pytestmark = pytest.mark.cuda


def test_fused_cell_on_cuda_matches_cpu_and_reference():
    torch.manual_seed(0)
    cell = MixedCell(8).double()
    ref = ReferenceCell(8).double()
    for e in range(6):
        ref.edges[e][2][1].weight.data.copy_(cell.conv1x1[e].data)
        ref.edges[e][3][1].weight.data.copy_(cell.conv3x3[e].data)
    x = torch.randn(4, 8, 16, 16, dtype=torch.double)
    w = torch.softmax(torch.randn(6, 5, dtype=torch.double), -1)
    cpu = cell(x, w)
    gpu = cell.cuda()(x.cuda(), w.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-10)
    torch.testing.assert_close(ref.cuda()(x.cuda(), w.cuda()), gpu, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["darts-v1", "darts-v2", "single-darts"])
@pytest.mark.parametrize("amp", [False, True])
def test_search_step_on_cuda(method, amp):
    overrides = {"channels": "8", "amp": "true"} if amp else {"channels": "8"}
    cfg = resolve_config(method, preset="smoke", device="cuda", overrides=overrides)
    m = build_method(cfg, 10, 4)
    g = torch.Generator(device="cuda").manual_seed(0)
    b = lambda: (torch.randn(16, 3, 32, 32, device="cuda", generator=g), torch.randint(0, 10, (16,), device="cuda", generator=g))
    batches = {name: b() for name in m.streams}
    alpha0 = m.alpha.detach().clone()
    stats = m.step(batches, 0, 0, measure_gc=True)
    assert torch.isfinite(stats.loss_sum) and stats.op_grad.is_cuda
    assert not torch.equal(alpha0, m.alpha.detach())
    assert m.derive() is not None
