"""The exact α-Hessian spectrum against explicit Hessians built independently
(``torch.autograd.functional.hessian`` of the loss written out as a function of α), on closed-form
toys and on a real DARTS method (30 × 30, float64); measuring leaves the method as it was; and a
real run records ``hessian_max`` / ``hessian_min`` / ``hessian_spectrum`` where measured, NaN elsewhere.

The cases are chosen so that the eigenvalue of largest *magnitude* is negative: a power-iteration
style answer would then differ from the algebraic maximum that R-DARTS tracks.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasbench_stability.engine.hessian import (HessianSpectrum, arch_hessian, arch_hessian_spectrum,
                                               arch_parameter_count, hessian_of, spectrum_of)
from nasbench_stability.engine.records import read_records, record_path

from method_helpers import tiny


@pytest.fixture(autouse=True)
def one_thread():
    """Double backward on a shared 2-core machine: oversubscribed threads are 50× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def explicit_spectrum(matrix: torch.Tensor) -> np.ndarray:
    return torch.linalg.eigvalsh((matrix + matrix.T) / 2).numpy()


# ---------------------------------------------------------------------------------------------
# closed-form toys
# ---------------------------------------------------------------------------------------------
class Quadratic(nn.Module):
    """L(θ) = ½ θᵀQθ with θ split over two parameters of different shapes: ∇²L = Q exactly."""

    def __init__(self, q: torch.Tensor) -> None:
        super().__init__()
        self.q = q
        self.a = nn.Parameter(torch.randn(2, 2, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(1, dtype=torch.float64))

    def arch_parameters(self) -> list[torch.Tensor]:
        return [self.a, self.b]

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        theta = torch.cat([self.a.reshape(-1), self.b])
        return 0.5 * theta @ self.q @ theta


def rotated(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """V diag(λ) Vᵀ with a random orthogonal V, so no eigenvalue sits on the diagonal."""
    g = torch.Generator().manual_seed(seed)
    v, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return v @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ v.T


def test_largest_is_the_algebraic_maximum_not_the_largest_magnitude():
    eigenvalues = [-5.0, -1.0, 0.5, 2.0, 3.0]
    method = Quadratic(rotated(eigenvalues))
    spectrum = arch_hessian_spectrum(method, [(torch.zeros(1), torch.zeros(1))])
    np.testing.assert_allclose(spectrum.eigenvalues, eigenvalues, atol=1e-12)
    assert spectrum.largest == pytest.approx(3.0, abs=1e-12)      # largest magnitude would say -5
    assert spectrum.smallest == pytest.approx(-5.0, abs=1e-12)
    np.testing.assert_allclose(arch_hessian(method, [(torch.zeros(1), torch.zeros(1))]).numpy(), method.q.numpy(),
                               atol=1e-12)   # rows in the order of arch_parameters(), flattened


class Toy(nn.Module):
    """A nonlinear classifier in (α, β) behind a BatchNorm that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.alpha = nn.Parameter(torch.randn(2, 3, generator=g, dtype=torch.float64))
        self.beta = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
        self.bn = nn.BatchNorm1d(3).double()

    def arch_parameters(self) -> list[torch.Tensor]:
        return [self.alpha, self.beta]

    def loss_of(self, alpha: torch.Tensor, beta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = torch.tanh(self.bn(x) * self.w @ alpha.T) * beta[:2] + beta[2:]
        return F.cross_entropy(logits, y)

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_of(self.alpha, self.beta, x, y)


def toy_batches(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(4)
    return [(torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (6,), generator=g))
            for _ in range(n)]


def test_hessian_of_the_mean_over_batches_matches_autograd_on_a_nonlinear_toy():
    method, batches = Toy(), toy_batches()

    def mean_loss(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return sum(method.loss_of(alpha, beta, x, y) for x, y in batches) / len(batches)

    blocks = torch.autograd.functional.hessian(mean_loss, (method.alpha.detach(), method.beta.detach()))
    sizes = (6, 4)
    explicit = torch.cat([torch.cat([blocks[i][j].reshape(m, n) for j, n in enumerate(sizes)], dim=1)
                          for i, m in enumerate(sizes)])
    got = arch_hessian(method, batches)
    assert got.shape == (10, 10) and got.dtype == torch.float64
    torch.testing.assert_close(got, explicit, rtol=1e-10, atol=1e-12)
    # the batches differ, so the last batch alone or a sum instead of the mean is a different matrix
    assert not torch.allclose(arch_hessian(method, batches[-1:]), explicit, atol=1e-6)
    np.testing.assert_allclose(arch_hessian_spectrum(method, batches).eigenvalues, explicit_spectrum(explicit),
                               atol=1e-12)


def test_spectrum_symmetrises_and_is_ascending_float64_and_read_only():
    upper = torch.tensor([[1.0, 2.0], [0.0, 1.0]])                 # (H + Hᵀ)/2 = [[1, 1], [1, 1]]: 0 and 2
    spectrum = spectrum_of(upper)
    np.testing.assert_allclose(spectrum.eigenvalues, [0.0, 2.0], atol=1e-12)   # one triangle alone: 1 and 1
    assert spectrum.eigenvalues.dtype == np.float64
    assert (spectrum.largest, spectrum.smallest) == (spectrum.eigenvalues[-1], spectrum.eigenvalues[0])
    with pytest.raises(ValueError):
        spectrum.eigenvalues[0] = 5.0
    with pytest.raises(ValueError, match="square"):
        spectrum_of(torch.zeros(2, 3))
    assert HessianSpectrum(np.array([3.0])).largest == HessianSpectrum([3.0]).smallest == 3.0


def test_known_null_directions_give_the_same_hessian_from_fewer_products():
    """L(α) = f(softmax of each row of α): shifting a row changes nothing, so H·1_row = 0, and the Hessian
    from the n − k products along the complement equals the one from all n unit vectors."""
    g = torch.Generator().manual_seed(3)
    alpha = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(12, 12, generator=g, dtype=torch.float64)
    w = w + w.T

    def loss():
        p = torch.softmax(alpha, dim=-1).reshape(-1)
        return p @ w @ p + torch.sin(p).sum()

    groups = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    full = hessian_of([loss()], [alpha])
    reduced = hessian_of([loss()], [alpha], groups)
    torch.testing.assert_close(reduced, full, rtol=1e-10, atol=1e-12)
    for group in groups:   # the promise the reduction rests on
        shift = torch.zeros(12, dtype=torch.float64)
        shift[group] = 1.0
        assert (full @ shift).abs().max() < 1e-12
    # a promise the loss does not keep gives another matrix: the reduction is only as right as the promise
    broken = hessian_of([loss() + (alpha ** 2).sum()], [alpha], groups)
    assert not torch.allclose(broken, hessian_of([loss() + (alpha ** 2).sum()], [alpha]), atol=1e-3)
    with pytest.raises(ValueError, match="disjoint"):
        hessian_of([loss()], [alpha], [[0, 1], [1, 2]])


def test_a_loss_linear_in_the_parameters_has_a_zero_hessian():
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.equal(hessian_of([(p * torch.arange(3.0, dtype=torch.float64)).sum()], [p]),
                       torch.zeros(3, 3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# a real DARTS method: the 30 × 30 α-Hessian in float64
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def darts_method():
    method = tiny("darts-v1").double()
    with torch.no_grad():
        method.alpha.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))   # away from the flat start
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
               for _ in range(2)]
    return method, batches


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_darts_alpha_hessian_matches_autograd_of_the_loss_written_out(darts_method, mode):
    method, batches = darts_method
    getattr(method, mode)()

    def valid_loss(alpha: torch.Tensor) -> torch.Tensor:   # arch_loss, written out as a function of α
        return sum(F.cross_entropy(method._forward(x, method.activate(alpha)), y) for x, y in batches) / len(batches)

    state = {k: v.clone() for k, v in method.state_dict().items()}
    with torch.no_grad():
        reference = sum(method.arch_loss(x, y) for x, y in batches) / len(batches)
    assert float(valid_loss(method.alpha.detach()).detach()) == pytest.approx(float(reference), rel=1e-12)
    explicit = torch.autograd.functional.hessian(valid_loss, method.alpha.detach().clone()).reshape(30, 30)
    method.load_state_dict(state)                            # the explicit passes moved BN statistics
    assert arch_parameter_count(method) == 30
    torch.testing.assert_close(arch_hessian(method, batches), explicit, rtol=1e-9, atol=1e-12)
    spectrum = arch_hessian_spectrum(method, batches)
    expected = explicit_spectrum(explicit)
    np.testing.assert_allclose(spectrum.eigenvalues, expected, rtol=1e-9, atol=1e-12)
    assert spectrum.largest == pytest.approx(expected.max(), rel=1e-9)
    assert spectrum.smallest == pytest.approx(expected.min(), rel=1e-9)
    if mode == "train":   # here the negative end dominates: largest magnitude ≠ largest
        assert abs(spectrum.smallest) > abs(spectrum.largest) > 0


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_measuring_leaves_the_method_as_it_was(mode):
    method = tiny("darts-v1")
    getattr(method, mode)()
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)) for _ in range(2)]
    before = {k: v.clone() for k, v in method.state_dict().items()}
    modes = [m.training for m in method.modules()]
    wants_grad = [p.requires_grad for p in method.parameters()]
    method.zero_grad(set_to_none=True)
    spectrum = arch_hessian_spectrum(method, batches)   # freezes w while it measures: it must thaw it
    assert [p.requires_grad for p in method.parameters()] == wants_grad and all(wants_grad)
    assert len(spectrum.eigenvalues) == 30 and np.isfinite(spectrum.eigenvalues).all()
    after = method.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"measuring changed {changed}"           # α, w and BN running statistics
    assert [m.training for m in method.modules()] == modes
    assert all(p.grad is None for p in method.parameters()), "no .grad may be left on α or w"
    if mode == "train":   # the check above is not vacuous: the same forward passes move the statistics
        method.arch_loss(*batches[0])
        assert any(not torch.equal(before[k], v) for k, v in method.state_dict().items() if "running" in k)


# ---------------------------------------------------------------------------------------------
# end to end: `nbs run --hessian-every` on real CIFAR-10
# ---------------------------------------------------------------------------------------------
# C=4, N=1, 32 + 32 images in batches of 16 (2 steps an epoch); one 16-image batch for the Hessian
TINY_RUN = ("--preset", "smoke", "--quiet", "--set", "channels=4", "--set", "cells_per_stage=1",
            "--set", "data_subset=32", "--set", "batch_size=16", "--set", "eval_batches=1",
            "--set", "hessian_batches=1")


def test_a_run_records_the_spectrum_where_measured_and_nan_elsewhere(nbs, tmp_path, cifar_root, nbs_home,
                                                                     monkeypatch):
    nbs("run", "--method", "darts-v1", "--seeds", "1", "--epochs", "2", "--hessian-every", "2",
        "--out", str(tmp_path), *TINY_RUN, check=True)
    run_dir = tmp_path / "darts-v1-cifar10-seed0"
    df = read_records(run_dir)
    assert df.epoch.tolist() == [1, 2] and "hessian_eig" not in df
    unmeasured, measured = df.iloc[0], df.iloc[1]
    assert np.isnan(unmeasured.hessian_max) and np.isnan(unmeasured.hessian_min)
    assert len(unmeasured.hessian_spectrum) == 30 and np.isnan(unmeasured.hessian_spectrum).all()
    spectrum = np.asarray(measured.hessian_spectrum)
    assert len(spectrum) == 30 and np.isfinite(spectrum).all() and (np.diff(spectrum) >= 0).all()
    assert np.isfinite([measured.hessian_max, measured.hessian_min]).all()
    assert measured.hessian_max > measured.hessian_min
    assert (spectrum[-1], spectrum[0]) == (measured.hessian_max, measured.hessian_min)
    # every epoch's file has the same column types, so the records concatenate
    schemas = [pq.read_schema(record_path(run_dir, e)) for e in (1, 2)]
    for column, kind in (("hessian_max", pa.float64()), ("hessian_min", pa.float64()),
                         ("hessian_spectrum", pa.list_(pa.float64()))):
        assert [s.field(column).type for s in schemas] == [kind, kind], column

    # what was recorded is the spectrum of the checkpointed method (train mode, as in the search) on
    # the first valid batch of the eval stream
    from nasbench_stability.data.pipeline import BatchStream
    from nasbench_stability.engine.restore import restore_run

    monkeypatch.setenv("NBS_HOME", str(nbs_home))
    restored = restore_run(run_dir, data_root=cifar_root)
    cfg, data = restored.config, restored.data
    restored.method.train()
    stream = BatchStream(data.valid, cfg.batch_size, cfg.seed, "eval", augment=False, mean=data.mean,
                         std=data.std, drop_last=False, shuffle=False, limit_batches=cfg.eval_batches)
    batches = [b for b, _ in zip(stream.epoch(0), range(cfg.hessian_batches))]
    again = arch_hessian_spectrum(restored.method, batches).eigenvalues
    np.testing.assert_allclose(spectrum, again, rtol=1e-3, atol=1e-5 * np.abs(again).max())
