"""ENAS: the controller against xautodl's, its policy (valid cells, log-probs, exact marginals), the
REINFORCE gradient, baseline, aggregation and clip against hand computations, learning on a toy reward;
the shared step computes only the sampled cell; the epoch's controller phase and pick; checkpoint
round trip; the cosine with T_max; and one tiny `nbs run` on CIFAR-10."""

from __future__ import annotations

import copy
import io
import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.options import apply_overrides
from nasbench_stability.methods.registry import get_method
from nasbench_stability.methods.sampling.enas_controller import (Controller, ControllerSettings, marginals,
                                                                 reinforce_loss, train_controller)
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import EDGES, NUM_EDGES, OP_INDEX, OPS

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, tiny

TARGET = Genotype.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
CONVS = (OP_INDEX["nor_conv_1x1"], OP_INDEX["nor_conv_3x3"])


def peaked(seed: int = 0) -> Controller:
    """A controller whose decisions are far from uniform and depend on the state (a fresh one's are 0.19-0.22)."""
    torch.manual_seed(seed)
    c = Controller()
    with torch.no_grad():
        c.w_embd.weight.mul_(30)
        c.w_pred.weight.mul_(200)
        c.w_pred.bias.copy_(2 * torch.randn(5))
    return c


def matching_edges(cell: Genotype, batch=None) -> torch.Tensor:
    """Toy accuracy: the fraction of edges holding TARGET's op (no network)."""
    return torch.tensor(sum(a == b for a, b in zip(cell.ops, TARGET.ops)) / NUM_EDGES)


def settings(**kw) -> ControllerSettings:
    base = dict(steps=1, aggregate=1, entropy_weight=1e-4, decay=0.99, baseline_update="xautodl", grad_clip=5.0)
    return ControllerSettings(**{**base, **kw})


# ---------------------------------------------------------------------------------------------
# the controller's policy
# ---------------------------------------------------------------------------------------------
def test_controller_defaults_and_draws_match_xautodl():
    """xautodl's NB201 Controller with its default sizes; with its weights, nbs draws the same cells from the
    same global RNG state, with the same log-probability, entropy and gradients."""
    xc = pytest.importorskip("xautodl.models.cell_searchs.search_model_enas_utils")
    ref = xc.Controller(NUM_EDGES, len(OPS))   # what TinyNetworkENAS.create_controller passes
    opts = get_method("enas").default_options()
    assert (ref.lstm_size, ref.lstm_N, ref.tanh_constant, ref.temperature) == (
        opts.lstm_size, opts.lstm_layers, opts.tanh_constant, opts.temperature)
    ours = tiny("enas").controller
    ours.load_state_dict(ref.state_dict())          # same parameter names and shapes
    with torch.no_grad():
        for c in (ref, ours):
            c.w_pred.weight.mul_(40)
    for seed in range(8):
        torch.manual_seed(seed)
        log_prob, entropy, arch = ref()
        torch.manual_seed(seed)
        mine = ours.sample()
        assert mine.ops[0].tolist() == arch
        torch.testing.assert_close(mine.log_prob[0], log_prob)
        torch.testing.assert_close(mine.entropy[0], entropy)
        ref_grads = torch.autograd.grad(log_prob + 0.3 * entropy, list(ref.parameters()))
        my_grads = torch.autograd.grad(mine.log_prob[0] + 0.3 * mine.entropy[0], list(ours.parameters()))
        for a, b in zip(my_grads, ref_grads):
            torch.testing.assert_close(a, b)


def test_sampled_cells_are_valid_and_their_probability_is_the_product_of_the_decisions():
    c = peaked()
    joint = c.joint()
    assert joint.shape == (5,) * 6 and math.isclose(float(joint.sum()), 1.0, rel_tol=1e-5)
    d = c.sample(torch.Generator().manual_seed(3), n=20)
    cells = d.cells()   # Genotype raises on anything but six NB201 ops
    assert len(set(cells)) > 5 and all(len(cell.ops) == 6 and set(cell.ops) <= set(OPS) for cell in cells)
    for k, cell in enumerate(cells):
        probs, ops = d.probs[k], d.ops[k]
        assert torch.allclose(probs.sum(1), torch.ones(6))
        torch.testing.assert_close(d.log_prob[k], probs[torch.arange(6), ops].log().sum())
        torch.testing.assert_close(d.entropy[k], -(probs * probs.log()).sum())
        # the tree enumeration (one batched pass per edge) gives the same probability of this cell
        torch.testing.assert_close(joint[tuple(ops.tolist())], d.log_prob[k].exp().detach(), rtol=1e-4, atol=0)
        torch.testing.assert_close(c.score(cell).log_prob[0], d.log_prob[k])   # one walk = a row of n walks
    with torch.no_grad():
        greedy = c.greedy()
    assert greedy.ops[0].tolist() == greedy.probs[0].argmax(1).tolist()
    assert float(joint.max()) >= float(greedy.log_prob[0].exp()) * (1 - 1e-5)


