"""The DARTS family: single-level gradient correlation, activations, derivation, discrete cells and
the registry's documented defaults (the step math against the references: test_methods_reference.py)."""

import copy

import numpy as np
import pytest
import torch

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


# which batch and which weights each α gradient uses, V2's hypergradient after several steps and the
# bi-level gradient correlation by hand: tests/test_methods_reference.py


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


@pytest.mark.parametrize("method", ["single-darts", "darts-v1"])
def test_sgd_alpha_optimizer_takes_momentum_steps_with_the_fixed_rate(method):
    """a_optimizer=sgd (Single-DARTS Tables 4-5): α moves by SGD with momentum a_momentum and L2 decay,
    by hand from the gradients the step reports; Adam's first step would move every entry by ≈ a_lr."""
    lr, mu, wd = 0.05, 0.9, 1e-3
    m = tiny(method, a_optimizer="sgd", a_lr=lr, a_momentum=mu, a_weight_decay=wd)
    assert isinstance(m.a_opt, torch.optim.SGD)
    a0 = m.alpha.detach().clone()
    batches = lambda k: {"train": batch(k), "valid": batch(k + 100)}  # noqa: E731
    s1 = m.step(batches(1), epoch=0, step=0, measure_gc=False)
    buf = s1.op_grad + wd * a0
    a1 = a0 - lr * buf
    torch.testing.assert_close(m.alpha.detach(), a1, rtol=1e-5, atol=1e-8)
    s2 = m.step(batches(2), epoch=0, step=1, measure_gc=False)
    buf = mu * buf + s2.op_grad + wd * a1
    torch.testing.assert_close(m.alpha.detach(), a1 - lr * buf, rtol=1e-5, atol=1e-8)
    adam = tiny(method)
    assert isinstance(adam.a_opt, torch.optim.Adam)
