"""Stabilizers against DARTS' collapse that change its regularization: DARTS- (auxiliary skip outside
the softmax), β-DARTS (Beta-Decay on α), R-DARTS(L2) (raised weight decay), R-DARTS(DP) (ScheduledDropPath
on the mixed edges) and DARTS-ES (early stop on the dominant α-Hessian eigenvalue).

Each defining formula is checked on tiny float64 networks against an independent computation; each
schedule epoch by epoch; each method equals DARTS-V1 step for step where its coefficient is 0; and one
tiny `nbs run` per method on real CIFAR-10 (DARTS-ES' stops early, with status, records and a resume).
"""

from __future__ import annotations

import copy
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from nasbench_stability.methods.describe import describe_method
from nasbench_stability.methods.gradient.darts_family import DartsFamily
from nasbench_stability.methods.packing import pack
from nasbench_stability.methods.registry import get_method
from nasbench_stability.methods.stabilizers.beta_darts import beta_decay_loss
from nasbench_stability.space.drop_path_cell import DropPathCell
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import NUM_EDGES, NUM_OPS, OP_INDEX

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, tiny
from packed_helpers import state_tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NONE, SKIP = OP_INDEX["none"], OP_INDEX["skip_connect"]
MINE = ("darts-minus", "beta-darts", "rdarts-l2", "rdarts-dp", "darts-es")


def steps(method, n: int = 2, epoch: int = 0):
    """``n`` bi-level steps of ``method`` on fixed random 16×16 batches (the same for every method)."""
    method.begin_epoch(epoch)
    for k in range(n):
        method.step({"train": batch(10 + k, size=16), "valid": batch(20 + k, size=16)}, epoch, k, measure_gc=k == 0)
    return method


def assert_same_state(a, b) -> None:
    """Every parameter, persistent buffer and optimizer state of DARTS-V1 is bitwise equal in ``b``."""
    sa, sb = state_tensors(a), state_tensors(b)
    for name, t in sa.items():
        assert torch.equal(t, sb[name]), name


# =================================================================================================
# where the coefficient is 0, each stabilizer is DARTS-V1, bit for bit
# =================================================================================================
# the settings in which each method's base differs from DARTS-V1's xautodl defaults (the authors' code)
DARTS_CODE = {"step_order": "alpha-w", "w_nesterov": False, "w_weight_decay": 3e-4, "clip_includes_alpha": False}


def chen_base(epochs: int):
    """β-DARTS' base without Beta-Decay: DartsCodeClip on the settings of SDARTS' NB201 script."""
    from nasbench_stability.engine.run import seed_everything
    from nasbench_stability.methods.stabilizers.common import ChenNb201Options, DartsCodeClip

    twin = tiny("beta-darts", epochs=epochs)     # its context (sizes, seed), seeded as build_method seeds
    seed_everything(twin.ctx.seed)
    return DartsCodeClip(ChenNb201Options(epochs=epochs), twin.ctx)


@pytest.mark.parametrize("method,zero,nonzero,epoch,base", [
    ("darts-minus", {"aux_beta0": 0.0}, {}, 1, lambda: tiny("darts-v1", epochs=5, **DARTS_CODE)),   # β = 0 / 0.8
    ("beta-darts", {}, {"beta_decay_schedule": "constant"}, 0, lambda: chen_base(5)),               # λ = 0 / 50
    ("rdarts-dp", {"drop_path_max": 0.0}, {}, 3, lambda: tiny("darts-v1", epochs=5)),               # p = 0 / 0.15
], ids=["darts-minus", "beta-darts", "rdarts-dp"])
def test_at_coefficient_zero_the_step_is_its_bases(method, zero, nonzero, epoch, base, float64):
    """Each stabilizer at coefficient 0 is, bit for bit, the DARTS it is built on: DARTS-V1 for R-DARTS(DP),
    DARTS-V1 on DARTS-'s search-code settings for DARTS-, SDARTS' NB201 DARTS for β-DARTS."""
    reference = steps(base(), epoch=epoch)
    assert_same_state(reference, steps(tiny(method, epochs=5, **zero), epoch=epoch))
    # the same steps with the coefficient not 0 move α elsewhere (the comparison above can fail)
    moved = steps(tiny(method, epochs=5, **nonzero), epoch=epoch)
    assert not torch.equal(moved.alpha, reference.alpha)


