"""The Hessian indicator against explicit Hessians: power iteration on a tiny model, and the dominant
eigenvalue of a real DARTS method's α-Hessian (30 × 30) against ``torch.autograd.functional.hessian``.

Power iteration returns the eigenvalue of largest *magnitude*, so that is what is compared.
Everything runs in float64 so that the comparison tests the algorithm, not rounding.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.analysis.hessian import dominant_arch_eigenvalue, power_iteration
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.run import build_method


@pytest.fixture(autouse=True)
def one_thread():
    """Double backward on a shared 2-core machine: oversubscribed threads are 50× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dominant(matrix: torch.Tensor) -> float:
    eig = torch.linalg.eigvalsh((matrix + matrix.T) / 2)
    return float(eig[eig.abs().argmax()])


def test_power_iteration_matches_explicit_hessian_of_a_tiny_network():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (16,), generator=g)
    w1 = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)

    def loss_of(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.tanh(x @ a.T) @ b.T, y)

    blocks = torch.autograd.functional.hessian(loss_of, (w1.detach(), w2.detach()))
    n1, n2 = w1.numel(), w2.numel()
    explicit = torch.cat([torch.cat([blocks[i][j].reshape(m, n) for j, n in enumerate((n1, n2))], dim=1)
                          for i, m in enumerate((n1, n2))])
    assert explicit.shape == (35, 35) and torch.allclose(explicit, explicit.T, atol=1e-10)
    expected = dominant(explicit)
    got = power_iteration(lambda: loss_of(w1, w2), [w1, w2], iters=3000, tol=1e-12)
    assert got == pytest.approx(expected, rel=1e-6)
    # a different start vector converges to the same eigenvalue
    assert power_iteration(lambda: loss_of(w1, w2), [w1, w2], iters=3000, tol=1e-12, seed=7) == pytest.approx(
        expected, rel=1e-6)


def test_power_iteration_of_a_quadratic_is_its_largest_eigenvalue():
    q = torch.diag(torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64))
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert power_iteration(lambda: 0.5 * v @ q @ v, [v], iters=200, tol=1e-12) == pytest.approx(3.0, rel=1e-9)
    assert power_iteration(lambda: (v ** 3).sum(), [v]) == 0.0   # Hessian 6·diag(v) = 0 at v = 0: stops at once


@pytest.fixture(scope="module")
def darts_method():
    cfg = resolve_config("darts-v1", preset="smoke", device="cpu", overrides={"channels": "4"})
    method = build_method(cfg, 10, 4).double()
    with torch.no_grad():
        method.alpha.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))  # away from the flat start
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
               for _ in range(2)]
    return method, batches


def test_dominant_arch_eigenvalue_matches_explicit_alpha_hessian(darts_method):
    method, batches = darts_method

    def valid_loss(alpha: torch.Tensor) -> torch.Tensor:   # arch_loss, written out as a function of α
        return sum(F.cross_entropy(method._forward(x, method.activate(alpha)), y) for x, y in batches) / len(batches)

    with torch.no_grad():
        reference = sum(method.arch_loss(x, y) for x, y in batches) / len(batches)
    assert float(valid_loss(method.alpha.detach()).detach()) == pytest.approx(float(reference), rel=1e-12)
    explicit = torch.autograd.functional.hessian(valid_loss, method.alpha.detach().clone()).reshape(30, 30)
    assert torch.allclose(explicit, explicit.T, atol=1e-10)
    expected = dominant(explicit)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    got = dominant_arch_eigenvalue(method, batches, iters=100)
    # the engine's stopping rule (relative change < 1e-4 between iterations) bounds the accuracy
    assert got == pytest.approx(expected, rel=3e-3)
    after = method.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "measuring must not change the search state"
