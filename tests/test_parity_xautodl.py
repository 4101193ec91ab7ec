"""Parity with the NB201 reference code: nbs steps equal xautodl's on xautodl's own network.

xautodl's ``TinyNetworkDarts`` (the search network of AutoDL-Projects'
``exps/NAS-Bench-201-algos/DARTS-V1.py`` / ``DARTS-V2.py``) is built, its initial weights and α are
copied into an nbs supernet, and both take the same steps on the same batches in float64 on CPU:

* DARTS-V1 as ``DARTS-V1.py``'s ``search_func`` does it: weight step (backward, clip of
  ``network.parameters()`` — α included —, SGD), then α step (backward, Adam), with xautodl's own
  CosineAnnealingLR driven per epoch and per step as the script drives it;
* DARTS-V2 following ``DARTS-V2.py``'s ``backward_step_unrolled`` operation by operation (that
  script is not in the installed package, so the test re-derives it: unrolled weights
  θ − ξ(μ·buf + ∇θ L_train + wd·θ), ∇α L_val at them, a central finite-difference Hessian-vector
  product with R = 0.01/‖v‖ on the original weights, then the weight step with clip 5).

α and every weight must agree to 1e-8 after every step. xautodl is installed ``--no-deps`` by the
Makefile (its package imports torchvision in places; only the model files are used here).
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.space.ops import EDGES

from method_helpers import batch, tiny

xautodl = pytest.importorskip("xautodl", reason="xautodl (the NB201 reference code) is not installed")
from xautodl.models.cell_operations import NAS_BENCH_201  # noqa: E402
from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts  # noqa: E402

C, N, EPOCHS, STEPS = 4, 1, 2, 3
TOL = 1e-8


def xautodl_scheduler_module():
    """xautodl/procedures/optimizers.py, loaded alone (its package __init__ imports torchvision)."""
    path = xautodl.__path__[0] + "/procedures/optimizers.py"
    spec = importlib.util.spec_from_file_location("xautodl_procedures_optimizers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_bn(dst: torch.nn.BatchNorm2d, src: torch.nn.BatchNorm2d) -> None:
    dst.load_state_dict(src.state_dict())


def load_xautodl_into(method, net) -> None:
    """Copy xautodl's parameters (and BN buffers) into the nbs supernet, module by module."""
    sn = method.supernet
    with torch.no_grad():
        sn.stem[0].weight.copy_(net.stem[0].weight)
        copy_bn(sn.stem[1], net.stem[1])
        for ours, theirs in zip(sn.layers, net.cells):
            if hasattr(theirs, "edges"):   # a search cell: edge "t<-s", ops in NB201 order
                for e, (s, t) in enumerate(EDGES):
                    ops = theirs.edges[f"{t}<-{s}"]
                    ours.conv1x1[e].copy_(ops[2].op[1].weight)
                    ours.conv3x3[e].copy_(ops[3].op[1].weight)
            else:                          # ResNetBasicblock
                for part in ("conv_a", "conv_b"):
                    getattr(ours, part)[1].weight.copy_(getattr(theirs, part).op[1].weight)
                    copy_bn(getattr(ours, part)[2], getattr(theirs, part).op[2])
                ours.downsample[1].weight.copy_(theirs.downsample[1].weight)
        copy_bn(sn.head.bn, net.lastact[0])
        sn.head.classifier.load_state_dict(net.classifier.state_dict())
        method.alpha.copy_(net.arch_parameters)


def assert_same_state(method, net, context: str) -> None:
    torch.testing.assert_close(method.alpha, net.arch_parameters, rtol=0, atol=TOL, msg=f"α {context}")
    for ours, theirs in zip(method.supernet.search_cells, [c for c in net.cells if hasattr(c, "edges")]):
        for e, (s, t) in enumerate(EDGES):
            ops = theirs.edges[f"{t}<-{s}"]
            torch.testing.assert_close(ours.conv1x1[e], ops[2].op[1].weight, rtol=0, atol=TOL, msg=f"1x1 {context}")
            torch.testing.assert_close(ours.conv3x3[e], ops[3].op[1].weight, rtol=0, atol=TOL, msg=f"3x3 {context}")
    torch.testing.assert_close(method.supernet.stem[0].weight, net.stem[0].weight, rtol=0, atol=TOL)
    torch.testing.assert_close(method.supernet.head.classifier.weight, net.classifier.weight, rtol=0, atol=TOL)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pair(method: str, track: bool, device: str = "cpu", **overrides):
    torch.manual_seed(0)
    net = TinyNetworkDarts(C, N, 4, 10, NAS_BENCH_201, False, track).double()
    m = tiny(method, channels=C, cells_per_stage=N, epochs=EPOCHS, track_running_stats=track, **overrides).double()
    load_xautodl_into(m, net)
    if device != "cpu":   # both sides on the GPU (cuDNN in float64); the supernet's ctx stays a CPU one
        net, m = net.to(device), m.to(device)
    opts = m.options
    # configs/nas-benchmark/algos/DARTS.config and DARTS-V1.sh's α optimizer
    w_opt = torch.optim.SGD(net.get_weights(), opts.w_lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    scheduler = xautodl_scheduler_module().CosineAnnealingLR(w_opt, 0, EPOCHS, EPOCHS, 0.001)
    return m, net, w_opt, a_opt, scheduler


def batches(step: int, device: str = "cpu"):
    # 16×16 images: the network is size-agnostic, and float64 convolutions are slow on a CPU
    (x, y), (v, w) = batch(100 + step, size=16), batch(200 + step, size=16)
    return (x.double().to(device), y.to(device)), (v.double().to(device), w.to(device))


def norm_of(params) -> float:
    return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params if p.grad is not None)))