# =================================================================================================
# DARTS-: β·x outside the softmax
# =================================================================================================
def cell_io(method, x):
    """(input, output) of the first searchable cell during ``method.logits(x)``."""
    seen = {}
    cell = method.supernet.search_cells[0]
    hook = cell.register_forward_hook(lambda mod, args, out: seen.update(x=args[0], y=out))
    method.logits(x)
    hook.remove()
    return seen["x"], seen["y"]


def test_darts_minus_adds_beta_x_on_every_edge_outside_the_softmax(float64):
    """α makes softmax ≈ one-hot('none') (skip's weight e^-80): each edge is then β·x alone, so the
    cell's nodes are n1 = β·x, n2 = β·x + β·n1, n3 = β·x + β·n1 + β·n2 = (β + 2β² + β³)·x."""
    m = tiny("darts-minus", epochs=4).eval()
    d = tiny("darts-v1", epochs=4).eval()
    for net in (m, d):
        with torch.no_grad():
            net.alpha.fill_(-40.0)
            net.alpha[:, NONE] = 40.0
    assert float(torch.softmax(m.alpha.detach(), -1)[0, SKIP]) < 1e-30
    x = batch(3, n=4, size=8)[0]
    for epoch in range(4):
        m.begin_epoch(epoch)
        beta = 1.0 - epoch / 4
        cell_x, cell_y = cell_io(m, x)
        torch.testing.assert_close(cell_y, (beta + 2 * beta**2 + beta**3) * cell_x, rtol=1e-12, atol=1e-12)
    _, plain = cell_io(d, x)
    assert plain.abs().max() < 1e-20   # DARTS-V1 with the same α: the cell outputs nothing
    # the recorded weights and the derived cell are softmax(α) alone
    np.testing.assert_allclose(m.op_weights(), torch.softmax(m.alpha, -1).detach().numpy(), rtol=1e-6, atol=0)
    assert set(m.derive().ops) == {"none"}


def test_darts_minus_discrete_cells_have_no_auxiliary_skip():
    m = tiny("darts-minus", epochs=4).eval()
    d = tiny("darts-v1", epochs=4).eval()
    d.load_state_dict({k: v for k, v in m.state_dict().items() if k != "coefficient"})
    x, g = batch(4, n=4, size=8)[0], Genotype(("nor_conv_3x3", "skip_connect", "avg_pool_3x3") * 2)
    torch.testing.assert_close(m.discrete_logits(x, g), d.discrete_logits(x, g), rtol=0, atol=0)
    assert not torch.allclose(m.logits(x), d.logits(x))   # the supernet has it


@pytest.mark.parametrize("decay", ["linear", "constant"])
def test_darts_minus_beta_schedule_per_epoch(decay):
    """β_e = β0·(E − e)/E (0-based e of E; DecayScheduler 'linear'), fixed within an epoch."""
    epochs, beta0 = 5, 0.8
    m = tiny("darts-minus", epochs=epochs, aux_beta0=beta0, aux_decay=decay)
    seen = []
    for e in range(epochs):
        m.begin_epoch(e)
        seen.append(m.extra_records()["aux_skip_beta"])
    steps(m, n=2, epoch=epochs - 1)     # steps do not move β: once per epoch, not per step
    assert m.extra_records()["aux_skip_beta"] == seen[-1]
    want = [beta0 * (epochs - e) / epochs if decay == "linear" else beta0 for e in range(epochs)]
    np.testing.assert_allclose(seen, want, rtol=1e-6)
    if decay == "linear":
        assert seen[0] == pytest.approx(beta0) and seen[-1] == pytest.approx(beta0 / epochs)


