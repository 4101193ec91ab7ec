"""RSPS and SETN on their defining math: uniform single-path cells (χ²), a single-path step computes and
trains only the sampled ops, both equal xautodl's RANDOM-NAS.py / SETN.py steps on xautodl's own networks,
the end-of-epoch pick is the first best candidate on its valid batch, SETN's candidates are the most
probable cells under softmax(α) (or samples from it), and the pick is what derive() returns, what a
checkpoint carries and what the records look up; one `nbs run` each through the CLI."""

from __future__ import annotations

import copy
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasbench_stability.bench.table import Benchmark
from nasbench_stability.engine.config import resolve_config
from nasbench_stability.engine.run import build_method
from nasbench_stability.methods.sampling.setn import cell_log_probs, sampled_cells, top_cells
from nasbench_stability.methods.sampling.single_path import path_cell
from nasbench_stability.space.live_ops import reaching_output
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import EDGES, NUM_OPS, OP_INDEX, OPS

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, records, tiny
import test_method_edas as edas_tests

METHODS = ("rsps", "setn")
one_torch_thread = edas_tests.one_torch_thread             # autouse: one intra-op thread for tiny tensors
record_supernet_calls = edas_tests.record_supernet_calls   # logs weights and active mask of every forward
CONV = (OP_INDEX["nor_conv_1x1"], OP_INDEX["nor_conv_3x3"])
# χ² critical values at p = 0.001: a uniform (or correct) sampler fails one of these once in a thousand
# seeds; the draws below are fixed, so the test is deterministic
CHI2_001 = {4: 18.47, 24: 51.18}


def chi2(counts: np.ndarray, expected: np.ndarray) -> float:
    return float(((counts - expected) ** 2 / expected).sum())


def conv_weights(m) -> dict[tuple[int, int, int], torch.Tensor]:
    """(cell, edge, conv op) → that conv's weight tensor (the parameter itself)."""
    return {(k, e, op): (cell.conv1x1 if op == CONV[0] else cell.conv3x3)[e]
            for k, cell in enumerate(m.supernet.search_cells) for e in range(len(EDGES)) for op in CONV}


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------
def test_the_trained_cells_are_uniform_and_independent_over_edges():
    cells = np.array([path_cell(0, epoch, step).op_indices() for epoch in range(10) for step in range(300)])
    n = len(cells)
    for e in range(len(EDGES)):
        counts = np.bincount(cells[:, e], minlength=NUM_OPS)
        assert chi2(counts, np.full(NUM_OPS, n / NUM_OPS)) < CHI2_001[4], (e, counts)
    for a, b in ((0, 1), (2, 5)):   # joint law of two edges: 25 equally likely pairs
        counts = np.bincount(cells[:, a] * NUM_OPS + cells[:, b], minlength=NUM_OPS ** 2)
        assert chi2(counts, np.full(NUM_OPS ** 2, n / NUM_OPS ** 2)) < CHI2_001[24], (a, b)
    assert path_cell(0, 3, 7) == path_cell(0, 3, 7)                               # a pure function of the step
    assert [path_cell(1, 0, s) for s in range(20)] != [path_cell(0, 0, s) for s in range(20)]   # and of the seed


