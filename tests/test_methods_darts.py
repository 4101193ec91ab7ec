"""The DARTS family on the defining math: which batch feeds which gradient, the unrolled
second-order gradient, gradient correlation, and the registry's documented defaults."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.describe import describe_method, list_lines
from nasbench_stability.methods.registry import get_method, list_methods

from method_helpers import batch, tiny






def alpha_grad(method, b):
    m = copy.deepcopy(method)
    loss = m.arch_loss(*b)
    return torch.autograd.grad(loss, [m.alpha])[0]


def test_registry_lists_methods_with_documented_sources():
    names = {m.name for m in list_methods()}
    assert {"darts-v1", "darts-v2", "single-darts"} <= names
    text = describe_method("single-darts")
    assert "w_lr" in text and "0.005" in text and "paper" in text and "NB201 reference" in text
    assert "departures from the paper" in text
    assert "darts-v1" in list_lines()
    with pytest.raises(ConfigError):
        get_method("nope")


@pytest.mark.parametrize("method,mode,streams", [
    ("darts-v1", "bilevel", ("train", "valid")),
    ("single-darts", "single-level", ("train",)),
    ("single-darts", "single-level-two-batches", ("train", "train2")),
])
def test_alpha_gradient_comes_from_the_batch_its_mode_names(method, mode, streams):
    m = tiny(method, mode=mode)
    assert tuple(m.streams) == streams
    batches = {"train": batch(1), "train2": batch(2), "valid": batch(3)}
    arch_batch = {"bilevel": "valid", "single-level": "train", "single-level-two-batches": "train2"}[mode]
    expected = alpha_grad(m, batches[arch_batch])
    w_before = [p.detach().clone() for p in m.supernet.parameters()]
    stats = m.step({k: batches[k] for k in streams}, epoch=0, step=0, measure_gc=False)
    torch.testing.assert_close(stats.op_grad, expected, rtol=1e-4, atol=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(w_before, m.supernet.parameters()))


def test_darts_v2_matches_exact_unrolled_hypergradient():
    """The finite-difference scheme against autograd through the virtual step, in float64.

    DARTS' ε numerator 0.01 is too coarse for this 4-channel net with batches of 8 (the α-gradient
    is far from linear in w at that distance), so the scheme is checked with a small numerator.
    """
    m = tiny("darts-v2", w_lr=0.5, grad_clip=0, unrolled_eps=1e-6).double()
    train, valid = [(x.double(), y) for x, y in (batch(1), batch(2))]
    wd = m.options.w_weight_decay
    m._set_lr(0, 0)
    xi = m.w_opt.param_groups[0]["lr"]
    estimate = m._unrolled_alpha_grad(train, valid)

    names = [n for n, _ in m.supernet.named_parameters()]
    params = [p for _, p in m.supernet.named_parameters()]
    alpha = m.alpha
    weights = m.activate(alpha)
    loss_t = F.cross_entropy(m.supernet(train[0], weights), train[1])
    grads = torch.autograd.grad(loss_t, params, create_graph=True)
    virtual = {n: p - xi * (g + wd * p) for n, p, g in zip(names, params, grads)}
    loss_v = F.cross_entropy(functional_call(m.supernet, virtual, (valid[0], m.activate(alpha))), valid[1])
    exact = torch.autograd.grad(loss_v, [alpha])[0]
    first_order = alpha_grad(m, valid)
    assert (exact - first_order).norm() > 1e-3 * exact.norm()  # the second-order term matters here
    torch.testing.assert_close(estimate, exact, rtol=2e-3, atol=1e-7)


def test_single_level_gradient_correlation_is_squared_norm_with_cosine_one():
    m = tiny("single-darts")
    b = batch(5)
    probe = copy.deepcopy(m)
    loss = probe.arch_loss(*b)
    loss.backward()
    stats = m.step({"train": b}, epoch=0, step=0, measure_gc=True)
    learnable = ~torch.isnan(stats.gc_inner)
    assert learnable.sum() == 12  # 6 edges × (1x1, 3x3)
    torch.testing.assert_close(stats.gc_cos[learnable], torch.ones(12), rtol=0, atol=1e-5)
    for (e, op), ps in probe._gc_groups.items():
        sq = sum((p.grad.double() ** 2).sum() for p in ps)
        assert stats.gc_inner[e, op].item() == pytest.approx(sq.item(), rel=1e-4)


def test_bilevel_gradient_correlation_compares_two_different_batches():
    m = tiny("darts-v1")
    stats = m.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=True)
    cos = stats.gc_cos[~torch.isnan(stats.gc_cos)]
    assert cos.numel() == 12 and (cos.abs() <= 1 + 1e-6).all()
    assert (cos < 0.999).all()  # different batches: not the trivial single-level value


def test_sigmoid_activation_does_not_normalise_and_softmax_does():
    s = tiny("single-darts").op_weights()
    d = tiny("darts-v1").op_weights()
    np.testing.assert_allclose(d.sum(1), 1.0, rtol=1e-6)
    assert s.sum(1).min() > 2.4  # five independent sigmoids near 0.5


def test_derivation_can_leave_none_out():
    """With sigmoid α, 'none' gets no gradient: the option keeps it from winning by standing still."""
    import dataclasses

    m = tiny("single-darts")
    with torch.no_grad():
        m.alpha.fill_(-1.0)
        m.alpha[:, 0] = 0.0                      # 'none' stays at σ=0.5, every other op below it
        m.alpha[:, 3] = -0.5                     # conv3x3 the best of the rest
    assert set(m.derive().ops) == {"none"}
    m.options = dataclasses.replace(m.options, derive_none=False)
    assert set(m.derive().ops) == {"nor_conv_3x3"}


@pytest.mark.parametrize("method", ["darts-v1", "mergenas-v1", "edas", "dnas", "factorized-kernel"])
def test_discrete_cells_evaluate_with_shared_weights(method):
    """One-hot NB201 weights, computing only the cell's ops, equal the full mixed forward."""
    from nasbench_stability.space.genotype import Genotype

    m = tiny(method).eval()
    assert m.evaluates_discrete_cells
    g = Genotype.from_str("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    x = batch(3)[0]
    with torch.no_grad():
        full = m.supernet(x, torch.from_numpy(g.one_hot()))
        torch.testing.assert_close(m.discrete_logits(x, g), full, rtol=1e-5, atol=1e-5)


def test_activation_spaces_do_not_claim_discrete_nb201_cells():
    assert not tiny("factorized-act").evaluates_discrete_cells
    assert not tiny("nonfactorized-act").evaluates_discrete_cells