# =================================================================================================
# β-DARTS: λ·mean_e logsumexp(α_e)
# =================================================================================================
def test_beta_decay_gradient_is_lambda_softmax_over_edges(float64):
    g = torch.Generator().manual_seed(0)
    alpha = torch.randn(NUM_EDGES, NUM_OPS, generator=g).requires_grad_()
    lam = 3.7
    (grad,) = torch.autograd.grad(lam * beta_decay_loss(alpha), alpha)
    a = alpha.detach().numpy()
    softmax = np.exp(a) / np.exp(a).sum(-1, keepdims=True)           # independently of torch
    np.testing.assert_allclose(grad.numpy(), lam * softmax / NUM_EDGES, rtol=1e-12)
    assert float(beta_decay_loss(alpha.detach())) == pytest.approx(np.log(np.exp(a).sum(-1)).mean(), rel=1e-12)
    # packed (K, E, O): one loss per seed, each seed's gradient its own (not divided by K·E)
    packed = torch.stack([alpha.detach(), 2 * alpha.detach(), -alpha.detach()]).requires_grad_()
    losses = beta_decay_loss(packed)
    assert losses.shape == (3,)
    (pgrad,) = torch.autograd.grad(lam * losses.sum(), packed)
    torch.testing.assert_close(pgrad, lam * torch.softmax(packed.detach(), -1) / NUM_EDGES)


def test_beta_darts_regularizes_the_arch_step_only_with_this_epochs_lambda(float64):
    epochs = 5
    m = tiny("beta-darts", epochs=epochs).eval()   # eval: both forwards below are the same function
    x, y = batch(6, n=4, size=8)
    for e in range(epochs):
        m.begin_epoch(e)
        lam = 50.0 * e / epochs
        assert m.extra_records()["beta_decay_lambda"] == pytest.approx(lam)
        objective, _ = m.arch_objective(x, y)
        plain = m.arch_loss(x, y)                 # the task loss: the Hessian's, and the weights'
        torch.testing.assert_close(objective - plain, lam * beta_decay_loss(m.alpha), rtol=1e-12, atol=1e-12)
        g_obj = torch.autograd.grad(objective, m.alpha)[0]
        g_plain = torch.autograd.grad(m.arch_loss(x, y), m.alpha)[0]
        torch.testing.assert_close(g_obj - g_plain, lam * torch.softmax(m.alpha, -1) / NUM_EDGES,
                                   rtol=1e-9, atol=1e-12)
    const = tiny("beta-darts", epochs=epochs, beta_decay_schedule="constant", beta_decay_max=7.0)
    const.begin_epoch(0)
    assert const.extra_records()["beta_decay_lambda"] == 7.0