def test_live_ops_get_a_gradient_and_the_rest_of_the_path_a_zero_one():
    """Node 2's only way out is 'none': the convs into it run but get no gradient from autograd;
    reaching_output (SETN's gradient-correlation groups) says which do. xautodl's 'none' (x·0) keeps them in
    its graph with a zero gradient: complete_grads gives them that, and nothing to the ops outside the path."""
    cell = Genotype.from_str("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    reaching = reaching_output(cell.one_hot() > 0)
    assert set(zip(*np.nonzero(reaching))) == {(0, OP_INDEX["nor_conv_3x3"]), (3, OP_INDEX["skip_connect"]),
                                               (4, OP_INDEX["nor_conv_1x1"])}
    m = tiny("rsps", unsampled_weights="skipped")
    x, y = batch(1, size=8)
    F.cross_entropy(m.path_logits(x, cell), y).backward()
    for (_, e, op), w in conv_weights(m).items():
        assert (w.grad is not None) == reaching[e, op], (e, OPS[op])
    m.complete_grads(cell)
    for (_, e, op), w in conv_weights(m).items():
        on_path, live = cell.op_indices()[e] == op, reaching[e, op]
        assert (w.grad is not None) == on_path and (not on_path or live or not w.grad.any()), (e, OPS[op])
    assert all(p.grad is not None for p in m.supernet.stem.parameters())


# ---------------------------------------------------------------------------------------------
# one single-path step
# ---------------------------------------------------------------------------------------------
CELL = Genotype.from_str("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")


@pytest.mark.parametrize("method", METHODS)
def test_a_step_computes_and_trains_only_the_sampled_ops(method, monkeypatch):
    # skipped: off-path convs keep grad None (the default, decayed, gives them zeros: tested below)
    m = tiny(method, unsampled_weights="skipped", **({"gc_every": 1} if method == "setn" else {}))
    monkeypatch.setattr(m, "draw_path", lambda epoch, step: CELL)
    before = {k: w.detach().clone() for k, w in conv_weights(m).items()}
    alpha = m.alpha.detach().clone() if method == "setn" else None
    calls = record_supernet_calls(m)
    data = {"train": batch(1, size=8), "valid": batch(2, size=8)}
    stats = m.step({k: data[k] for k in m.streams}, epoch=0, step=0, measure_gc=method == "setn")
    path = calls[-1] if method == "rsps" else next(c for c in calls if not c["arch"])
    assert torch.equal(path["weights"], torch.from_numpy(CELL.one_hot()))        # exactly 1 on the cell's ops
    assert np.array_equal(np.asarray(path["active"]), CELL.one_hot() > 0)        # and only those computed
    for (k, e, op), w in conv_weights(m).items():
        if CELL.op_indices()[e] == op:
            assert w.grad is not None and not torch.equal(w, before[k, e, op]), (k, e, op)
        else:   # no gradient, so SGD (its weight decay and momentum included) leaves it alone
            assert w.grad is None and torch.equal(w, before[k, e, op]), (k, e, op)
    if method == "setn":   # the α step: the joint softmax-mixed cell, all ops, α moved
        joint = [c for c in calls if c["arch"]]
        assert joint and all(c["active"] is None for c in joint)
        torch.testing.assert_close(joint[-1]["weights"], torch.softmax(alpha, -1))
        assert not torch.equal(m.alpha, alpha)
        measured = {(e, op) for e in range(6) for op in range(5) if torch.isfinite(stats.gc_inner[e, op])}
        reaching = reaching_output(CELL.one_hot() > 0)
        assert measured == {(e, op) for e in range(6) for op in CONV if reaching[e, op]} and len(measured) == 3


@pytest.mark.parametrize("method", METHODS)
def test_decayed_gives_unsampled_weights_a_zero_gradient_for_sgd(method, monkeypatch):
    """unsampled_weights=decayed (PyTorch < 2.0's zero_grad): a first step moves an unsampled conv by
    exactly SGD's update for a zero gradient, −lr·wd·w·(1 + momentum) with Nesterov."""
    m = tiny(method, unsampled_weights="decayed")
    monkeypatch.setattr(m, "draw_path", lambda epoch, step: CELL)
    before = {k: w.detach().clone() for k, w in conv_weights(m).items()}
    data = {"train": batch(1, size=8), "valid": batch(2, size=8)}
    m.step({k: data[k] for k in m.streams}, epoch=0, step=0, measure_gc=False)
    lr, opts = m.w_opt.param_groups[0]["lr"], m.options
    for (k, e, op), w in conv_weights(m).items():
        if CELL.op_indices()[e] != op:
            p = before[k, e, op]
            expected = p - lr * opts.w_weight_decay * p * (1 + opts.w_momentum)
            torch.testing.assert_close(w.detach(), expected, rtol=1e-6, atol=1e-9)
            assert not torch.equal(w, p)


# ---------------------------------------------------------------------------------------------
# parity with xautodl (RANDOM-NAS.py, SETN.py) on its own networks, float64
# ---------------------------------------------------------------------------------------------
def xautodl_pair(method: str, track: bool, clip: float | None = None):
    pytest.importorskip("xautodl")
    from test_parity_xautodl import C, EPOCHS, N, load_xautodl_into, xautodl_scheduler_module
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_random import TinyNetworkRANDOM
    from xautodl.models.cell_searchs.search_model_setn import TinyNetworkSETN

    torch.manual_seed(0)
    # PyTorch >= 2 zero_grad() below: ops outside the path keep grad None (unsampled_weights=skipped)
    overrides = {"unsampled_weights": "skipped", **({} if clip is None else {"grad_clip": clip})}
    m = tiny(method, channels=C, cells_per_stage=N, epochs=EPOCHS, track_running_stats=track, **overrides).double()
    if method == "rsps":
        net = TinyNetworkRANDOM(C, N, 4, 10, NAS_BENCH_201, False, track).double()
        net.arch_parameters = torch.zeros(6, 5, dtype=torch.float64)   # RSPS has none: a stand-in for the copy
        load_xautodl_into(SimpleNamespace(supernet=m.supernet, alpha=net.arch_parameters.clone()), net)
        w_opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
        a_opt = None
    else:
        net = TinyNetworkSETN(C, N, 4, 10, NAS_BENCH_201, False, track).double()
        load_xautodl_into(m, net)
        w_opt = torch.optim.SGD(net.get_weights(), 0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
        a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    # xautodl's search-cell convs carry a bias (bias=not affine), nbs's none: BN removes it in training mode
    # (no effect on any step), but BN's running mean lags it for the first updates of each op, so eval-mode
    # outputs differ until then (by 0.9^n of the bias after n updates). Zero, it stays zero (its gradient is 0)
    with torch.no_grad():
        for conv in (mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d) and mod.bias is not None):
            conv.bias.zero_()
    scheduler = xautodl_scheduler_module().CosineAnnealingLR(w_opt, 0, EPOCHS, EPOCHS, 0.001)
    return m, net, w_opt, a_opt, scheduler, EPOCHS


def structure(cell: Genotype):
    from xautodl.models.cell_searchs.genotypes import Structure
    return Structure.str2structure(cell.to_str())


def xautodl_step(method, net, w_opt, a_opt, cell, train, arch, clip: float) -> None:
    """One iteration of RANDOM-NAS.py's / SETN.py's search_func (after its scheduler.update)."""
    if method == "rsps":
        net.arch_cache = structure(cell)           # random_genotype(True)
        w_opt.zero_grad()
        F.cross_entropy(net(train[0])[1], train[1]).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        w_opt.step()
        return
    net.set_cal_mode("dynamic", structure(cell))   # dync_genotype(True)
    net.zero_grad()
    F.cross_entropy(net(train[0])[1], train[1]).backward()
    w_opt.step()                                   # SETN.py: no clip
    net.set_cal_mode("joint")
    net.zero_grad()
    F.cross_entropy(net(arch[0])[1], arch[1]).backward()
    a_opt.step()


@pytest.mark.parametrize("method,track,clip", [("rsps", True, None), ("rsps", False, 0.05), ("setn", True, None)])
def test_steps_and_picks_equal_xautodls(method, track, clip):
    """Two epochs of three steps on the cells nbs draws; every weight (and α) agrees to 1e-8, the eval-mode
    output of a cell too (BN running statistics), and SETN's whole ranking of the 15,625 cells equals
    return_topK's. Clip 0.05 makes RSPS's clip act on every step."""
    from test_parity_xautodl import assert_same_state, batches
    m, net, w_opt, a_opt, scheduler, epochs = xautodl_pair(method, track, clip)
    state = m if method == "setn" else SimpleNamespace(supernet=m.supernet, alpha=net.arch_parameters)
    m.train(), net.train()
    for epoch in range(epochs):
        scheduler.update(epoch, 0.0)
        m.begin_epoch(epoch)
        for step in range(3):
            scheduler.update(None, step / 3)
            train, arch = batches(epoch * 3 + step)
            xautodl_step(method, net, w_opt, a_opt, path_cell(m.ctx.seed, epoch, step), train, arch,
                         m.options.grad_clip)
            m.step({"train": train, "valid": arch}, epoch=epoch, step=step, measure_gc=False)
            assert m.learning_rates()["lr_w"] == pytest.approx(w_opt.param_groups[0]["lr"], rel=1e-15)
            assert_same_state(state, net, f"after epoch {epoch} step {step}")
    cell = path_cell(m.ctx.seed, 0, 0)
    m.eval(), net.eval()
    x = batches(99)[0][0]
    if method == "rsps":
        net.arch_cache = structure(cell)
    else:
        net.set_cal_mode("dynamic", structure(cell))
        ranking = [a.tostr() for a in net.return_topK(-1)]
        with torch.no_grad():   # the same α bit for bit (the steps agree to 1e-8), so that near-ties order alike
            m.alpha.copy_(net.arch_parameters)
        assert [c.to_str() for c in top_cells(m.alpha, len(ranking))] == ranking
    with torch.no_grad():
        torch.testing.assert_close(m.path_logits(x, cell), net(x)[1], rtol=0, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# the end-of-epoch pick
# ---------------------------------------------------------------------------------------------
def coded_batches(n: int) -> list:
    """Batches whose label is written in the first pixel, so a stub network can be right or wrong."""
    out = []
    for k in range(n):
        x, y = batch(10 + k, n=4, size=8)
        x[:, 0, 0, 0] = y.float()
        out.append((x, y))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_select_keeps_the_first_candidate_that_is_right_on_its_batch(method):
    m = tiny(method, select_num=6)
    cands = m.candidates(0)
    assert len(cands) == 6 and len(set(cands)) == 6
    right, half = {cands[2], cands[4]}, cands[1]
    seen = []

    def stub(x, cell):
        assert not m.training and not torch.is_grad_enabled()   # eval mode, no gradients, as the reference
        seen.append((cell, float(x[0, 0, 0, 0])))
        y = x[:, 0, 0, 0].long()
        wrong = (y + 1) % 10
        guess = y if cell in right else torch.cat([y[:2], wrong[2:]]) if cell == half else wrong
        return F.one_hot(guess, 10).float()

    m.path_logits = stub
    data = coded_batches(6)
    m.select(iter(data), epoch=0)
    assert [c for c, _ in seen] == cands                                  # candidate k on batch k
    assert [v for _, v in seen] == [float(y[0]) for _, y in data]
    rec = m.extra_records()
    assert rec["candidate_genotypes"] == [c.to_str() for c in cands]
    assert rec["candidate_valid_acc"].tolist() == [0.0, 50.0, 100.0, 0.0, 100.0, 0.0]
    assert rec["picked_index"] == 2 and m.derive() == cands[2]           # the first of the two best
    restored = tiny(method, select_num=6)                                 # a checkpoint carries the pick
    assert restored.derive() != cands[2]
    restored.load_checkpoint_state(copy.deepcopy(m.checkpoint_state()))
    assert restored.derive() == cands[2]


def test_before_any_pick_derive_is_the_argmax_of_the_op_weights():
    rsps, setn = tiny("rsps"), tiny("setn")
    assert rsps.derive() == Genotype(("none",) * 6)   # uniform weights: the first op wins every edge
    with torch.no_grad():
        setn.alpha.copy_(torch.randn(6, 5))
    assert setn.derive() == Genotype.from_weights(setn.alpha.detach().numpy())


def test_setn_top_k_are_the_most_probable_cells():
    g = torch.Generator().manual_seed(0)
    alpha = torch.randn(6, 5, generator=g)
    lp = torch.log_softmax(alpha.double(), -1).numpy()
    scores = {ops: sum(lp[e, o] for e, o in enumerate(ops)) for ops in itertools.product(range(5), repeat=6)}
    best = sorted(scores, key=lambda ops: -scores[ops])[:20]
    assert [c.op_indices() for c in top_cells(alpha, 20)] == best
    flat = cell_log_probs(alpha).double().numpy()
    assert len(flat) == 5 ** 6
    np.testing.assert_allclose(sorted(flat)[::-1][:20], [scores[b] for b in best], rtol=0, atol=1e-5)
    m = tiny("setn", select_num=7)
    with torch.no_grad():
        m.alpha.copy_(alpha)
    assert m.candidates(0) == top_cells(alpha, 7)
    np.testing.assert_allclose(m._candidate_log_probs, [scores[b] for b in best[:7]], rtol=0, atol=1e-5)


def test_setn_sampled_candidates_follow_softmax_alpha():
    alpha = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]] * 3 + [[0.0, 0.0, 3.0, 0.0, 0.0]] * 3)
    cells = np.array([c.op_indices() for c in sampled_cells(alpha, 4000, torch.Generator().manual_seed(0))])
    probs = torch.softmax(alpha.double(), -1).numpy()
    for e in range(6):
        assert chi2(np.bincount(cells[:, e], minlength=5), 4000 * probs[e]) < CHI2_001[4], e
    m = tiny("setn", select_num=5, candidates="sampled")
    assert m.candidates(1) == m.candidates(1) != m.candidates(2)   # seeded per epoch


