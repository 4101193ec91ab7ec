"""GDAS: the hard Gumbel-softmax sample (one-hot forward, softmax gradient, distributed as softmax(α)),
the cell that computes only the drawn ops yet gives every op's weight its gradient, whole steps equal to
xautodl's own TinyNetworkGDAS under the same noise, τ's schedule across epochs and a resume, and one
run through the CLI on real CIFAR-10."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2

from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.describe import describe_method
from nasbench_stability.methods.options import apply_overrides
from nasbench_stability.methods.registry import get_method
from nasbench_stability.methods.sampling import gdas as gdas_module
from nasbench_stability.methods.sampling.gdas import Draw, gumbel_noise, hard_gumbel_softmax
from nasbench_stability.space.gdas_cell import GdasCell
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.mixed_cell import OUT_EDGES, MixedCell
from nasbench_stability.space.ops import EDGES, OP_INDEX

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, tiny

C3, C1, SKIP, POOL, NONE = (OP_INDEX[n] for n in ("nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3",
                                                  "none"))


def draw_of(alpha: torch.Tensor, tau: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return hard_gumbel_softmax(alpha, tau, gumbel_noise(alpha, torch.Generator().manual_seed(seed)))


# ---------------------------------------------------------------------------------------------
# the sample
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [10.0, 0.7, 0.1])
def test_hard_sample_is_one_hot_and_has_the_softmax_gradient(tau):
    g = torch.Generator().manual_seed(0)
    alpha = torch.randn(6, 5, generator=g, dtype=torch.float64).requires_grad_()
    gumbels = gumbel_noise(alpha, g)
    hard, probs, index = hard_gumbel_softmax(alpha, tau, gumbels)
    assert torch.equal(index, (alpha.detach().log_softmax(-1) + gumbels).argmax(-1))   # the Gumbel-max draw
    drawn = F.one_hot(index, 5).bool()
    assert torch.equal(hard.detach()[~drawn], torch.zeros(24, dtype=torch.float64))   # exactly 0, not ≈ 0
    torch.testing.assert_close(hard.detach()[drawn], torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-15)
    # straight-through: ∂⟨h, v⟩/∂α is the Jacobian-vector product of p = softmax((log_softmax α + g)/τ)
    v = torch.randn(6, 5, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((hard * v).sum(), alpha)
    p = probs.detach()
    u = p * (v - (p * v).sum(-1, keepdim=True)) / tau                   # through the softmax
    expected = u - torch.softmax(alpha.detach(), -1) * u.sum(-1, keepdim=True)   # through log_softmax
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-15)


def test_gumbel_max_draws_are_distributed_as_softmax_alpha_whatever_tau():
    alpha = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5], [0.0] * 5, [3.0, -2.0, 1.0, 1.0, 0.0],
                          [-1.0, 0.2, 0.4, 0.6, 0.8], [1.5, 1.5, -0.5, 0.0, -3.0], [0.1, 0.0, 0.0, 0.0, 2.5]],
                         dtype=torch.float64)
    n = 20_000
    noise = gumbel_noise(torch.empty(n, 6, 5, dtype=torch.float64), torch.Generator().manual_seed(7))
    _, _, index = hard_gumbel_softmax(alpha, 10.0, noise)
    _, _, index_cold = hard_gumbel_softmax(alpha, 0.1, noise)
    assert torch.equal(index, index_cold)   # τ changes the gradient, never the draw
    counts = F.one_hot(index, 5).sum(0).double()             # (6, 5)
    bound = chi2.ppf(0.999, df=4)

    def chi_square(probs: torch.Tensor) -> torch.Tensor:
        expected = n * probs
        return ((counts - expected) ** 2 / expected).sum(-1)

    assert (chi_square(torch.softmax(alpha, -1)) < bound).all()
    wrong = chi_square(torch.softmax(2 * alpha, -1))         # the test can tell a sharper distribution apart
    assert (wrong[[0, 2, 3, 4, 5]] > 10 * bound).all()


def test_non_finite_noise_is_redrawn_and_a_non_finite_alpha_does_not_hang(monkeypatch):
    m = tiny("gdas")
    real, calls = gdas_module.gumbel_noise, []

    def first_infinite(like, generator):
        out = real(like, generator)
        calls.append(1)
        return out.fill_(float("inf")) if len(calls) == 1 else out

    monkeypatch.setattr(gdas_module, "gumbel_noise", first_infinite)
    d = m.draw(torch.Generator().manual_seed(0))
    assert d.redraws == 1 and len(calls) == 2 and torch.isfinite(d.hardwts).all()
    with torch.no_grad():
        m.alpha[2, 1] = float("nan")
    d = m.draw(torch.Generator().manual_seed(0))
    assert d.redraws == gdas_module.MAX_DRAWS - 1 and not torch.isfinite(d.hardwts).all()


# ---------------------------------------------------------------------------------------------
# the cell: the drawn ops only, and every op's weight gets its gradient
# ---------------------------------------------------------------------------------------------
CELL = (C3, SKIP, C1, NONE, POOL, C3)   # edges 0→1, 0→2, 1→2, 0→3, 1→3, 2→3


def forced_draw(m, ops=CELL) -> Draw:
    """A draw of the model's own ``draw``, with α so peaked that the noise cannot move the argmax."""
    with torch.no_grad():
        m.alpha.zero_()
        m.alpha[range(6), list(ops)] = 40.0
    d = m.draw(torch.Generator().manual_seed(3))
    assert d.ops == ops
    return d