def test_packed_beta_darts_regularizes_each_seed_by_its_own_alpha(float64):
    """(test_packed_seeds.py steps packed seeds in epoch 0, where λ = 0.) At λ = 20, the packed objective
    and α gradient of each seed equal its solo ones: a mean over seeds and edges would be K times smaller."""
    first = tiny("beta-darts", epochs=5).eval()
    second = copy.deepcopy(first)
    with torch.no_grad():
        second.alpha.mul_(-30.0)
    solo = [first, second]
    packed = pack([copy.deepcopy(m) for m in solo]).eval()
    packed.begin_epoch(2)
    per_seed = [batch(30 + k, n=4, size=16) for k in range(2)]
    loss, _ = packed.arch_objective(torch.stack([b[0] for b in per_seed]), torch.stack([b[1] for b in per_seed]))
    (grad,) = torch.autograd.grad(loss.sum(), packed.alpha)
    for k, m in enumerate(solo):
        m.begin_epoch(2)
        want, _ = m.arch_objective(*per_seed[k])
        torch.testing.assert_close(loss[k], want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad[k], torch.autograd.grad(want, m.alpha)[0], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("method", ["rdarts-l2", "darts-es"])
def test_methods_packed_as_darts_v1_override_no_step_code(method):
    """test_packed_seeds.py leaves them out of its step test: their step must be DartsFamily's."""
    factory = get_method(method).factory
    for name in ("step", "begin_epoch", "_weight_step", "_arch_phase", "_single_level_step", "_unrolled_alpha_grad",
                 "arch_objective", "loss_and_logits", "_forward", "activate", "build_supernet", "task_loss"):
        assert getattr(factory, name) is getattr(DartsFamily, name), name


# =================================================================================================
# R-DARTS(L2): the raised weight decay reaches w, not α
# =================================================================================================
def test_rdarts_l2_first_weight_step_differs_from_darts_v1_by_the_extra_decay(float64):
    """Same init and batch: the gradients are equal, so after the first Nesterov SGD step (buffer
    g + wd·w) the weights differ by exactly −lr·(1 + μ)·(wd_L2 − wd_V1)·w0 (the clip scales g only)."""
    v1, l2 = tiny("darts-v1"), tiny("rdarts-l2")
    assert l2.options.w_weight_decay == 8.1e-3 and v1.options.w_weight_decay == 5e-4
    assert l2.options.a_weight_decay == v1.options.a_weight_decay
    w0 = {n: p.detach().clone() for n, p in v1.supernet.named_parameters()}
    b = batch(7, size=16)
    for m in (v1, l2):
        m._set_lr(0, 0)
        m._weight_step(b)
    lr, mu = v1.w_opt.param_groups[0]["lr"], v1.options.w_momentum
    for n, p in l2.supernet.named_parameters():
        want = -lr * (1 + mu) * (8.1e-3 - 5e-4) * w0[n]
        torch.testing.assert_close(p.detach() - v1.supernet.get_parameter(n).detach(), want, rtol=1e-9, atol=1e-15)


# =================================================================================================
# R-DARTS(DP): whole edges dropped per sample, rescaled, on a linear schedule
# =================================================================================================
def test_drop_path_masks_keep_with_one_minus_p_and_rescale():
    torch.manual_seed(0)
    cell = DropPathCell(4).train()
    x = torch.zeros(20_000, 4, 1, 1)
    for p in (0.2, 0.6):
        cell.drop_prob = p
        scale = cell.edge_scale(x)
        assert scale.shape == (NUM_EDGES, 20_000)
        assert torch.unique(scale).tolist() == [0.0, pytest.approx(1 / (1 - p))]
        dropped = (scale == 0).double()
        sigma = math.sqrt(p * (1 - p) / 20_000)
        assert abs(float(dropped.mean(1).max()) - p) < 5 * sigma and abs(float(dropped.mean(1).min()) - p) < 5 * sigma
        assert abs(float(scale.mean()) - 1.0) < 5 * sigma / (1 - p)                    # unbiased
        both = float((dropped[0] * dropped[1]).mean())                                   # edges independent
        assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / 20_000)
        assert not torch.equal(scale, cell.edge_scale(x))                               # fresh masks per forward
    cell.drop_prob = 0.5
    assert cell.eval().edge_scale(x) is None                                             # never in eval mode
    cell.train().drop_prob = 0.0
    assert cell.edge_scale(x) is None