# ---------------------------------------------------------------------------------------------
# evaluation and determinism
# ---------------------------------------------------------------------------------------------
def test_rsps_evaluates_a_new_random_cell_per_batch_the_same_on_resume():
    m = tiny("rsps")
    cells = []
    m.path_logits = lambda x, cell: cells.append(cell)

    def eval_cells(epoch: int) -> list:
        cells.clear()
        m.begin_epoch(epoch)
        for _ in range(5):
            m.logits(None)
        return list(cells)

    first = eval_cells(3)
    assert len(set(first)) == 5 and eval_cells(3) == first and eval_cells(4) != first


@pytest.mark.parametrize("method", METHODS)
def test_a_seed_determines_the_search(method):
    def search(seed: int):
        cfg = resolve_config(method, preset="smoke", device="cpu", seed=seed,
                             overrides={"channels": "4", "cells_per_stage": "1", "select_num": "3"})
        m = build_method(cfg, num_classes=10, steps_per_epoch=4)
        for step in range(2):
            data = {"train": batch(step, size=8), "valid": batch(10 + step, size=8)}
            m.step({k: data[k] for k in m.streams}, epoch=0, step=step, measure_gc=False)
        m.select(iter(coded_batches(3)), epoch=0)
        return m

    a, b, c = search(1), search(1), search(2)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert a.extra_records()["candidate_valid_acc"].tolist() == b.extra_records()["candidate_valid_acc"].tolist()
    assert a.derive() == b.derive()
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