def test_forward_is_the_drawn_cells_and_only_its_ops_run():
    m = tiny("gdas", track_running_stats=True)
    d = forced_draw(m)
    cells = m.supernet.search_cells
    before = [{k: v.clone() for k, v in c.named_buffers() if k.startswith("running")} for c in cells]
    x, y = batch(0, size=8)
    out = m._forward(x, d.hardwts, d.active)
    F.cross_entropy(out, y).backward()
    for cell, saved in zip(cells, before):
        for e in range(6):
            for op, params in ((C1, cell.conv1x1), (C3, cell.conv3x3)):
                assert (params[e].grad is not None) == (CELL[e] == op), (e, op)
        for src, outs in enumerate(OUT_EDGES):   # BN statistics move for the drawn convs only
            for op in (C1, C3):
                now, old = getattr(cell, f"running_mean_{src}_{op}"), saved[f"running_mean_{src}_{op}"]
                for k, (e, _) in enumerate(outs):
                    rows = slice(k * cell.channels, (k + 1) * cell.channels)
                    assert torch.equal(now[rows], old[rows]) == (CELL[e] != op), (src, e, op)
    with torch.no_grad():   # the same output as the discrete cell and as every op weighted by h
        one_cell = m.discrete_logits(x, Genotype.from_op_indices(CELL))
        all_ops = m._forward(x, d.hardwts.detach(), None)
        drawn = m._forward(x, d.hardwts.detach(), d.active)
    torch.testing.assert_close(drawn, one_cell, rtol=0, atol=1e-5)
    torch.testing.assert_close(drawn, all_ops, rtol=0, atol=1e-5)
    assert (drawn - m._forward(x, forced_draw(m, (C1,) * 6).hardwts.detach(), None)).abs().max() > 1e-2