def test_drop_path_scales_each_edges_whole_output_per_sample(float64, monkeypatch):
    """Eval-mode BN with running statistics makes samples independent, so sample b of the masked cell
    must equal the unmasked cell on x[b] with edge weights scaled by that sample's mask (an edge's
    output is linear in its weights): skip and pool are dropped with the convs."""
    torch.manual_seed(1)
    cell = DropPathCell(3, track_running_stats=True).eval()
    x = torch.randn(3, 3, 6, 6)
    w = torch.softmax(torch.randn(NUM_EDGES, NUM_OPS), -1)
    w[:, SKIP] += 1.0                                  # a strong parameter-free branch on every edge
    mask = torch.tensor([[0.0, 1.25, 1.25], [1.25, 0.0, 1.25], [1.25, 1.25, 0.0],
                         [0.0, 0.0, 1.25], [0.0, 1.25, 1.25], [0.0, 1.25, 0.0]])   # edges × samples
    unmasked = cell(x, w)
    monkeypatch.setattr(cell, "edge_scale", lambda inp: mask)
    out = cell(x, w)
    monkeypatch.undo()
    for b in range(3):
        ref = cell(x[b:b + 1], w * mask[:, b:b + 1])
        torch.testing.assert_close(out[b:b + 1], ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(out[0], torch.zeros_like(out[0]))   # sample 0: edges 0→3, 1→3, 2→3 all dropped
    assert not torch.allclose(out, unmasked)


def test_rdarts_dp_schedule_reaches_every_cell_and_the_hessian_loss_has_no_drop(float64):
    """p_e = p_max·e/(E − 1) (RobustDARTS train_search.py), set on every searchable cell each epoch."""
    epochs = 5
    m = tiny("rdarts-dp", epochs=epochs, drop_path_max=0.4, cells_per_stage=2)
    for e in range(epochs):
        m.begin_epoch(e)
        assert all(c.drop_prob == pytest.approx(0.4 * e / (epochs - 1)) for c in m.supernet.search_cells)
        assert m.extra_records()["drop_path_prob"] == pytest.approx(0.4 * e / (epochs - 1))
    assert isinstance(m.supernet.search_cells[5], DropPathCell) and m.drop_prob == pytest.approx(0.4)
    x, y = batch(8, n=4, size=8)
    m.train()
    first, second = m.arch_loss(x, y), m.arch_loss(x, y)
    assert torch.equal(first, second)                         # no masks: one function of α
    assert all(c.drop_prob == pytest.approx(0.4) for c in m.supernet.search_cells)   # put back
    masked = [m.loss_and_logits(x, y, arch_grad=False)[0] for _ in range(2)]
    assert not torch.equal(masked[0], masked[1])              # the search's own losses are masked


# =================================================================================================
# DARTS-ES: the stopping rule on a scripted eigenvalue sequence
# =================================================================================================
def feed(method, lambdas, start: int = 0):
    """Observe one λ_max per epoch, with α set so that epoch e's argmax cell is op (e mod 5) on every edge."""
    for e, lam in enumerate(lambdas, start):
        with torch.no_grad():
            method.alpha.zero_()
            method.alpha[:, e % NUM_OPS] = 1.0
        method.observe_hessian(e, SimpleNamespace(largest=lam))


def uniform_cell(op: int) -> Genotype:
    return Genotype.from_weights(np.eye(NUM_OPS)[[op] * NUM_EDGES])


def test_darts_es_code_rule_is_robustdarts_evlocalavg(float64):
    """The authors' rule (EVLocalAvg): λ every 2 epochs; local averages of the last 5 measurements labelled with
    their window's centre (epoch − 4); after epoch t, once t − 4 − 8 ≥ 10, stop when the newest average is more
    than 1.3× the one 4 measurements earlier, and return the cell of epoch t − 12."""
    m = tiny("darts-es", epochs=50)
    assert type(m).own_hessian_epochs(m.options, 50) == list(range(0, 50, 2)) + [49]
    lambdas = {e: 1.0 for e in range(0, 24, 2)}
    lambdas[4] = 5.0        # an early spike: the averages jump, but no stop may return a cell before epoch 10
    for e, lam in lambdas.items():
        feed(m, [lam], start=e)
        assert m.stop_reason() is None, e
    assert math.isnan(m.ratio(20)) and m.ratio(22) == pytest.approx(1.0)   # 22 − 4 − 8 = 10: the first check
    assert m.local_average(4) == pytest.approx((1 + 1 + 5) / 3)             # three measurements: all of them
    assert m.local_average(12) == pytest.approx((5 + 1 + 1 + 1 + 1) / 5)     # then the last five (epochs 4..12)
    feed(m, [9.0], start=5)                    # a measurement the rule did not ask for (hessian_every): ignored
    assert 5 not in m._epochs and m.stop_reason() is None
    feed(m, [3.0], start=24)                   # λ̄(24) = (1+1+1+1+3)/5 = 1.4 against λ̄(16) = 1: 1.4 > 1.3
    reason = m.stop_reason()
    assert m.ratio(24) == pytest.approx(1.4) and reason is not None and "epoch 25" in reason and "epoch 13's" in reason
    assert m.cell_epoch == 12 and m.derive() == uniform_cell(12 % NUM_OPS)
    rec = m.extra_records()
    assert rec["early_stopped"] and rec["es_cell_epoch"] == 13 and rec["es_lambda_avg"] == pytest.approx(1.4)
    # one notch below the factor does not stop
    calm = tiny("darts-es", epochs=50)
    for e in range(0, 24, 2):
        feed(calm, [1.0], start=e)
    feed(calm, [2.5], start=24)                # (4 + 2.5)/5 = 1.3: not more than 1.3
    assert calm.stop_reason() is None
    # the history survives a weights_only checkpoint round trip
    buf = io.BytesIO()
    torch.save(m.checkpoint_state(), buf)
    fresh = tiny("darts-es", epochs=50)
    fresh.load_checkpoint_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert fresh.stop_reason() == reason and fresh.derive() == uniform_cell(12 % NUM_OPS)


def test_darts_es_stops_exactly_when_the_local_averages_say(float64):
    """The paper's reading (es_rule=paper). k = 2, λ̄ over 2 epochs: λ̄ = 1, 1, 1, 1.05, 1.25, 1.5 for epochs 1..6 (0-based 1..6) gives ratios
    λ̄(t−2)/λ̄(t) = 1, 0.952, 0.8 (epoch index 5, not yet < 0.75), then 1.05/1.5 = 0.7 at index 6."""
    m = tiny("darts-es", epochs=12, es_rule="paper", es_window=2, es_average=2, es_ratio=0.75)
    lambdas = [1.0, 1.0, 1.0, 1.0, 1.1, 1.4, 1.6]
    for e, lam in enumerate(lambdas[:6]):
        feed(m, [lam], start=e)
        assert m.stop_reason() is None, e
        assert m.derive() == uniform_cell(e % NUM_OPS)              # the current cell until the stop
    assert m.ratio(5) == pytest.approx(0.8) and m.ratio(1) != m.ratio(1)   # NaN: no λ̄(t − k) yet
    feed(m, [1.6], start=6)
    reason = m.stop_reason()
    assert reason is not None and "epoch 5" in reason and "epoch 7" in reason
    assert m.ratio(6) == pytest.approx(1.05 / 1.5)
    assert m.derive() == uniform_cell(4)                            # epoch index 6 − k = 4: op 4
    assert m.derive() != Genotype.from_weights(m.op_weights())
    rec = m.extra_records()
    assert rec["early_stopped"] and rec["es_cell_epoch"] == 5 and rec["es_ratio"] == pytest.approx(0.7)
    assert rec["es_lambda_avg"] == pytest.approx(1.5)
    feed(m, [100.0], start=7)                                        # nothing is observed after the stop
    assert m.derive() == uniform_cell(4) and len(m._lambdas) == 7

    # the whole history survives a weights_only checkpoint round trip
    buf = io.BytesIO()
    torch.save(m.checkpoint_state(), buf)
    fresh = tiny("darts-es", epochs=12, es_rule="paper", es_window=2, es_average=2, es_ratio=0.75)
    fresh.load_checkpoint_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert fresh.stop_reason() == reason and fresh.derive() == uniform_cell(4)


def test_darts_es_does_not_stop_in_the_last_epoch_or_on_non_positive_curvature(float64):
    last = tiny("darts-es", epochs=3, es_rule="paper", es_window=1, es_average=1)
    feed(last, [1.0, 1.0, 9.0])                 # the rule holds at the last epoch only
    assert last.stop_reason() is None and last.derive() == uniform_cell(2)
    flat = tiny("darts-es", epochs=9, es_rule="paper", es_window=1, es_average=1)
    feed(flat, [-2.0, -1.0, 0.0, -0.5])         # λ̄(t) ≤ 0: no growth to speak of
    assert flat.stop_reason() is None
    feed(flat, [0.1], start=4)                  # from −0.5 to 0.1: ratio −5 < 0.75
    assert flat.stop_reason() is not None and flat.derive() == uniform_cell(3)


# =================================================================================================
# end to end: one `nbs run` per method on real CIFAR-10 (C=8, N=1, 16+16 images, batches of 8)
# =================================================================================================
def read_records(run_dir) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "records").sort_values("epoch").reset_index(drop=True)