def test_marginals_are_the_sampling_frequencies():
    c = peaked(0)
    exact = marginals(c.joint())
    torch.testing.assert_close(exact.sum(1), torch.ones(6))
    n = 4000
    with torch.no_grad():
        counts = F.one_hot(c.sample(torch.Generator().manual_seed(0), n).ops, 5).float().sum(0)
    # binomial standard error ≤ 0.008 at n = 4000: 0.03 is > 3.7 of them
    assert (counts / n - exact).abs().max() < 0.03
    # not uniform, and not the same on every edge: the test tells the policy apart from a wrong one
    assert exact.max() > 0.35 and (exact - exact.mean(0)).abs().max() > 0.1


# ---------------------------------------------------------------------------------------------
# REINFORCE
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,previous", [("xautodl", 0.25), ("xautodl", None), ("per-sample", 0.25)])
def test_reinforce_gradient_equals_the_hand_computation(mode, previous):
    c = peaked(2).double()
    params = list(c.parameters())
    acc, w, d = torch.tensor(0.3, dtype=torch.float64), 0.05, 0.99   # w large enough to matter
    prev = None if previous is None else torch.tensor(previous, dtype=torch.float64)

    s = c.score(TARGET)
    loss, reward, baseline = reinforce_loss(s.log_prob[0], s.entropy[0], acc, prev, w, d, mode == "per-sample")
    got = torch.autograd.grad(loss, params)

    s = c.score(TARGET)
    g_logp, logp = torch.autograd.grad(s.log_prob[0], params, retain_graph=True), float(s.log_prob[0].detach())
    g_h, h = torch.autograd.grad(s.entropy[0], params), float(s.entropy[0].detach())
    r = 0.3 + w * h
    assert math.isclose(float(reward.detach()), r, rel_tol=1e-12)
    if previous is None:      # the first epoch: baseline = the accuracy, so R − b = w·H
        coef_logp, coef_h, b = -w * h, -w * logp, 0.3
    elif mode == "xautodl":   # b = d·b0 + (1 − d)·R keeps R's gradient: R − b = d·(R − b0)
        coef_logp, coef_h, b = -d * (r - previous), -d * w * logp, d * previous + (1 - d) * r
    else:                     # b a constant
        b = d * previous + (1 - d) * r
        coef_logp, coef_h = -(r - b), -w * logp
    assert math.isclose(float(baseline.detach()), b, rel_tol=1e-12)
    for a, gl, gh in zip(got, g_logp, g_h):
        torch.testing.assert_close(a, coef_logp * gl + coef_h * gh, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("mode,start", [("per-sample", 0.5), ("xautodl", 0.5), ("xautodl", None)])
def test_baseline_follows_its_update_rule(mode, start):
    c = peaked(3)
    opt = torch.optim.Adam(c.parameters(), lr=1e-3)
    b0 = None if start is None else torch.tensor(start)
    t = train_controller(c, opt, matching_edges, itertools.repeat(None), torch.Generator().manual_seed(1),
                         settings(steps=3, aggregate=2, baseline_update=mode), b0)
    assert len(t.reward) == 6 and len(t.grad_norm) == 3
    torch.testing.assert_close(t.reward, t.accuracy + 1e-4 * t.entropy)
    if start is None:
        expected = t.accuracy                            # ENAS.py's first epoch: baseline = val_top1
    elif mode == "xautodl":
        expected = 0.99 * start + 0.01 * t.reward       # every sample from the value carried in
    else:
        prev, rows = start, []
        for r in t.reward.tolist():                     # the EMA, sample after sample
            prev = 0.99 * prev + 0.01 * r
            rows.append(prev)
        expected = torch.tensor(rows)
    torch.testing.assert_close(t.baseline, expected.float())
    assert float(t.final_baseline) == float(t.baseline[-1])   # what the next epoch starts from
    assert len(set(t.reward.tolist())) > 1


def test_the_step_averages_the_aggregated_gradients_and_clips_them():
    clip = 1e-3   # small: the clip is active
    a = peaked(4)
    b = copy.deepcopy(a)
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2, betas=(0.0, 0.999), eps=1e-3)
    t = train_controller(a, opt_a, matching_edges, itertools.repeat(None), torch.Generator().manual_seed(5),
                         settings(steps=1, aggregate=3, grad_clip=clip, entropy_weight=0.0), torch.tensor(0.4))
    # by hand: the same three cells (same generator, weights unchanged until the step)
    params = list(b.parameters())
    grads = [torch.zeros_like(p) for p in params]
    s = b.sample(torch.Generator().manual_seed(5), n=3)
    for k, cell in enumerate(s.cells()):
        r = float(matching_edges(cell))
        adv = r - (0.99 * 0.4 + 0.01 * r)
        for acc, gi in zip(grads, torch.autograd.grad(-s.log_prob[k] * adv, params, retain_graph=True)):
            acc += gi / 3
    norm = torch.linalg.vector_norm(torch.stack([x.norm() for x in grads]))
    torch.testing.assert_close(t.grad_norm[0], norm)
    assert norm > clip
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2, betas=(0.0, 0.999), eps=1e-3)
    for p, gi in zip(params, grads):
        p.grad = gi * (clip / (norm + 1e-6))
    opt_b.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_the_controller_learns_a_toy_reward():
    """Reward = fraction of edges holding TARGET's op, ENAS' optimizer (a higher lr), the xautodl baseline
    carried over 5 'epochs' of 20 steps × 5 samples."""
    torch.manual_seed(0)
    c = Controller()
    before = float(c.joint()[TARGET.op_indices()])
    opt = torch.optim.Adam(c.parameters(), lr=0.05, betas=(0.0, 0.999), eps=1e-3)
    baseline, rewards = None, []
    for epoch in range(5):
        t = train_controller(c, opt, matching_edges, itertools.repeat(None), torch.Generator().manual_seed(epoch),
                             settings(steps=20, aggregate=5), baseline)
        baseline = t.final_baseline
        rewards.append(float(t.reward.mean()))
    assert rewards[0] < 0.4 < 0.75 < rewards[-1]
    assert float(c.joint()[TARGET.op_indices()]) > 50 * before
    m = marginals(c.joint())
    convs = [e for e, op in enumerate(TARGET.ops) if op == "nor_conv_3x3"]
    assert (m[convs, OP_INDEX["nor_conv_3x3"]] > 0.9).all()


