"""Stabilizers that change what the supernet is trained at: PC-DARTS (partial channels, edge
normalization), FairDARTS (sigmoid gates, zero-one loss), SDARTS-RS/-ADV (perturbed weight step), DrNAS
(Dirichlet op weights). Each defining piece of math against an independent computation, and one tiny
`nbs run` per method on real CIFAR-10."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.errors import ConfigError
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.methods.describe import describe_method
from nasbench_stability.methods.registry import get_method
from nasbench_stability.methods.gradient.gates import zero_one_loss
from nasbench_stability.methods.stabilizers import sdarts
from nasbench_stability.methods.stabilizers.drnas import concentration, dirichlet_kl, dirichlet_weights
from nasbench_stability.methods.stabilizers.fair_darts import threshold_genotype
from nasbench_stability.methods.stabilizers.pc_darts import NODE_EDGES
from nasbench_stability.methods.stabilizers.sdarts import pgd_offset, simplex_clip
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import EDGES, OPS
from nasbench_stability.space.partial_channel_cell import PartialChannelCell

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, check_records, tiny

NONE = OPS.index("none")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batches(seed: int = 1, size: int = 16) -> dict:
    return {"train": batch(seed, 8, size), "valid": batch(seed + 100, 8, size)}


def received_weights(method) -> list[torch.Tensor]:
    """The op weights of every supernet forward from now on (a forward pre-hook)."""
    seen: list[torch.Tensor] = []
    method.supernet.register_forward_pre_hook(lambda mod, args: seen.append(args[1].detach().clone()))
    return seen


# =================================================================================================
# PC-DARTS
# =================================================================================================
# the default settings (DrNAS' NB201 PC-DARTS, no edge normalization) and K=1 = DrNAS' DARTS: see
# tests/test_method_pc_darts.py. Here PC-DARTS' edge normalization (edge_normalization=true).
def reference_pc_cell(cell: PartialChannelCell, x: torch.Tensor, mix: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """PC-DARTS as its code writes it, on the NB201 DAG: MixedOp = shuffle(cat[Σ_o w_o·o(x[:, :C/K]),
    x[:, C/K:]]) with groups K, and node j = Σ_i β̂_ij · MixedOp_ij(node i). Ops from the cell's own
    parameters; BN affine-free with batch statistics."""
    k, c = cell.k, cell.part

    def shuffle(t):   # PC-DARTS' channel_shuffle
        b, ch, h, w = t.shape
        return t.view(b, k, ch // k, h, w).transpose(1, 2).contiguous().view(b, ch, h, w)

    def bn(t):
        return F.batch_norm(t, None, None, training=True, eps=1e-5)

    def mixed_op(e, h):
        part, rest = h[:, :c], h[:, c:]
        outs = [torch.zeros_like(part), part, bn(F.conv2d(F.relu(part), cell.ops.conv1x1[e])),
                bn(F.conv2d(F.relu(part), cell.ops.conv3x3[e], padding=1)),
                F.avg_pool2d(part, 3, 1, 1, count_include_pad=False)]
        return shuffle(torch.cat([sum(w * o for w, o in zip(mix[e], outs)), rest], dim=1))

    nodes = [x]
    for j in range(1, 4):
        nodes.append(sum(beta[e] * mixed_op(e, nodes[s]) for e, (s, t) in enumerate(EDGES) if t == j))
    return nodes[-1]


def test_partial_channel_cell_with_edge_normalization_is_pc_darts_mixed_op_and_node_sum():
    torch.manual_seed(0)
    m = tiny("pc-darts", channels=8, edge_normalization="true")
    cell = PartialChannelCell(8, 4).double()
    alpha = torch.randn(6, 6, dtype=torch.double)
    beta = m.edge_weights(alpha)
    for node, edges in zip((1, 2, 3), NODE_EDGES):   # β̂: a softmax over the edges entering each node
        assert [EDGES[e][1] for e in edges] == [node] * node
        torch.testing.assert_close(beta[list(edges)], torch.softmax(alpha[list(edges), 5], 0), rtol=0, atol=1e-15)
    mix = torch.softmax(alpha[:, :5], -1)
    x = torch.randn(4, 8, 6, 6, dtype=torch.double)
    torch.testing.assert_close(cell(x, m.activate(alpha)), reference_pc_cell(cell, x, mix, beta), rtol=0, atol=1e-12)


def test_pc_darts_trains_beta_with_alpha_and_records_it():
    m = tiny("pc-darts", edge_normalization="true")   # K=4 on C=4: one channel through the ops
    assert m.alpha.shape == (6, 6) and m.supernet.search_cells[0].part == 1
    before = m.alpha.detach().clone()
    stats = m.step(batches(), 0, 0, True)
    moved = (m.alpha.detach() - before).abs()
    assert (moved[:, :5] > 0).all() and (moved[:, 5] > 0).all()   # one Adam step on both
    assert stats.op_grad.shape == (6, 5) and stats.extra["edge_grad"].shape == (6,)
    # node 1 has one input edge: β̂ = 1 whatever β, so its β gets no gradient (only Adam's weight decay moves it)
    edge_grad = stats.extra["edge_grad"]
    assert edge_grad[0] == 0 and edge_grad[1:].abs().min() > 0 and torch.isfinite(stats.gc_inner[:, 2:4]).all()
    rec = m.extra_records()["edge_weights"]
    assert [rec[list(edges)].sum() for edges in NODE_EDGES] == pytest.approx([1, 1, 1], abs=1e-6)
    np.testing.assert_allclose(m.op_weights().sum(1), 1, rtol=1e-6)   # the op mixture, without β̂
    assert m.derive() == Genotype.from_weights(m.op_weights())


def test_pc_darts_warmup_epochs_take_weight_steps_only():
    m = tiny("pc-darts", warmup_epochs=1)
    before = m.alpha.detach().clone()
    stats = m.step(batches(), 0, 0, False)
    assert torch.equal(m.alpha.detach(), before) and torch.isnan(stats.op_grad).all()
    m.step(batches(), 1, 0, False)
    assert not torch.equal(m.alpha.detach(), before)
    with pytest.raises(ConfigError, match="divisible"):
        tiny("pc-darts", channels=6)


# =================================================================================================
# FairDARTS
# =================================================================================================
def test_zero_one_loss_and_its_gradient():
    torch.manual_seed(0)
    alpha = torch.randn(6, 4, dtype=torch.double, requires_grad=True)
    sig = torch.sigmoid(alpha)
    loss = zero_one_loss(sig.flatten(), 10.0)
    assert loss.item() == pytest.approx(-10 * ((sig - 0.5) ** 2).sum().item() / 24, rel=1e-14)
    (grad,) = torch.autograd.grad(loss, alpha)
    s = sig.detach()   # d/dα of −w/n·Σ(σ−½)² = −2w/n·(σ−½)·σ(1−σ): descent pushes every σ away from ½
    torch.testing.assert_close(grad, -2 * 10 / 24 * (s - 0.5) * s * (1 - s), rtol=1e-12, atol=0)
    assert (torch.sign(-grad) == torch.sign(alpha.detach())).all()


def test_fair_darts_gates_candidates_and_objective():
    m = tiny("fair-darts").eval()
    assert m.alpha.shape == (6, 4)           # no 'none' candidate
    w = m.activate(m.alpha)
    assert torch.equal(w[:, NONE], torch.zeros(6)) and torch.equal(w[:, 1:], torch.sigmoid(m.alpha))
    x, y = batch(3, 8, 16)
    with_01, _ = m.arch_objective(x, y)
    task, _ = m.loss_and_logits(x, y, arch_grad=False)
    torch.testing.assert_close(with_01 - task, -10 * (torch.sigmoid(m.alpha) - 0.5).pow(2).mean())
    torch.testing.assert_close(m.arch_loss(x, y), task)   # the Hessian sees L_valid alone
    m.train()
    stats = m.step(batches(), 0, 0, False)
    assert torch.isnan(stats.op_grad[:, NONE]).all() and torch.isfinite(stats.op_grad[:, 1:]).all()


def test_fair_darts_derivation_argmax_and_threshold():
    best = [(0, 0.9), (1, 0.84), (2, 0.86), (3, 0.99), (1, 0.5), (0, 0.87)]   # (candidate, σ) per edge
    probs = np.full((6, 4), 0.2)
    for e, (j, p) in enumerate(best):
        probs[e, j] = p
    m = tiny("fair-darts")
    with torch.no_grad():
        m.alpha.copy_(torch.logit(torch.tensor(probs, dtype=m.alpha.dtype)))
    argmax = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "skip_connect")
    kept = ("skip_connect", "none", "nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect")
    assert m.derive().ops == argmax
    rec = m.extra_records()
    assert rec["argmax_genotype"] == Genotype(argmax).to_str() and rec["threshold_genotype"] == Genotype(kept).to_str()
    assert rec["edges_above_threshold"] == 4
    m.options = resolve_config("fair-darts", preset="smoke", device="cpu",
                               overrides={"derivation": "threshold", "op_threshold": "0.95"}).options()
    assert m.derive().ops == ("none", "none", "none", "avg_pool_3x3", "none", "none")
    # the threshold itself is kept (FairDARTS: `W[j][k_best] >= op_threshold`)
    weights = np.concatenate([np.zeros((6, 1)), probs], axis=1)
    weights[1, 2] = 0.85
    assert threshold_genotype(weights, 0.85).ops[1] == "nor_conv_1x1"
    weights[1, 2] = np.nextafter(0.85, 0)
    assert threshold_genotype(weights, 0.85).ops[1] == "none"


# =================================================================================================
# SDARTS
# =================================================================================================
def test_simplex_clip_is_sdarts_clip():
    w = torch.tensor([[0.5, -0.2, 0.4, 0.3, 0.0], [-0.1, -0.3, -0.05, -0.2, -0.4], [0.2, 0.2, 0.2, 0.2, 0.2]],
                     dtype=torch.double)
    out = simplex_clip(w)
    torch.testing.assert_close(out[0], torch.tensor([0.5, 0, 0.4, 0.3, 0], dtype=torch.double) / 1.2)
    assert out[1].tolist() == [0, 0, 1, 0, 0]   # clamped to nothing: 1 on the largest entry
    assert torch.equal(out[2], w[2] / w[2].sum())


def test_sdarts_rs_noise_is_within_epsilon_and_only_in_the_weight_step(monkeypatch):
    drawn = []
    real = sdarts.uniform_offset
    monkeypatch.setattr(sdarts, "uniform_offset", lambda like, eps: drawn.append((real(like, eps), eps)) or drawn[-1][0])
    m = tiny("sdarts-rs", epochs=10)
    assert [m.epsilon(e) for e in (0, 5)] == pytest.approx([0.03, 0.03 + 0.27 * 0.5])
    seen = received_weights(m)
    before = m.alpha.detach().clone()
    m.step(batches(), 5, 0, False)
    assert m.options.step_order == "alpha-w" and len(seen) == 2 and len(drawn) == 1
    assert torch.equal(seen[0], torch.softmax(before, -1))          # the α step: no noise
    (delta, eps), base = drawn[0], torch.softmax(m.alpha.detach(), -1)   # the weight step, after the α step
    assert eps == pytest.approx(0.165) and delta.abs().max() <= eps and delta.abs().max() > 0.8 * eps
    assert torch.equal(seen[1], simplex_clip(base + delta)) and not torch.allclose(seen[1], base, atol=1e-3)
    np.testing.assert_allclose(seen[1].sum(-1), 1, rtol=1e-6)
    rec = m.extra_records()
    assert rec["sdarts_epsilon"] == pytest.approx(0.165)
    assert rec["perturbation_linf"] == pytest.approx((seen[1] - base).abs().max().item())
    assert m.logits(batch(0, 2, 16)[0]).shape == (2, 10) and torch.equal(torch.tensor(m.op_weights()), base)


@pytest.fixture
def attack_setup():
    torch.manual_seed(0)
    m = tiny("sdarts-adv").eval()
    with torch.no_grad():
        m.alpha.normal_(0, 0.5)
    x, y = batch(4, 16, 16)
    base = torch.softmax(m.alpha.detach(), -1)
    return m, base, (lambda w: m.task_loss(m._forward(x, w), y))


def test_one_pgd_step_is_epsilon_times_the_gradient_sign(attack_setup):
    m, base, loss_of = attack_setup
    w = base.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_of(w), [w])   # independently of pgd_offset
    delta, keep, gain = pgd_offset(loss_of, base, 0.1, steps=1, random_start=False)
    torch.testing.assert_close(delta, 0.1 * g.sign(), rtol=0, atol=1e-7)   # step 2ε/1, clamped to ±ε
    with torch.no_grad():
        assert gain.item() == pytest.approx((loss_of(simplex_clip(base + delta)) - loss_of(base)).item(), abs=1e-6)
    assert keep and gain > 0


def test_pgd_attack_respects_epsilon_and_beats_random_noise(attack_setup):
    m, base, loss_of = attack_setup
    eps = 0.1
    delta, keep, gain = pgd_offset(loss_of, base, eps, steps=7, random_start=True)
    assert delta.abs().max() <= eps + 1e-7 and keep
    with torch.no_grad():
        clean = loss_of(base)
        assert gain.item() == pytest.approx((loss_of(simplex_clip(base + delta)) - clean).item(), abs=1e-6)
        noise = max((loss_of(simplex_clip(base + sdarts.uniform_offset(base, eps))) - clean).item() for _ in range(8))
    assert gain.item() > max(noise, 0.0)
    # an attack that cannot raise the loss is dropped: the weight step then sees the clean weights
    _, kept, lost = pgd_offset(lambda w: -((w - base) ** 2).sum(), base, eps, steps=3, random_start=True)
    assert not kept and lost < 0
    m._delta, m._keep = delta, kept
    assert torch.equal(m.activate(m.alpha), torch.softmax(m.alpha, -1))


def test_sdarts_adv_step_trains_weights_at_the_attacked_weights():
    m = tiny("sdarts-adv", attack_steps=2)
    seen = received_weights(m)
    before = m.alpha.detach().clone()
    m.step(batches(), 0, 0, False)
    # α step (clean), attack: 1 loss before, 2 steps, 1 loss after, then the weight step
    assert len(seen) == 6 and torch.equal(seen[0], torch.softmax(before, -1)) and m.training
    base = torch.softmax(m.alpha.detach(), -1)
    assert torch.equal(seen[1], base) and torch.equal(seen[-1], seen[-2])   # trained at the attacked weights
    rec = m.extra_records()
    assert rec["attack_kept"] == 1.0 and rec["attack_loss_gain"] > 0
    assert (seen[-1] - base).abs().max().item() == pytest.approx(rec["perturbation_linf"])
    with pytest.raises(ConfigError, match="epsilon_min"):
        tiny("sdarts-adv", epsilon_min=0.5, epsilon_max=0.1)
    with pytest.raises(ConfigError, match="single-level"):
        tiny("sdarts-rs", mode="single-level")


# =================================================================================================
# DrNAS
# =================================================================================================
def test_dirichlet_draws_lie_on_the_simplex_and_each_forward_draws_anew():
    m = tiny("drnas")
    seen = received_weights(m)
    m.step(batches(), 0, 0, False)
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])
    mean = torch.tensor(m.op_weights())
    for w in seen:
        assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(6)) and not torch.allclose(w, mean, atol=1e-2)
    rec = m.extra_records()
    np.testing.assert_allclose(rec["sampled_weights"], torch.stack(seen).double().mean(0), rtol=1e-6)
    np.testing.assert_allclose(rec["concentration"], F.elu(m.alpha.detach()) + 1, rtol=1e-6)
    np.testing.assert_allclose(m.op_weights(), rec["concentration"] / rec["concentration"].sum(1, keepdims=True),
                               rtol=1e-6)
    assert m.derive() == Genotype.from_weights(m.alpha.detach().numpy())   # argmax of the mean = argmax α
    assert m.a_opt.param_groups[0]["weight_decay"] == 1e-3 and m.options.kl_weight == 0   # L2 by default


def test_dirichlet_gradient_is_the_reparameterised_gradient_of_the_expectation():
    """Monte Carlo: the mean over N draws of ∇α f(w), w = rsample, estimates ∇α E[f(w)]; for
    f(w) = Σ c·w² the expectation has the closed form Σ c·a(a+1)/(a₀(a₀+1)). N = 40,000 draws in 4
    groups give the estimator's own spread; the bound is 5 of its standard errors."""
    g = torch.Generator().manual_seed(0)
    alpha = (torch.randn(3, 5, generator=g, dtype=torch.double) * 0.7).requires_grad_(True)
    c = torch.rand(3, 5, generator=g, dtype=torch.double) * 4 - 2
    torch.manual_seed(1)
    groups = []
    for _ in range(4):
        w = dirichlet_weights(concentration(alpha).expand(10_000, 3, 5))
        groups.append(torch.autograd.grad((c * w * w).sum(-1).sum(-1).mean(), alpha)[0])
    mc = torch.stack(groups).mean(0)
    se = torch.stack(groups).std(0) / 2
    a = concentration(alpha)
    a0 = a.sum(-1, keepdim=True)
    (exact,) = torch.autograd.grad((c * a * (a + 1) / (a0 * (a0 + 1))).sum(), alpha)
    assert ((mc - exact).abs() <= 5 * se + 1e-4).all()
    mean_w = concentration(alpha) / concentration(alpha).sum(-1, keepdim=True)
    (through_mean,) = torch.autograd.grad((c * mean_w * mean_w).sum(), alpha)   # the mean instead of draws: far off
    assert ((through_mean - exact).abs() > 5 * se + 1e-4).any()


