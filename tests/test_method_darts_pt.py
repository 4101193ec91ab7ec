"""DARTS-PT: the perturbation pick on a toy supernet with a known essential op (removal = that op's weight 0 and
the op not computed, nothing else touched), the same pick on the real supernet, the schedule (decisions at the
stated epochs, the tuning learning rate and momentum restart), decided edges staying fixed and uncomputed while
tuning, determinism, resume mid-projection through a weights-only checkpoint, and one `nbs run` end to end."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.stabilizers.darts_pt import edge_order
from nasbench_stability.space.live_ops import reaching_output
from nasbench_stability.methods.stabilizers.perturbation import (UNDECIDED, pick, project_cell,
                                                                 score_edge)
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import NUM_EDGES, NUM_OPS, OP_INDEX

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, tiny

SKIP, C1, C3 = OP_INDEX["skip_connect"], OP_INDEX["nor_conv_1x1"], OP_INDEX["nor_conv_3x3"]


# ---- the pick, on a toy supernet --------------------------------------------------------------
def toy(calls: list):
    """A 'supernet' whose output is Σ w[e,o]·op_eo(x): op (2, 3) carries the label (x's first 10 features ×300),
    every other op is a random projection of the noise features. Only op (2, 3) matters, and on edge 2 it has
    the smallest weight. Records each call's (weights, active)."""
    r = torch.randn(NUM_EDGES, NUM_OPS, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def forward(x, weights, active):
        calls.append((weights.clone(), None if active is None else active.copy()))
        out = torch.zeros(x.shape[0], 10, dtype=torch.float64)
        for e in range(NUM_EDGES):
            for o in range(NUM_OPS):
                if active is None or active[e, o]:
                    out = out + weights[e, o] * (300 * x[:, :10] if (e, o) == (2, 3) else x[:, 10:] @ r[e, o])
        return out

    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(3):
        y = torch.randint(0, 10, (16,), generator=g)
        batches.append((torch.cat([F.one_hot(y, 10).double(), torch.randn(16, 10, generator=g, dtype=torch.float64)],
                                  1), y))
    weights = torch.full((NUM_EDGES, NUM_OPS), 0.2, dtype=torch.float64)
    weights[2] = torch.tensor([0.1, 0.5, 0.2, 0.1, 0.1])
    return forward, weights, batches


@pytest.mark.parametrize("criterion", ["acc", "loss"])
def test_the_op_whose_removal_destroys_the_output_is_kept_not_the_largest_weight(criterion):
    calls = []
    forward, weights, batches = toy(calls)
    s = score_edge(forward, weights, None, 2, range(NUM_OPS), batches, criterion)
    assert s.op == 3 and int(weights[2].argmax()) == 1       # argmax α would keep op 1
    assert s.base_acc > 95 and s.removed_acc[3] < 40
    assert all(s.removed_acc[o] > 90 for o in (0, 1, 2, 4))
    assert s.removed_loss[3] == max(s.removed_loss)

    # removal = that op's weight 0 and that op alone left out of the active mask; nothing else touched
    assert len(calls) == 6 * len(batches)
    for w, active in calls[:len(batches)]:
        assert torch.equal(w, weights) and active is None
    for k, op in enumerate(range(NUM_OPS)):
        for w, active in calls[(k + 1) * len(batches):(k + 2) * len(batches)]:
            expected = weights.clone()
            expected[2, op] = 0
            assert torch.equal(w, expected)
            assert np.argwhere(~active).tolist() == [[2, op]]


def test_ties_go_to_the_first_candidate_and_non_candidates_are_not_scored():
    assert pick([50, 40, 40, 60, 40], [0] * 5, [0, 1, 2, 3, 4], "acc") == 1
    assert pick([50] * 5, [1.0, 3.0, 2.0, 3.0, 0.5], [0, 1, 2, 3, 4], "loss") == 1
    assert pick([10, 40, 40, 60, 40], [0] * 5, [1, 2, 3, 4], "acc") == 1   # op 0 is no candidate
    calls = []
    forward, weights, batches = toy(calls)
    s = score_edge(forward, weights, None, 2, [1, 2, 3, 4], batches)
    assert math.isnan(s.removed_acc[0]) and math.isnan(s.removed_loss[0]) and s.op == 3
    assert len(calls) == 5 * len(batches)


def test_later_decisions_see_earlier_edges_projected_and_their_removed_ops_uncomputed():
    calls = []
    forward, weights, batches = toy(calls)
    decided, scores = project_cell(forward, weights, [2, 0, 5, 1, 3, 4], range(NUM_OPS), batches)
    assert decided[2] == 3 and [s.edge for s in scores] == [2, 0, 5, 1, 3, 4]
    assert all(op != UNDECIDED for op in decided)
    w, active = calls[6 * len(batches)]          # the first forward of the second decision (edge 0, nothing removed)
    assert torch.equal(w[2], F.one_hot(torch.tensor(3), NUM_OPS).double())
    assert active[2].tolist() == [False, False, False, True, False] and active[[0, 1, 3, 4, 5]].all()
    assert torch.equal(w[[0, 1, 3, 4, 5]], weights[[0, 1, 3, 4, 5]])


# ---- on the real supernet ------------------------------------------------------------------------
def valid_batches(m, n=2, size=8):
    """Batches labelled with the supernet's own predictions (train-mode BN, as the scoring): 100% before removal."""
    out = []
    for k in range(n):
        x, _ = batch(100 + k, n=16, size=size)
        with torch.no_grad():
            out.append((x, m.logits(x).argmax(-1)))
    return out


def path_through_edge_0(m):
    """α: skip dominant on 0→1 and 1→3, 'none' dominant elsewhere, so the cell is ≈ x through edge 0 alone."""
    with torch.no_grad():
        m.alpha.fill_(-20.0)
        m.alpha[:, OP_INDEX["none"]] = 20.0
        for e in (0, 4):
            m.alpha[e] = -20.0
            m.alpha[e, SKIP] = 20.0


def test_on_the_supernet_removing_the_only_path_decides_the_edge(float64):
    m = tiny("darts-pt", epochs=6, tune_epochs=1, edge_order="fixed")
    path_through_edge_0(m)
    m.train()
    batches = valid_batches(m)
    m.select(iter(batches), 0)                    # S = 1: the first decision at the end of epoch 0
    p = m.projection
    assert p.decided == [SKIP] + [UNDECIDED] * 5 and p.decided_at[0] == 1
    assert p.base[0, 0] == 100.0 and p.removed_acc[0, SKIP] < 60
    assert [p.removed_acc[0, o] for o in range(NUM_OPS) if o != SKIP] == [100.0] * 4
    rec = m.extra_records()
    np.testing.assert_array_equal(rec["proj_acc_drop"][0], p.base[0, 0] - p.removed_acc[0])
    assert rec["proj_order"] == [0, -1, -1, -1, -1, -1] and rec["proj_decided"] == 1


def test_decided_edges_stay_fixed_and_their_removed_ops_are_not_computed(float64):
    m = tiny("darts-pt", epochs=6, tune_epochs=1, edge_order="fixed")
    path_through_edge_0(m)
    m.train()
    m.select(iter(valid_batches(m)), 0)
    with torch.no_grad():                         # α now favours the 3×3 conv on the decided edge
        m.alpha[0] = -20.0
        m.alpha[0, C3] = 20.0
    assert m.derive().ops[0] == "skip_connect" and m.op_weights()[0].tolist() == [0, 1, 0, 0, 0]
    assert Genotype.from_str(m.extra_records()["alpha_genotype"]).ops[0] == "nor_conv_3x3"

    cells = m.supernet.search_cells
    before = [(c.conv1x1[0].detach().clone(), c.conv3x3[0].detach().clone()) for c in cells]
    m.begin_epoch(1)
    stats = m.step({"train": batch(1, 8, 8), "valid": batch(2, 8, 8)}, 1, 0, measure_gc=True)
    assert torch.equal(stats.op_grad[0], torch.zeros(NUM_OPS))     # no gradient reaches the decided row's α
    assert stats.op_grad[1:].abs().sum() > 0
    assert torch.isnan(stats.gc_inner[0]).all() and torch.isfinite(stats.gc_inner[1:, [C1, C3]]).all()
    for c, (w1, w3) in zip(cells, before):        # not computed: no gradient, no decay, no momentum
        assert c.conv1x1[0].grad is None and torch.equal(c.conv1x1[0], w1) and torch.equal(c.conv3x3[0], w3)
        assert c.conv1x1[1].grad is not None and c.conv3x3[5].grad is not None   # the undecided edges' are


def test_ops_into_a_node_that_feeds_nothing_are_dead_and_out_of_gradient_correlation():
    active = np.ones((NUM_EDGES, NUM_OPS), dtype=bool)
    active[5] = [True, False, False, False, False]        # 2→3 decided 'none': node 2 feeds nothing
    live = reaching_output(active)
    assert not live[[1, 2]].any() and live[[0, 3, 4]][:, 1:].all() and not live[:, 0].any()
    m = tiny("darts-pt", epochs=6, tune_epochs=1)
    m.projection.decided[5] = OP_INDEX["none"]
    m._refresh()
    stats = m.step({"train": batch(1, 8, 8), "valid": batch(2, 8, 8)}, 1, 0, measure_gc=True)
    assert torch.isnan(stats.gc_inner[[1, 2, 5]]).all() and torch.isfinite(stats.gc_inner[[0, 3, 4]][:, [C1, C3]]).all()


def run_epochs(m, epochs, start=0, log=None):
    """The engine's loop without the engine: begin_epoch, a step, select on a valid batch."""
    for epoch in range(start, epochs):
        m.train()
        m.begin_epoch(epoch)
        m.step({"train": batch(epoch, 8, 8), "valid": batch(500 + epoch, 8, 8)}, epoch, 0, measure_gc=False)
        m.select(iter([batch(900 + epoch, 8, 8)]), epoch)
        if log is not None:
            log.append((m.projection.count, m.w_opt.param_groups[0]["lr"], m.derive()))


def test_decisions_happen_at_the_stated_epochs_and_stay_decided():
    m = tiny("darts-pt", epochs=12, tune_epochs=2)      # S = 2: decisions at the ends of epochs 2, 4, ..., 12
    log = []
    run_epochs(m, 12, log=log)
    assert [n for n, _, _ in log] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert [lr for _, lr, _ in log] == pytest.approx([0.025, 0.013] + [0.0025] * 10)
    order = m.projection.order
    assert sorted(order) == list(range(NUM_EDGES))
    assert m.projection.decided_at == [2 + 2 * order.index(e) for e in range(NUM_EDGES)]
    final = log[-1][2]
    assert final.op_indices() == tuple(m.projection.decided)
    for epoch, (n, _, cell) in enumerate(log):    # a decided edge shows its op from then on
        for e in order[:n]:
            assert cell.ops[e] == final.ops[e], epoch

    zero = tiny("darts-pt", epochs=3, tune_epochs=0)    # no tuning: all six at the end of the last epoch
    log = []
    run_epochs(zero, 3, log=log)
    assert [n for n, _, _ in log] == [0, 0, 6]


def test_tuning_restarts_the_weight_momentum():
    m = tiny("darts-pt", epochs=7, tune_epochs=1)
    run_epochs(m, 2)
    buffers = [s["momentum_buffer"] for s in m.w_opt.state.values()]
    assert buffers and all(b.abs().sum() > 0 for b in buffers)
    m.begin_epoch(2)                                      # the first tuning epoch (S = 2)
    assert all(torch.equal(b, torch.zeros_like(b)) for b in buffers)


def test_epochs_must_leave_a_supernet_epoch():
    with pytest.raises(ConfigError, match="epochs=25 leave no supernet epoch.*--epochs 26"):
        tiny("darts-pt", epochs=25, tune_epochs=5)
    with pytest.raises(ConfigError, match="tune_epochs"):
        tiny("darts-pt", tune_epochs=-2)


@pytest.mark.parametrize("epochs,used", [(125, 5), (26, 5), (25, 4), (10, 1), (6, 1), (5, 0), (2, 0), (1, 0)])
def test_auto_tune_epochs_is_the_authors_interval_where_it_fits(epochs, used):
    m = tiny("darts-pt", epochs=epochs)                   # tune_epochs left at auto
    assert m.options.tune_epochs == -1 and m.options.tune_epochs_used == used
    assert m.supernet_epochs == epochs - 5 * used >= 1


def test_edge_order_is_a_permutation_drawn_from_the_seed():
    orders = {s: edge_order("random", s) for s in range(6)}
    assert all(sorted(o) == list(range(NUM_EDGES)) for o in orders.values())
    assert len(set(orders.values())) > 1 and edge_order("random", 3) == orders[3]
    assert edge_order("fixed", 3) == tuple(range(NUM_EDGES))


def state_of(m):
    return {**{k: v.clone() for k, v in m.state_dict().items()}, **m.projection.to_plain()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


@pytest.fixture(scope="module")
def straight():
    m = tiny("darts-pt", epochs=7, tune_epochs=1)
    run_epochs(m, 7)
    return m


@pytest.mark.parametrize("stop", [2, 5])   # at the momentum restart (S = 2), and mid-projection
def test_deterministic_and_resumes_mid_projection_from_a_weights_only_checkpoint(straight, stop):
    first = tiny("darts-pt", epochs=7, tune_epochs=1)
    run_epochs(first, stop)
    buf = io.BytesIO()
    torch.save(first.checkpoint_state(), buf)
    buf.seek(0)
    resumed = tiny("darts-pt", epochs=7, tune_epochs=1)
    resumed.load_checkpoint_state(torch.load(buf, weights_only=True))
    assert resumed.projection.decided == first.projection.decided and resumed.projection.count == stop - 1
    run_epochs(resumed, 7, start=stop)
    assert_same(state_of(resumed), state_of(straight))
    assert resumed.derive() == straight.derive() and straight.projection.count == NUM_EDGES


# ---- end to end --------------------------------------------------------------------------------
def test_nbs_run_records_the_projection_epoch_by_epoch(cli, tmp_path):
    refused = cli("run", "--method", "darts-pt", "--out", str(tmp_path / "a"), "--device", "cpu", *METHOD_RUN_ARGS,
                  "--set", "tune_epochs=1")
    assert refused.returncode == 2 and "epochs=2 leave no supernet epoch" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    done = cli("run", "--method", "darts-pt", "--out", str(tmp_path / "b"), "--device", "cpu", *METHOD_RUN_ARGS,
               "--epochs", "6")                 # auto tune_epochs: 1 supernet epoch + 5 × 1
    assert done.returncode == 0, done.stdout + done.stderr
    df = pd.read_parquet(tmp_path / "b" / "darts-pt-cifar10-seed0" / "records").sort_values("epoch")
    assert df.epoch.tolist() == [1, 2, 3, 4, 5, 6] and df.proj_decided.tolist() == [1, 2, 3, 4, 5, 6]
    assert set(df.tune_epochs) == {1} and set(df.supernet_epochs) == {1}
    last = df.iloc[-1]
    final = Genotype.from_str(last.genotype)
    assert list(final.op_indices()) == list(last.proj_decided_ops)
    assert sorted(last.proj_decided_at) == [1, 2, 3, 4, 5, 6]
    for _, row in df.iterrows():                 # each record: decided edges as decided, argmax α elsewhere
        cell, alpha_cell = Genotype.from_str(row.genotype), Genotype.from_str(row.alpha_genotype)
        for e in range(NUM_EDGES):
            decided = row.proj_decided_ops[e] != UNDECIDED
            assert cell.ops[e] == (final.ops[e] if decided else alpha_cell.ops[e])
    removed = np.asarray(last.proj_removed_acc).reshape(NUM_EDGES, NUM_OPS)
    assert np.isfinite(removed).all() and df.bench_cifar10_test_200.notna().all()
    # removing 'none' (never computed) leaves the score as it is
    np.testing.assert_array_equal(removed[:, 0], np.asarray(last.proj_base_acc))


# ---- the fix-α variant (the authors' blank / blank-proj methods) -------------------------------------
def test_fix_alpha_never_steps_alpha_nor_touches_the_valid_batch_and_still_projects():
    fixed = tiny("darts-pt-fix-alpha", epochs=7, tune_epochs=1)
    trained = tiny("darts-pt", epochs=7, tune_epochs=1)
    start = fixed.alpha.detach().clone()
    assert torch.equal(start, trained.alpha.detach())                  # the same initialisation, same seed
    bn = {k: v.clone() for k, v in fixed.state_dict().items() if "running" in k}
    weights = [p.detach().clone() for p in fixed.w_params]
    # one step whose valid batch is poison: the fixed variant must not even run it through the network
    nan_valid = (torch.full((8, 3, 8, 8), float("nan")), torch.zeros(8, dtype=torch.long))
    stats = fixed.step({"train": batch(0, 8, 8), "valid": nan_valid}, 0, 0, measure_gc=True)
    assert torch.equal(fixed.alpha.detach(), start)
    assert all(torch.isfinite(p).all() for p in fixed.w_params)
    assert any(not torch.equal(p, q) for p, q in zip(fixed.w_params, weights))    # the weights did train
    assert torch.isnan(stats.op_grad).all() and stats.gc_inner is None
    # BN statistics moved by the train batch alone: as a weight step with no α step before it
    moved = {k: v for k, v in fixed.state_dict().items() if "running" in k}
    assert any(not torch.equal(moved[k], bn[k]) for k in bn)
    run_epochs(fixed, 7, start=1)
    run_epochs(trained, 7)
    assert torch.equal(fixed.alpha.detach(), start) and not torch.equal(trained.alpha.detach(), start)
    assert fixed.projection.count == NUM_EDGES                        # six decisions, all on the fixed-α supernet
    assert list(fixed.derive().op_indices()) == list(fixed.projection.decided)