# ---------------------------------------------------------------------------------------------
# the method on a tiny supernet
# ---------------------------------------------------------------------------------------------
def dead_convs(cell: Genotype) -> list[int]:
    """Edges of ``cell`` holding a conv whose output cannot reach node 3 (every way out is none), and whose
    kernel is not stacked with a live edge's (edges from one node with the same conv run as one conv)."""
    live = {3}
    for node in (2, 1):
        if any(s == node and t in live and op != "none" for (s, t), op in zip(EDGES, cell.ops)):
            live.add(node)
    return [e for e, ((s, t), op) in enumerate(zip(EDGES, cell.ops)) if OP_INDEX[op] in CONVS and t not in live
            and all(cell.ops[f] != op for f, (s2, _) in enumerate(EDGES) if s2 == s and f != e)]


def test_the_shared_step_computes_and_trains_only_the_sampled_cell(monkeypatch):
    m = tiny("enas", unsampled_weights="skipped")
    m.begin_epoch(0)
    x, y = batch(0, n=8, size=8)
    # a step whose cell has a conv that cannot reach the output (its node's way out is none)
    step = next(s for s in range(100) if dead_convs(m.sample_cell(0, s)))
    cell = m.sample_cell(0, step)
    with torch.no_grad():
        expected_loss = float(F.cross_entropy(m.discrete_logits(x, cell), y))
    names = {id(p): (e, op) for c in m.supernet.search_cells for e in range(NUM_EDGES) for op in CONVS
             for p in c.conv_weights(e, op)}
    params = {id(p) for p in m.supernet.parameters()}
    sampled = {(e, OP_INDEX[op]) for e, op in enumerate(cell.ops) if OP_INDEX[op] in CONVS}
    computed = Counter()   # conv op → edge computations
    conv2d = F.conv2d

    def counting(inp, weight, *args, **kwargs):
        if id(weight) in names:              # one edge's kernel
            assert names[id(weight)] in sampled
            computed[names[id(weight)][1]] += 1
        elif id(weight) not in params and weight.requires_grad:   # kernels of all edges leaving a node, stacked
            computed[CONVS[weight.shape[-1] == 3]] += weight.shape[0] // weight.shape[1]
        return conv2d(inp, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", counting)
    stats = m.step({"train": (x, y)}, 0, step, False)
    monkeypatch.undo()
    assert computed == Counter({op: 3 * n for op, n in Counter(op for _, op in sampled).items()})   # 3 cells
    assert math.isclose(float(stats.loss_sum) / 8, expected_loss, rel_tol=1e-5)
    torch.testing.assert_close(stats.extra["shared_op_freq"], torch.from_numpy(cell.one_hot()))
    # no gradient off the path; a gradient (0 where it does not reach the loss, as xautodl's none = x·0
    # gives it) for every other weight
    off = {id(p): (e, op) for c in m.supernet.search_cells for e in range(NUM_EDGES) for op in CONVS
           if (e, op) not in sampled for p in c.conv_weights(e, op)}
    assert off and all((p.grad is None) == (id(p) in off) for p in m.w_params)
    assert len({m.sample_cell(0, s) for s in range(6)}) > 1   # a new draw every step


@pytest.mark.parametrize("unsampled", ["decayed", "skipped"])
def test_an_op_left_out_of_a_later_cell_moves_only_when_decayed(unsampled):
    m = tiny("enas", unsampled_weights=unsampled)
    m.begin_epoch(0)
    convs = lambda cell: {(e, OP_INDEX[o]) for e, o in enumerate(cell.ops) if OP_INDEX[o] in CONVS}  # noqa: E731
    left = convs(m.sample_cell(0, 0)) - convs(m.sample_cell(0, 1))
    assert left
    e, op = sorted(left)[0]
    weight = m.supernet.search_cells[0].conv_weights(e, op)[0]
    m.step({"train": batch(0, 8, 8)}, 0, 0, False)
    before = weight.detach().clone()
    m.step({"train": batch(1, 8, 8)}, 0, 1, False)
    assert torch.equal(weight, before) == (unsampled == "skipped")


SMALL = dict(controller_train_steps=2, controller_num_aggregate=2, select_samples=2, final_samples=3)


def epoch(m, k: int, n_steps: int = 2):
    """One epoch as the engine runs it: steps, then select on valid batches (seeded by the epoch)."""
    m.train()
    m.begin_epoch(k)
    for s in range(n_steps):
        m.step({"train": batch(10 * k + s, 8, 8)}, k, s, False)
    valid = (batch(1000 + 100 * k + i, 8, 8) for i in range(m.select_batches))
    m.select(valid, k)


def test_the_epoch_trains_the_controller_then_picks_among_drawn_cells():
    m = tiny("enas", **SMALL)
    assert m.select_augment and m.select_batches == 2 * 2 + 2
    start = copy.deepcopy(m.controller.state_dict())
    epoch(m, 0)
    assert any(not torch.equal(v, start[k]) for k, v in m.controller.state_dict().items())
    assert [s["step"] for s in m.a_opt.state.values()][0] == 2            # controller_train_steps optimizer steps
    rec = m.extra_records()
    assert len(rec["candidate_genotypes"]) == 2
    assert m.derive().to_str() == rec["candidate_genotypes"][rec["picked_index"]]
    assert rec["picked_valid_acc"] == max(rec["candidate_valid_acc"])
    # the first epoch has no baseline: each sample's is its own accuracy, and the last one is carried on
    assert rec["controller_baseline"] == pytest.approx(float(m._trace.accuracy[-1]))
    x = batch(7, 8, 8)[0]
    torch.testing.assert_close(m.logits(x), m.discrete_logits(x, m.derive()))   # the engine evaluates the pick
    np.testing.assert_allclose(m.op_weights(), marginals(m.controller.joint()).numpy())
    np.testing.assert_allclose(m.op_weights().sum(1), 1, atol=1e-5)
    assert m.ctx.epochs == 2 and m.pick_samples(1) == 3
    epoch(m, 1)                                                             # the last epoch: the final pick
    assert len(m.extra_records()["candidate_genotypes"]) == 3 and m.select_batches == 4 + 3


def test_a_checkpoint_round_trip_resumes_exactly():
    """Controller, its Adam state, the baseline and the weights' zero gradients come back: epoch 2 after a
    restore equals epoch 2 of the uninterrupted method."""
    straight = tiny("enas", **SMALL)
    epoch(straight, 0)
    saved = io.BytesIO()
    torch.save(straight.checkpoint_state(), saved)   # as the engine writes it, and reads it back (weights_only)
    restored = tiny("enas", **SMALL)
    restored.load_checkpoint_state(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    assert float(restored.baseline) == float(straight.baseline) and not math.isnan(float(restored.baseline))
    for m in (straight, restored):
        epoch(m, 1)
    for (name, a), b in zip(straight.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(straight.a_opt.state.values(), restored.a_opt.state.values()):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
    assert straight.extra_records()["candidate_genotypes"] == restored.extra_records()["candidate_genotypes"]


def test_the_optimizers_are_enas_config_with_xautodls_cosine_of_t_max_10():
    m = tiny("enas", epochs=250)
    a = m.a_opt.param_groups[0]
    assert (a["lr"], a["betas"], a["eps"], a["weight_decay"]) == (1e-3, (0.0, 0.999), 1e-3, 0.0)
    w = m.w_opt.param_groups[0]
    assert (w["momentum"], w["nesterov"], w["weight_decay"]) == (0.9, True, 2.5e-4)
    for e, lr in [(0, 0.05), (5, 0.0005 + 0.0495 / 2), (10, 0.0005), (20, 0.05), (30, 0.0005)]:
        m.begin_epoch(e)
        assert math.isclose(m.learning_rates()["lr_w"], lr, rel_tol=1e-12), e
    whole = tiny("enas", epochs=250, lr_t_max=0)   # 0: one half-cosine over the run
    whole.begin_epoch(125)
    assert math.isclose(whole.learning_rates()["lr_w"], 0.0005 + 0.0495 / 2, rel_tol=1e-12)


@pytest.mark.parametrize("key", ["controller_train_steps", "controller_num_aggregate", "select_samples",
                                 "final_samples"])
def test_sample_counts_must_be_positive(key):
    with pytest.raises(ConfigError, match=f"{key}=0"):
        apply_overrides(get_method("enas").default_options(), {key: "0"})


# ---------------------------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------------------------
def test_nbs_run_enas_on_cifar10(cli, tmp_path):
    small = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    out = cli("run", "--method", "enas", "--out", str(tmp_path), "--device", "cpu", *METHOD_RUN_ARGS, *small)
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(tmp_path / "enas-cifar10-seed0" / "records").sort_values("epoch")
    assert df.epoch.tolist() == [1, 2] and df.bench_cifar10_test_200.notna().all()
    assert [len(c) for c in df.candidate_genotypes] == [2, 3]
    for row in df.itertuples():
        assert row.genotype == row.candidate_genotypes[row.picked_index]
        np.testing.assert_allclose(np.reshape(row.op_weights, (6, 5)).sum(1), 1, atol=1e-5)
        assert math.isfinite(row.controller_baseline) and math.isfinite(row.valid_acc)
    assert df.lr_w.tolist() == pytest.approx([0.05, 0.0005 + 0.0495 * (1 + math.cos(math.pi / 10)) / 2])
    refused = cli("run", "--method", "enas", "--out", str(tmp_path / "h"), "--device", "cpu", *METHOD_RUN_ARGS,
                  *small, "--hessian-every", "1")
    assert refused.returncode == 2 and "no architecture parameters" in refused.stderr
    assert not (tmp_path / "h" / "enas-cifar10-seed0" / "records").exists()