def test_kl_regularizer_is_the_dirichlet_kl():
    torch.manual_seed(0)
    a, b = torch.rand(6, 5, dtype=torch.double) * 3 + 0.1, torch.rand(6, 5, dtype=torch.double) * 3 + 0.1
    want = torch.distributions.kl_divergence(torch.distributions.Dirichlet(a), torch.distributions.Dirichlet(b))
    torch.testing.assert_close(dirichlet_kl(a, b), want, rtol=1e-12, atol=1e-12)
    m = tiny("drnas", kl_weight=0.5, a_weight_decay=0)
    with torch.no_grad():
        m.alpha.normal_(0, 1)
    conc = F.elu(m.alpha.detach()) + 1
    prior = torch.distributions.Dirichlet(torch.ones(6, 5))
    kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(conc), prior).sum()
    assert m.extra_records()["kl_to_prior"] == pytest.approx(kl.item(), rel=1e-5)
    off = copy.deepcopy(m)
    off.options = resolve_config("drnas", preset="smoke", device="cpu").options()
    x, y = batch(5, 8, 16)
    m.eval(), off.eval()
    torch.manual_seed(3)
    with_kl, _ = m.arch_objective(x, y)
    torch.manual_seed(3)   # the same draw
    without, _ = off.arch_objective(x, y)
    assert (with_kl - without).item() == pytest.approx(0.5 * kl.item(), rel=1e-5)
    assert m.a_opt.param_groups[0]["weight_decay"] == 0