# ---------------------------------------------------------------------------------------------
# DARTS-V1
# ---------------------------------------------------------------------------------------------
def xautodl_v1_step(net, w_opt, a_opt, train, arch, clip: float) -> float:
    """One iteration of DARTS-V1.py's search_func (after its scheduler.update); returns the clipped norm."""
    w_opt.zero_grad()
    _, logits = net(train[0])
    F.cross_entropy(logits, train[1]).backward()
    total = float(torch.nn.utils.clip_grad_norm_(net.parameters(), clip))
    w_opt.step()
    a_opt.zero_grad()
    _, logits = net(arch[0])
    F.cross_entropy(logits, arch[1]).backward()
    a_opt.step()
    return total


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("clip", [5.0, 0.05])
def test_darts_v1_steps_equal_xautodls(track, clip, device):
    """Six steps over two epochs (the rate changes between them); clip 0.05 makes the clip act on
    every step, so the α gradient xautodl counts in the norm matters."""
    m, net, w_opt, a_opt, scheduler = pair("darts-v1", track, device, grad_clip=clip)
    m.train(), net.train()
    norms = []
    for epoch in range(EPOCHS):
        scheduler.update(epoch, 0.0)
        for step in range(STEPS):
            scheduler.update(None, 1.0 * step / STEPS)
            train, arch = batches(epoch * STEPS + step, device)
            norms.append(xautodl_v1_step(net, w_opt, a_opt, train, arch, clip))
            m.step({"train": train, "valid": arch}, epoch=epoch, step=step, measure_gc=False)
            assert m.learning_rates()["lr_w"] == pytest.approx(w_opt.param_groups[0]["lr"], rel=1e-15)
            assert_same_state(m, net, f"after epoch {epoch} step {step}")
    if clip < 1:
        assert min(norms) > clip   # the clip was active throughout
    else:
        assert max(norms) < clip   # ... and here never: both regimes are covered


def test_darts_v1_without_the_alpha_term_in_the_clip_differs_from_xautodl():
    """The α term in the clip is small but real: leaving it out is visible at 1e-8 when clipping."""
    m, net, w_opt, a_opt, scheduler = pair("darts-v1", True, grad_clip=0.05, clip_includes_alpha=False)
    scheduler.update(0, 0.0)
    for step in range(2):
        train, arch = batches(step)
        xautodl_v1_step(net, w_opt, a_opt, train, arch, 0.05)
        m.step({"train": train, "valid": arch}, epoch=0, step=step, measure_gc=False)
    with pytest.raises(AssertionError):
        assert_same_state(m, net, "without the α term")


# ---------------------------------------------------------------------------------------------
# DARTS-V2
# ---------------------------------------------------------------------------------------------
def weights_of(net) -> list[torch.Tensor]:
    return net.get_weights()


def xautodl_v2_step(net, w_opt, a_opt, train, arch) -> None:
    """One iteration of DARTS-V2.py's search_func: the unrolled α step, then the weight step (clip 5)."""
    a_opt.zero_grad()
    # _compute_unrolled_model: θ' = θ − ξ(μ·buf + ∇θ L_train + wd·θ), on a copy of the network
    loss = F.cross_entropy(net(train[0])[1], train[1])
    group = w_opt.param_groups[0]
    lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
    theta = weights_of(net)
    grads = torch.autograd.grad(loss, theta)
    states = [w_opt.state[p].get("momentum_buffer") for p in theta]
    moment = [torch.zeros_like(p) if any(s is None for s in states) else mom * s for p, s in zip(theta, states)]
    unrolled = copy.deepcopy(net)
    with torch.no_grad():
        for p, q, g, mo in zip(weights_of(unrolled), theta, grads, moment):
            p.copy_(q - lr * (mo + g + wd * q))
    unrolled.zero_grad()
    F.cross_entropy(unrolled(arch[0])[1], arch[1]).backward()
    d_alpha = unrolled.arch_parameters.grad.clone()
    vector = [p.grad.detach().clone() for p in weights_of(unrolled)]
    # _hessian_vector_product on the original weights, R = 0.01 / ‖v‖
    r = 1e-2 / torch.cat([v.flatten() for v in vector]).norm()

    def alpha_grad_at(scale: float) -> torch.Tensor:
        with torch.no_grad():
            for p, v in zip(theta, vector):
                p.add_(v, alpha=scale)
        return torch.autograd.grad(F.cross_entropy(net(train[0])[1], train[1]), [net.arch_parameters])[0]

    g_pos = alpha_grad_at(float(r))
    g_neg = alpha_grad_at(-2 * float(r))
    with torch.no_grad():
        for p, v in zip(theta, vector):
            p.add_(v, alpha=float(r))
    net.arch_parameters.grad = d_alpha - lr * (g_pos - g_neg) / (2 * r)
    a_opt.step()
    # the weight step: α.grad still holds the unrolled gradient and collects ∇α L_train too
    w_opt.zero_grad()
    F.cross_entropy(net(train[0])[1], train[1]).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5)
    w_opt.step()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("track", [True, False])
def test_darts_v2_steps_equal_xautodls(track, device):
    m, net, w_opt, a_opt, scheduler = pair("darts-v2", track, device)
    assert m.options.step_order == "alpha-w" and m.options.order == 2 and m.options.grad_clip == 5
    m.train(), net.train()
    for epoch in range(EPOCHS):
        scheduler.update(epoch, 0.0)
        for step in range(STEPS):
            scheduler.update(None, 1.0 * step / STEPS)
            train, arch = batches(epoch * STEPS + step, device)
            xautodl_v2_step(net, w_opt, a_opt, train, arch)
            m.step({"train": train, "valid": arch}, epoch=epoch, step=step, measure_gc=False)
            assert_same_state(m, net, f"after epoch {epoch} step {step}")