# (method, --set, the column this method records, its expected values)
E2E = [("darts-minus", (), "aux_skip_beta", [1.0, 0.5]),
       ("beta-darts", (), "beta_decay_lambda", [0.0, 25.0]),
       ("rdarts-l2", (), None, None),
       ("rdarts-dp", (), "drop_path_prob", [0.0, 0.2])]


@pytest.mark.parametrize("method,sets,column,values", E2E, ids=[e[0] for e in E2E])
def test_tiny_cli_run(cli, tmp_path, method, sets, column, values):
    out = cli("run", "--method", method, "--out", str(tmp_path), "--device", "cpu", *METHOD_RUN_ARGS, *sets)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = tmp_path / f"{method}-cifar10-seed0"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["epochs_done"] == 2
    df = read_records(run_dir)
    assert df.epoch.tolist() == [1, 2] and df.bench_cifar10_test_200.notna().all()
    if column is not None:
        np.testing.assert_allclose(df[column].to_numpy(dtype=float), values, rtol=1e-6)
    config = json.loads((run_dir / "config.json").read_text())["method_options"]
    defaults = get_method(method).default_options()
    assert config["w_weight_decay"] == defaults.w_weight_decay


def test_darts_es_cli_run_stops_early_and_a_rerun_does_nothing(cli, tmp_path):
    """k = 1, λ̄ = λ and a ratio bound of 100: the rule fires after epoch 2 of 3 (it cannot at epoch 1,
    which has no epoch k before it)."""
    args = ("run", "--method", "darts-es", "--out", str(tmp_path), "--device", "cpu", *METHOD_RUN_ARGS,
            "--epochs", "3", "--set", "es_rule=paper", "--set", "es_window=1", "--set", "es_average=1",
            "--set", "es_ratio=100",
            "--set", "hessian_batches=1")   # an exact 30×30 Hessian costs ~30 double backwards per batch
    out = cli(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = tmp_path / "darts-es-cifar10-seed0"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["epochs_done"] == 2
    assert "stopped early after epoch 2/3" in status["message"] and "epoch 1's" in status["message"]
    df = read_records(run_dir)
    assert df.epoch.tolist() == [1, 2]
    assert df.early_stopped.tolist() == [False, True] and df.es_cell_epoch.tolist() == [1, 1]
    assert np.isfinite(df.hessian_max).all()                     # measured every epoch, hessian_every = 0
    assert df.es_ratio.iloc[1] == pytest.approx(df.hessian_max.iloc[0] / df.hessian_max.iloc[1], rel=1e-12)
    assert math.isnan(df.es_ratio.iloc[0])
    assert df.genotype.iloc[1] == df.genotype.iloc[0]            # the returned cell is epoch 1's
    assert df.bench_cifar10_test_200.iloc[1] == df.bench_cifar10_test_200.iloc[0]
    files = sorted(p.name for p in (run_dir / "records").iterdir())
    again = cli(*args)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert sorted(p.name for p in (run_dir / "records").iterdir()) == files
    assert json.loads((run_dir / "status.json").read_text())["epochs_done"] == 2


@pytest.mark.parametrize("method", MINE)
def test_methods_show_prints_sources_and_departures(method):
    text = describe_method(method)
    # what each is built on: DARTS-V1's NB201 reference, or its authors' own search code
    base = {"darts-minus": "publish no NB201 search script", "beta-darts": "nasbench201/train_search.py"}
    assert "departures from the paper:" in text and base.get(method, "darts-v1") in text
    own = {"darts-minus": ("aux_beta0 = 1.0", "DARTS- code"), "beta-darts": ("beta_decay_max = 50.0", "β-DARTS code"),
           "rdarts-l2": ("w_weight_decay = 0.0081", "R-DARTS code"), "rdarts-dp": ("drop_path_max = 0.2", "R-DARTS code"),
           "darts-es": ("es_ratio = 0.75", "paper")}[method]
    assert all(s in text for s in own)
    info = get_method(method)
    assert info.packable == (method != "rdarts-dp")