def test_nbs_methods_show_prints_the_sources_departures_and_packing():
    sources = {"pc-darts": "DrNAS code: xiangning-chen/DrNAS 201-space/train_search.py",
               "fair-darts": "FairDARTS code: xiaomi-automl/FairDARTS fairdarts/train_search.py",
               "sdarts-rs": "SmoothDARTS nasbench201/train_search.py",
               "sdarts-adv": "SDARTS code: xiangning-chen/SmoothDARTS attacker/perturb.py",
               "drnas": "DrNAS 201-space/train_search.py"}
    for name, source in sources.items():
        text = describe_method(name)
        assert source in text and "departures from the paper:" in text, name
        assert ("packed on CUDA" in text) == (name in ("pc-darts", "fair-darts")), name
    rs, adv = (get_method(n).default_options() for n in ("sdarts-rs", "sdarts-adv"))
    assert (rs.perturbation, adv.perturbation) == ("random", "pgd") and {**vars(rs), "perturbation": 0} == {
        **vars(adv), "perturbation": 0}


# =================================================================================================
# end to end: one tiny `nbs run` per method (C=8, N=1, 16+16 images, 2 steps an epoch, 2 epochs)
# =================================================================================================
COLUMNS = {"pc-darts": ("edge_weights", "edge_grad"),
           "fair-darts": ("threshold_genotype", "edges_above_threshold", "zero_one_term"),
           "sdarts-rs": ("sdarts_epsilon", "perturbation_linf"),
           "sdarts-adv": ("sdarts_epsilon", "perturbation_linf", "attack_loss_gain", "attack_kept"),
           "drnas": ("concentration", "sampled_weights", "kl_to_prior")}