def test_undrawn_ops_get_the_gradient_of_their_zero_weight():
    """forward_gdas adds each undrawn op's weight h (0 in value) to its edge: ∂L/∂h is then the sum of
    ∂L/∂(target node); without those terms α would only hear from the drawn op."""
    torch.manual_seed(0)
    cell = GdasCell(4).double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    r = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    active = Draw(torch.zeros(6, 5), CELL).active
    weights = torch.tensor(np.array(active, dtype=float)).requires_grad_()
    (grad,) = torch.autograd.grad((cell(x, weights, active) * r).sum(), weights)
    undrawn = ~torch.tensor(active)
    into_3 = [e for e, (_, t) in enumerate(EDGES) if t == 3]
    torch.testing.assert_close(grad[into_3][undrawn[into_3]], r.sum().expand(12), rtol=1e-12, atol=0)
    into_2 = grad[[1, 2]][undrawn[[1, 2]]]                   # edges 0→2 and 1→2: ∂L/∂node2, nonzero
    assert torch.allclose(into_2, into_2[0].expand(8), rtol=1e-12) and into_2[0].abs() > 1e-3
    # a plain mixed cell (no such terms) computes the same output but gives those weights no gradient
    plain = MixedCell(4).double()
    plain.load_state_dict(cell.state_dict())
    out = plain(x, weights, active)
    torch.testing.assert_close(out, cell(x, weights, active), rtol=0, atol=0)
    (plain_grad,) = torch.autograd.grad((out * r).sum(), weights)
    assert torch.equal(plain_grad[undrawn], torch.zeros(24, dtype=torch.float64))
    torch.testing.assert_close(plain_grad[~undrawn], grad[~undrawn], rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# side by side with xautodl's TinyNetworkGDAS (GDAS.py's search_func), float64, same noise
# ---------------------------------------------------------------------------------------------
def xautodl_gdas_step(net, w_opt, a_opt, train, arch, clip: float, set_to_none: bool, seeds) -> None:
    """One iteration of GDAS.py's search_func (zero_grad as PyTorch 1.x did it unless ``set_to_none``);
    the global generator, which xautodl's forward draws from, is seeded with ``seeds`` before each forward."""
    w_opt.zero_grad(set_to_none=set_to_none)
    torch.manual_seed(seeds[0])
    F.cross_entropy(net(train[0])[1], train[1]).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    w_opt.step()
    a_opt.zero_grad(set_to_none=set_to_none)
    torch.manual_seed(seeds[1])
    F.cross_entropy(net(arch[0])[1], arch[1]).backward()
    a_opt.step()


def assert_same_bn_stats(m, net) -> None:
    """Running means of every conv op's BN: only drawn ops ran, in both."""
    for ours, theirs in zip(m.supernet.search_cells, [c for c in net.cells if hasattr(c, "edges")]):
        for src, outs in enumerate(OUT_EDGES):
            for k, (e, t) in enumerate(outs):
                for op in (C1, C3):
                    mean = getattr(ours, f"running_mean_{src}_{op}")[k * ours.channels:(k + 1) * ours.channels]
                    torch.testing.assert_close(mean, theirs.edges[f"{t}<-{src}"][op].op[2].running_mean,
                                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("undrawn,set_to_none,clip,track", [("decayed", False, 5.0, True), ("skipped", True, 0.05, False)])
def test_steps_equal_xautodls_gdas_under_the_same_noise(undrawn, set_to_none, clip, track):
    xparity = pytest.importorskip("test_parity_xautodl")
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_gdas import TinyNetworkGDAS

    epochs, steps = 2, 3
    torch.manual_seed(0)
    net = TinyNetworkGDAS(4, 1, 4, 10, NAS_BENCH_201, False, track).double()
    m = tiny("gdas", epochs=epochs, track_running_stats=track, grad_clip=clip, unsampled_weights=undrawn).double()
    xparity.load_xautodl_into(m, net)
    with torch.no_grad():   # xautodl's cell convs have a bias (bias=not affine) that training-mode BN cancels;
        for conv in net.modules():   # nbs has none. At 0 (where its zero gradient keeps it) BN statistics compare
            if isinstance(conv, torch.nn.Conv2d) and conv.bias is not None:
                conv.bias.zero_()
    w_opt = torch.optim.SGD(net.get_weights(), 0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    scheduler = xparity.xautodl_scheduler_module().CosineAnnealingLR(w_opt, 0, epochs, epochs, 0.001)
    m.train(), net.train()
    drawn = set()
    for epoch in range(epochs):
        scheduler.update(epoch, 0.0)
        net.set_tau(10 - (10 - 0.1) * epoch / (epochs - 1))   # GDAS.py, with GDAS.sh's τ_max, τ_min
        m.begin_epoch(epoch)
        assert m.tau == net.get_tau()
        for step in range(steps):
            scheduler.update(None, 1.0 * step / steps)
            train, arch = xparity.batches(epoch * steps + step)
            seeds = (m.noise_seed(epoch, step, "w"), m.noise_seed(epoch, step, "alpha"))
            xautodl_gdas_step(net, w_opt, a_opt, train, arch, clip, set_to_none, seeds)
            m.step({"train": train, "valid": arch}, epoch=epoch, step=step, measure_gc=False)
            xparity.assert_same_state(m, net, f"after epoch {epoch} step {step}")
            if track:
                assert_same_bn_stats(m, net)
        drawn.add(m.extra_records()["drawn_cells_distinct"])
    assert min(drawn) > 3   # several different cells were drawn, so undrawn ops and redrawn ops both occurred


def test_unsampled_weights_decides_whether_convs_drawn_before_but_not_now_take_the_sgd_step():
    step_m, skip_m = tiny("gdas"), tiny("gdas", unsampled_weights="skipped")
    draws = []
    real_draw = step_m.draw
    step_m.draw = lambda generator: draws.append(real_draw(generator)) or draws[-1]
    for i in range(2):
        b = {"train": batch(10 + i, size=8), "valid": batch(20 + i, size=8)}
        for m in (step_m, skip_m):
            m.step(b, epoch=0, step=i, measure_gc=False)
    w0, a0, w1, _ = (d.ops for d in draws)
    # the second weight step: "step" also moves (weight decay, momentum) the convs drawn in step 0 only
    moved = {(e, op) for e in range(6) for op in (C1, C3) if op in (w0[e], a0[e]) and w1[e] != op}
    assert moved, "pick batches whose draws leave some conv out"
    for (e, op), params in step_m._conv_groups.items():
        for p, q in zip(params, skip_m._conv_groups[(e, op)]):
            assert torch.equal(p, q) == ((e, op) not in moved), (e, op)
    for p, q in zip(step_m.supernet.stem.parameters(), skip_m.supernet.stem.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("order", ["w-alpha", "alpha-w"])
def test_each_draw_sees_the_alpha_of_its_forward_and_measuring_gc_changes_no_draw(order):
    plain, measured = tiny("gdas", step_order=order), tiny("gdas", step_order=order)
    for m in (plain, measured):   # both draws of every step are CELL
        with torch.no_grad():
            m.alpha.zero_()
            m.alpha[range(6), list(CELL)] = 40.0
    seen = []
    real_draw = measured.draw
    measured.draw = lambda generator: seen.append(measured.alpha.detach().clone()) or real_draw(generator)
    for i in range(3):
        b = {"train": batch(30 + i, size=8), "valid": batch(40 + i, size=8)}
        before = measured.alpha.detach().clone()
        plain.step(b, epoch=0, step=i, measure_gc=False)
        stats = measured.step(b, epoch=0, step=i, measure_gc=True)
        assert torch.equal(plain.alpha, measured.alpha)
        assert all(torch.equal(p, q) for p, q in zip(plain.w_params, measured.w_params))
        first, second = seen[-2:]   # α step's draw first (gc needs it); the weight step's after the α step
        assert torch.equal(first, before) and torch.equal(second, measured.alpha if order == "alpha-w" else before)
        # gc: only the conv ops both draws computed (CELL's, all reaching the output) have two gradients
        assert torch.isfinite(stats.gc_inner).nonzero().tolist() == [[0, C3], [2, C1], [5, C3]]


# ---------------------------------------------------------------------------------------------
# τ, resume, options, records
# ---------------------------------------------------------------------------------------------
def test_tau_falls_linearly_and_a_resumed_run_continues_exactly():
    m = tiny("gdas", epochs=5)
    assert [m.tau_at(e) for e in range(5)] == pytest.approx([10, 7.525, 5.05, 2.575, 0.1], abs=1e-12)
    assert tiny("gdas", epochs=1).tau_at(0) == 10.0
    assert tiny("gdas", epochs=3, tau_max=2, tau_min=1).tau_at(1) == pytest.approx(1.5)

    def run_epoch(model, epoch):
        model.begin_epoch(epoch)
        for step in range(2):
            model.step({"train": batch(epoch * 2 + step, size=8), "valid": batch(50 + step, size=8)},
                       epoch=epoch, step=step, measure_gc=False)
        return model.extra_records()

    straight = tiny("gdas", epochs=5)
    first = run_epoch(straight, 0)
    buffer = io.BytesIO()
    torch.save(straight.checkpoint_state(), buffer)
    last = run_epoch(straight, 1)
    resumed = tiny("gdas", epochs=5)
    buffer.seek(0)
    resumed.load_checkpoint_state(torch.load(buffer, weights_only=True))
    again = run_epoch(resumed, 1)
    assert first["tau"] == 10.0 and last["tau"] == again["tau"] == pytest.approx(7.525)
    assert torch.equal(resumed.alpha, straight.alpha) and torch.equal(resumed.ever_drawn, straight.ever_drawn)
    assert all(torch.equal(p, q) for p, q in zip(resumed.w_params, straight.w_params))
    np.testing.assert_array_equal(again["drawn_op_freq"], last["drawn_op_freq"])


def test_defaults_are_xautodls_nb201_gdas():
    o = get_method("gdas").default_options()
    # GDAS.config
    assert (o.epochs, o.batch_size, o.w_lr, o.w_lr_min, o.w_momentum, o.w_nesterov, o.w_weight_decay) == \
        (250, 64, 0.025, 0.001, 0.9, True, 5e-4)
    # GDAS.sh; GDAS.py (clip, Adam betas, order of the two steps); search_model_gdas.py (init, genotype)
    assert (o.a_lr, o.a_weight_decay, o.tau_max, o.tau_min, o.track_running_stats) == (3e-4, 1e-3, 10, 0.1, True)
    assert (o.grad_clip, o.clip_includes_alpha, o.a_beta1, o.a_beta2, o.step_order, o.mode) == \
        (5, True, 0.5, 0.999, "w-alpha", "bilevel")
    assert (o.alpha_init_std, o.derive_none, o.order) == (1e-3, True, 1)
    text = describe_method("gdas")
    for source in ("GDAS.config", "GDAS.sh", "GDAS.py", "search_model_gdas.py", "run solo"):
        assert source in text
    with pytest.raises(ConfigError, match="tau_min"):
        apply_overrides(o, {"tau_min": "20"})
    with pytest.raises(ConfigError, match="order"):
        apply_overrides(o, {"order": "2"})
    m = tiny("gdas")
    assert not m.packable and "host" in m.graph_blocker()


def test_derived_cell_is_argmax_alpha_with_none():
    m = tiny("gdas")
    with torch.no_grad():
        m.alpha.copy_(torch.randn(6, 5))
        m.alpha[1, NONE] = 9.0
    g = m.derive()
    assert g.ops[1] == "none" and g.op_indices() == tuple(m.alpha.argmax(-1).tolist())
    # outside a step (the α-Hessian) every call draws the same sample: the Hessian is of one function
    x, y = batch(4, size=8)
    assert torch.equal(m.arch_loss(x, y), m.arch_loss(x, y))


def test_gdas_run_through_the_cli(cli, tmp_path):
    out = tmp_path / "runs"
    result = cli("run", "--method", "gdas", "--out", str(out), "--device", "cpu", *METHOD_RUN_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    df = pd.read_parquet(out / "gdas-cifar10-seed0" / "records").sort_values("epoch")
    assert df.epoch.tolist() == [1, 2] and df.tau.tolist() == pytest.approx([10.0, 0.1])
    for _, row in df.iterrows():
        weights = np.asarray(row.op_weights).reshape(6, 5)
        assert Genotype.from_str(row.genotype) == Genotype.from_weights(weights)
        freq = np.asarray(row.drawn_op_freq).reshape(6, 5)
        # 2 steps (16 images, batch 8), each with a weight-step and an α-step draw
        np.testing.assert_allclose(freq.sum(1), 1.0)
        assert set(np.unique(freq * 4)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
        assert 1 <= row.drawn_cells_distinct <= 4 and 0 <= row.drawn_param_free_mean <= 6
        assert row.gumbel_redraws == 0 and 0 <= row.arch_step_acc <= 100 and np.isfinite(row.arch_step_loss)
        assert np.isfinite(row.bench_cifar10_test_200)