# ---------------------------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_nbs_run_records_the_pick_every_epoch(cli, bench_path, tmp_path, method):
    out = tmp_path / "runs"
    result = cli("run", "--method", method, "--out", str(out), "--set", "select_num=3", *METHOD_RUN_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    df = records(out / f"{method}-cifar10-seed0")
    bench = Benchmark.load(bench_path)
    assert df.epoch.tolist() == [1, 2]
    for _, r in df.iterrows():
        assert len(r.candidate_genotypes) == 3 and len(r.candidate_valid_acc) == 3
        assert r.picked_index == int(np.argmax(r.candidate_valid_acc))
        assert r.genotype == r.candidate_genotypes[r.picked_index]       # the pick is the derived cell ...
        row = bench.lookup_one(Genotype.from_str(r.genotype))            # ... and what the benchmark scores
        assert r.bench_cifar10_test_200 == pytest.approx(row["cifar10_test_200"])
        assert r.paths_trained == 2 and 1 <= r.paths_distinct <= 2       # 16 images / batch 8
        np.testing.assert_allclose(np.asarray(r.path_op_freq).reshape(6, 5).sum(1), 1.0)
        weights = np.asarray(r.op_weights).reshape(6, 5)
        np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
        if method == "rsps":
            assert (weights == 0.2).all() and np.isnan(r.op_grad).all()
        else:   # the top-3 cells, most probable first
            assert np.all(np.diff(r.candidate_log_prob) <= 0) and np.isfinite(r.op_grad).all()
    if method == "rsps":   # no α: the Hessian of the α loss is refused before any work
        bad = cli("run", "--method", "rsps", "--out", str(tmp_path / "bad"), "--hessian-every", "1",
                  *METHOD_RUN_ARGS)
        assert bad.returncode == 2 and "no architecture parameters" in bad.stdout + bad.stderr
        assert not (tmp_path / "bad" / "rsps-cifar10-seed0" / "records").exists()