# pc-darts: its β records (PC-DARTS' edge normalization; the default, DrNAS' NB201 PC-DARTS, has none)
EXTRA = {"sdarts-adv": ("--set", "attack_steps=2"), "pc-darts": ("--set", "edge_normalization=true")}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_tiny_run_records_what_defines_the_method(cli, tmp_path, name):
    out = cli("run", "--method", name, "--out", str(tmp_path), "--device", "cpu", *METHOD_RUN_ARGS,
              *EXTRA.get(name, ()))
    assert out.returncode == 0, out.stdout + out.stderr
    df = check_records(tmp_path / f"{name}-cifar10-seed0", 2)
    assert set(COLUMNS[name]) <= set(df.columns)
    for cell, w in zip(df.genotype, df.op_weights):   # the recorded cell is the recorded weights' cell
        weights = np.reshape(w, (6, 5))
        assert Genotype.from_str(cell) == Genotype.from_weights(weights, include_none=name != "fair-darts")
    if name == "pc-darts":
        assert all(len(b) == 6 and np.isclose(np.sum(b), 3) for b in df.edge_weights)   # three nodes
    if name.startswith("sdarts"):
        assert df.sdarts_epsilon.tolist() == pytest.approx([0.03, 0.03 + 0.27 / 2])
        assert (df.perturbation_linf > 0).all()
    if name == "drnas":
        sampled = np.stack(df.sampled_weights.to_list()).reshape(-1, 6, 5)
        np.testing.assert_allclose(sampled.sum(-1), 1, rtol=1e-6)
