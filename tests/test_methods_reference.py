"""The defining math of a bi-level step, pinned so that a plausible bug fails a test.

* which weights the α gradient is taken at (after the weight step for ``w-alpha``, before it for
  ``alpha-w``), on which batch;
* bi-level gradient correlation, computed by hand from the two batches per (edge, op);
* DARTS-V2's hypergradient after several steps (momentum buffers non-zero, weight decay on);
* what the gradient-norm clip counts (xautodl clips ``network.parameters()``, α's .grad included);
* every method's optimizers read off the torch objects against ``nbs methods --show``, and the
  references' values; the learning rate at given epochs against the formula;
* BN running statistics change eval-mode outputs only, never the search.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasbench_stability.methods.describe import describe_method
from nasbench_stability.methods.registry import get_method, list_methods

from method_helpers import ALPHA_FREE, batch, tiny

BATCHES = {"train": batch(1), "train2": batch(2), "valid": batch(3)}


def grad_of(method, b, wrt: list[torch.Tensor]) -> list[torch.Tensor]:
    loss = method.arch_loss(*b)
    return list(torch.autograd.grad(loss, wrt))


def alpha_grad(method, b) -> torch.Tensor:
    return grad_of(method, b, [method.alpha])[0]


def with_weights_of(probe, source):
    """``probe`` (α untouched) with the network weights of ``source``."""
    probe.supernet.load_state_dict(source.supernet.state_dict())
    return probe


# ---------------------------------------------------------------------------------------------
# step order: where the α gradient is taken
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,overrides,arch_stream,after_w", [
    ("darts-v1", {}, "valid", True),                                   # xautodl DARTS-V1: w, then α
    ("darts-v1", {"step_order": "alpha-w"}, "valid", False),
    ("darts-v2", {"order": 1}, "valid", False),                         # xautodl DARTS-V2: α, then w
    ("single-darts", {"mode": "single-level-two-batches"}, "train2", True),
    ("single-darts", {}, "train", False),                               # one batch, one backward
    ("mergenas-v1", {}, "valid", True),
    ("dnas", {"zero_one_weight": 0}, "valid", True),
])
def test_alpha_gradient_is_taken_on_its_batch_at_the_weights_of_its_step_order(method, overrides, arch_stream,
                                                                                after_w):
    m = tiny(method, w_lr=0.5, **overrides)   # a big weight step, so that before/after differ clearly
    before = copy.deepcopy(m)
    stats = m.step({k: BATCHES[k] for k in m.streams}, epoch=0, step=0, measure_gc=False)
    at_after = alpha_grad(with_weights_of(copy.deepcopy(before), m), BATCHES[arch_stream])
    at_before = alpha_grad(copy.deepcopy(before), BATCHES[arch_stream])
    expected, other = (at_after, at_before) if after_w else (at_before, at_after)
    assert (expected - other).abs().max() > 1e-3 * expected.abs().max()   # the order is observable here
    torch.testing.assert_close(m.alpha_grad_left, expected, rtol=1e-4, atol=1e-7)   # what Adam saw
    if method != "dnas":   # DNAS records the α part of its flat (α, β, γ) gradient
        torch.testing.assert_close(stats.op_grad, expected, rtol=1e-4, atol=1e-7)


def test_single_level_alpha_gradient_sees_no_other_batch():
    m = tiny("single-darts")
    expected = alpha_grad(copy.deepcopy(m), BATCHES["train"])
    stats = m.step({"train": BATCHES["train"]}, epoch=0, step=0, measure_gc=False)
    torch.testing.assert_close(stats.op_grad, expected, rtol=1e-4, atol=1e-7)
    assert m.streams == ("train",)


# ---------------------------------------------------------------------------------------------
# gradient correlation by hand
# ---------------------------------------------------------------------------------------------
def conv_groups(method) -> dict[tuple[int, int], list[torch.nn.Parameter]]:
    """(edge, conv op) → that op's kernel in every searchable cell, found through the cells."""
    return {(e, op): [cell.conv_weights(e, op)[0] for cell in method.supernet.search_cells]
            for e in range(6) for op in (2, 3)}


@pytest.mark.parametrize("step_order", ["w-alpha", "alpha-w"])
def test_bilevel_gradient_correlation_equals_the_inner_products_of_the_two_batches(step_order):
    """gc = ⟨∇w L(B_w), ∇w L(B_α)⟩ summed over cells, at the weights the weight step sees; B_w's
    gradient with the α the weight step sees (the updated one for ``alpha-w``)."""
    m = tiny("darts-v1", cells_per_stage=2, step_order=step_order)
    before = copy.deepcopy(m)
    stats = m.step({"train": BATCHES["train"], "valid": BATCHES["valid"]}, epoch=0, step=0, measure_gc=True)

    arch_probe = copy.deepcopy(before)
    w_probe = copy.deepcopy(before)
    if step_order == "alpha-w":
        w_probe.alpha.data.copy_(m.alpha.data)
    groups_a, groups_w = conv_groups(arch_probe), conv_groups(w_probe)
    flat_a = [p for ps in groups_a.values() for p in ps]
    flat_w = [p for ps in groups_w.values() for p in ps]
    g_a = dict(zip(flat_a, grad_of(arch_probe, BATCHES["valid"], flat_a)))
    loss_w = F.cross_entropy(w_probe.supernet(BATCHES["train"][0], w_probe.activate(w_probe.alpha)), BATCHES["train"][1])
    g_w = dict(zip(flat_w, torch.autograd.grad(loss_w, flat_w)))
    for key in groups_a:
        a = torch.cat([g_w[p].flatten() for p in groups_w[key]]).double()
        b = torch.cat([g_a[p].flatten() for p in groups_a[key]]).double()
        e, op = key
        assert stats.gc_inner[e, op].item() == pytest.approx((a @ b).item(), rel=1e-3, abs=1e-9)
        assert stats.gc_cos[e, op].item() == pytest.approx((a @ b / (a.norm() * b.norm())).item(), abs=1e-4)
    assert torch.isnan(stats.gc_inner[:, [0, 1, 4]]).all()   # parameter-free ops have no w_o


# ---------------------------------------------------------------------------------------------
# DARTS-V2 after several steps
# ---------------------------------------------------------------------------------------------
def exact_unrolled_gradient(m, train, valid) -> torch.Tensor:
    """∇α L_valid(w', α) by autograd through w' = w − ξ(μ·buf + ∇w L_train(w, α) + wd·w)."""
    opts = m.options
    xi = m.w_opt.param_groups[0]["lr"]
    names = [n for n, _ in m.supernet.named_parameters()]
    params = [p for _, p in m.supernet.named_parameters()]
    loss_t = F.cross_entropy(m.supernet(train[0], m.activate(m.alpha)), train[1])
    grads = torch.autograd.grad(loss_t, params, create_graph=True)
    virtual = {n: p - xi * (opts.w_momentum * m.w_opt.state[p]["momentum_buffer"] + g + opts.w_weight_decay * p)
               for n, p, g in zip(names, params, grads)}
    loss_v = F.cross_entropy(functional_call(m.supernet, virtual, (valid[0], m.activate(m.alpha))), valid[1])
    return torch.autograd.grad(loss_v, [m.alpha])[0]


def test_darts_v2_hypergradient_after_three_steps_with_momentum_and_weight_decay():
    """The finite-difference scheme against autograd through the virtual step, in float64, at step 3.

    DARTS' ε numerator 0.01 is too coarse for this 4-channel net with batches of 8 (the α-gradient
    is far from linear in w at that distance), so the scheme is checked with a small numerator.
    """
    m = tiny("darts-v2", w_lr=0.3, unrolled_eps=1e-6).double()
    assert m.options.w_weight_decay > 0 and m.options.w_momentum > 0
    steps = [((x.double(), y), (v.double(), w)) for (x, y), (v, w) in ((batch(10 + i), batch(20 + i)) for i in range(4))]
    for i, (train, valid) in enumerate(steps[:3]):
        m.step({"train": train, "valid": valid}, epoch=0, step=i, measure_gc=False)
    buffers = [m.w_opt.state[p]["momentum_buffer"] for p in m.w_params]
    assert all(b.abs().sum() > 0 for b in buffers)   # the momentum term is really in play

    train, valid = steps[3]
    m._set_lr(0, 3)
    exact = exact_unrolled_gradient(m, train, valid)
    first_order = alpha_grad(copy.deepcopy(m), valid)
    assert (exact - first_order).norm() > 1e-3 * exact.norm()   # the second-order term matters here
    stats = m.step({"train": train, "valid": valid}, epoch=0, step=3, measure_gc=False)
    torch.testing.assert_close(stats.op_grad, exact, rtol=2e-3, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# what the clip counts
# ---------------------------------------------------------------------------------------------
def capture_clip(monkeypatch) -> list[dict]:
    """Record what each clip_grad_norm_ call sees: the parameters and α's .grad at that moment."""
    seen: list[dict] = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        seen.append({"params": params, "grads": [None if p.grad is None else p.grad.detach().clone() for p in params]})
        return original(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    return seen


@pytest.mark.parametrize("method,order", [("darts-v1", "w-alpha"), ("darts-v2", "alpha-w")])
def test_clip_counts_alphas_gradient_as_xautodl_leaves_it(monkeypatch, method, order):
    """xautodl's clip_grad_norm_(network.parameters()) sees α.grad = (the last α step's gradient) +
    ∇α L_train of the weight step: V1 (w first) the previous step's α gradient and ∇α L_train at
    the old α; V2 (α first, unrolled) this step's α gradient and ∇α L_train at the updated α."""
    m = tiny(method)
    assert m.options.clip_includes_alpha and m.options.step_order == order
    seen = capture_clip(monkeypatch)
    first = m.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=False)
    probe = copy.deepcopy(m)
    train = batch(3)
    second = m.step({"train": train, "valid": batch(4)}, epoch=0, step=1, measure_gc=False)
    left = first.op_grad
    if order == "alpha-w":
        probe.alpha.data.copy_(m.alpha.data)
        left = second.op_grad
    call = seen[-1]
    assert call["params"][-1] is m.alpha and len(call["params"]) == len(m.w_params) + 1
    train_grad = alpha_grad(probe, train)
    torch.testing.assert_close(call["grads"][-1], left + train_grad, rtol=1e-4, atol=1e-7)


def test_clip_over_the_weights_alone_when_the_reference_does(monkeypatch):
    seen = capture_clip(monkeypatch)
    for name in ("single-darts", "edas", "factorized-kernel"):
        m = tiny(name)
        assert not m.options.clip_includes_alpha
        seen.clear()
        m.step({k: BATCHES[k] for k in m.streams}, epoch=0, step=0, measure_gc=False)
        assert seen and all(not any(p is m.alpha for p in call["params"]) for call in seen)
    off = tiny("darts-v1", clip_includes_alpha=False)
    seen.clear()
    off.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=False)
    assert len(seen[-1]["params"]) == len(off.w_params)


def test_the_clipped_alpha_gradient_survives_a_checkpoint():
    m = tiny("darts-v1")
    m.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=False)
    assert m.alpha_grad_left.abs().sum() > 0
    restored = tiny("darts-v1")
    restored.load_checkpoint_state(copy.deepcopy(m.checkpoint_state()))
    torch.testing.assert_close(restored.alpha_grad_left, m.alpha_grad_left, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# optimizers and schedule against `nbs methods --show` and the references
# ---------------------------------------------------------------------------------------------
# what the references say (xautodl configs/nas-benchmark/algos/DARTS.config and DARTS-V1.sh for the
# NB201 setting; the papers' own sections otherwise): w lr, momentum, nesterov, w wd, α lr, betas, α wd
REFERENCE = {
    "darts-v1": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
    "darts-v2": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
    "single-darts": (0.005, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
    "mergenas-v1": (0.025, 0.9, True, 2e-2, 3e-4, (0.5, 0.999), 1e-3),
    "edas": (0.025, 0.9, True, 3e-4, 0.025, (0.5, 0.999), 0.0),
    "dnas": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
    "factorized-act": (0.05, 0.9, True, 5e-4, 6e-4, (0.5, 0.999), 1e-3),
    # ruocwang/darts-pt nasbench201/train_search.py defaults, SGD without nesterov (search_model.py)
    "darts-pt": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),
    "darts-pt-fix-alpha": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),   # the same script, --method blank
    "pc-darts": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),   # DrNAS 201-space (test_method_pc_darts.py)
    # w: DARTS-V1's NB201 reference; α: xiaomi-automl/FairDARTS fairdarts/train_search.py:46-48, architect.py:15-16
    "fair-darts": (0.025, 0.9, True, 5e-4, 3e-3, (0.9, 0.999), 1e-3),
    "sdarts-rs": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),    # SmoothDARTS nasbench201/train_search.py
    "drnas": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),        # DrNAS 201-space/train_search.py, architect.py
    # Meituan-AutoML/DARTS- src/search/args.py:30-37, train_search.py:64-67, architect.py:17-18
    "darts-minus": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),
    # Sunshine-Ye/Beta-DARTS nasbench201/train_search.py:34-37, 52-53, 119-123; optimizers/darts/architect.py:18-19
    "beta-darts": (0.025, 0.9, False, 3e-4, 3e-4, (0.5, 0.999), 1e-3),
    # DARTS-V1's NB201 reference; R-DARTS(L2) raises w's decay to 81e-4 (RobustDARTS' grid 3e-4·3^k)
    "rdarts-l2": (0.025, 0.9, True, 8.1e-3, 3e-4, (0.5, 0.999), 1e-3),
    "rdarts-dp": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
    "darts-es": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
    "setn": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),       # SETN.config, SETN.sh, SETN.py
    "rsps": (0.025, 0.9, True, 5e-4, None, None, None),               # RANDOM.config; no α
    "enas": (0.05, 0.9, True, 2.5e-4, 1e-3, (0.0, 0.999), 0.0),       # ENAS.config (controller_lr, _betas)
}


@pytest.mark.parametrize("info", [m for m in list_methods() if not m.table_search], ids=lambda i: i.name)
def test_optimizers_are_what_nbs_methods_show_prints(info):
    m = tiny(info.name)
    opts = info.default_options()
    text = describe_method(info.name)
    m.begin_epoch(m.ctx.epochs - 1)   # after any warm-up (EDAS changes α's weight decay in it)
    if hasattr(m, "_set_lr"):         # CDARTS' rates are constant (no schedule to set)
        m._set_lr(0, 0)
    w = m.w_opt.param_groups[0]
    shown = {"w_lr": w["lr"], "w_momentum": w["momentum"], "w_nesterov": w["nesterov"],
             "w_weight_decay": w["weight_decay"], "grad_clip": opts.grad_clip}
    alpha = info.name not in ALPHA_FREE
    # α's (and β's), ENAS' controller (CDARTS' evaluation network has its own SGD: tests/test_method_cdarts.py)
    for name, opt in [(n, o) for n, o in m.optimizers().items() if n not in ("w", "eval")]:
        a = opt.param_groups[0]
        assert (a["lr"], a["betas"], a["weight_decay"]) == (opts.a_lr, (opts.a_beta1, opts.a_beta2),
                                                            opts.a_weight_decay), name
    if alpha:
        shown.update(a_lr=opts.a_lr, a_beta1=opts.a_beta1, a_beta2=opts.a_beta2, a_weight_decay=opts.a_weight_decay)
    else:   # no α: no α optimizer, and none of its options shown
        assert not m.arch_parameters() and "a_lr = " not in text and "alpha" not in m.optimizers()
    for key, value in shown.items():
        assert value == getattr(opts, key), key
        assert f"{key} = {getattr(opts, key)}" in text, key
    if info.name in REFERENCE:
        lr, mom, nesterov, wd, a_lr, betas, a_wd = REFERENCE[info.name]
        assert (w["lr"], w["momentum"], w["nesterov"], w["weight_decay"]) == (lr, mom, nesterov, wd)
        if alpha:
            a = m.a_opt.param_groups[0]
            assert (a["lr"], a["betas"], a["weight_decay"]) == (a_lr, betas, a_wd)
    assert ("one step:" in text) == alpha and "track_running_stats = " in text
    assert ("step_order = " in text) == hasattr(opts, "mode")   # the order of the w and α steps, where both exist


@pytest.mark.parametrize("method,order", [("darts-v1", "w-alpha"), ("darts-v2", "alpha-w"),
                                          ("mergenas-v1", "w-alpha"), ("mergenas-v2", "alpha-w"),
                                          ("edas-inv", "alpha-w"), ("dnas", "w-alpha"),
                                          ("factorized-act", "w-alpha"), ("pc-darts", "alpha-w"),
                                          ("fair-darts", "w-alpha"), ("sdarts-rs", "alpha-w"), ("sdarts-adv", "alpha-w"),
                                          ("drnas", "alpha-w"), ("setn", "w-alpha")])
def test_each_method_takes_its_references_step_order(method, order):
    opts = tiny(method).options
    assert opts.step_order == order
    text = describe_method(method)
    first = text.split("one step: ")[1].split("\n")[0]
    assert first.startswith("weight step" if order == "w-alpha" else "α step")


def expected_lr(base: float, floor: float, epoch: float, epochs: int) -> float:
    return floor + (base - floor) * (1 + math.cos(math.pi * epoch / epochs)) / 2


@pytest.mark.parametrize("schedule", ["per-epoch", "per-step"])
def test_learning_rate_at_given_epochs_equals_the_cosine_formula(schedule):
    m = tiny("darts-v1", epochs=50, lr_schedule=schedule)
    spe = m.ctx.steps_per_epoch
    for epoch in (0, 1, 17, 25, 49):
        for step in (0, spe - 1):
            m._set_lr(epoch, step)
            at = epoch + (step / spe if schedule == "per-step" else 0)
            assert m.learning_rates()["lr_w"] == pytest.approx(expected_lr(0.025, 0.001, at, 50), rel=1e-12)
    m._set_lr(49, spe - 1)   # per epoch, the last epoch runs above the floor (xautodl: cos(π·49/50))
    assert m.learning_rates()["lr_w"] > 0.001 + 1e-6


def test_per_epoch_is_the_default_and_matches_xautodls_scheduler():
    """xautodl's CosineAnnealingLR, driven as DARTS-V1.py drives it (update(epoch, 0.0) per epoch,
    update(None, step/len) per step), gives the rate nbs sets at every (epoch, step)."""
    path = pytest.importorskip("xautodl").__path__[0] + "/procedures/optimizers.py"
    import importlib.util

    spec = importlib.util.spec_from_file_location("xautodl_optimizers", path)   # the package imports torchvision
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    m = tiny("darts-v1", epochs=6)
    assert m.options.lr_schedule == "per-epoch"
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.025)
    scheduler = module.CosineAnnealingLR(sgd, 0, 6, 6, 0.001)
    spe = m.ctx.steps_per_epoch
    for epoch in range(6):
        scheduler.update(epoch, 0.0)
        for step in range(spe):
            scheduler.update(None, 1.0 * step / spe)
            m._set_lr(epoch, step)
            assert m.learning_rates()["lr_w"] == pytest.approx(sgd.param_groups[0]["lr"], rel=1e-12)


# ---------------------------------------------------------------------------------------------
# BN running statistics
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["darts-v1", "darts-v2", "single-darts"])
def test_bn_mode_never_changes_the_search_only_eval_outputs(method):
    on, off = tiny(method, track_running_stats=True), tiny(method, track_running_stats=False)
    assert on.options.track_running_stats   # the NB201 scripts' documented runs pass BN=1
    for i in range(3):
        b = {"train": batch(30 + i), "train2": batch(40 + i), "valid": batch(50 + i)}
        for m in (on, off):
            m.step({k: b[k] for k in m.streams}, epoch=0, step=i, measure_gc=False)
    torch.testing.assert_close(on.alpha, off.alpha, rtol=0, atol=1e-6)
    for p, q in zip(on.w_params, off.w_params):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    on.eval(), off.eval()
    with torch.no_grad():
        x = batch(60)[0]
        assert (on.logits(x) - off.logits(x)).abs().max() > 1e-3   # running vs batch statistics


# ---------------------------------------------------------------------------------------------
# provenance: every method's defaults against the sources `nbs methods --show` names for them
# ---------------------------------------------------------------------------------------------
# One entry per method: {source: {option: the value that source sets}}, each value read off the file and line
# (or the paper's section) in its comment, so a default that drifts from its source fails here, not only where
# nbs checks itself. A source key is what the option's line in `nbs methods --show` must name in its source
# column: a repository, or "paper NNN" for a seed paper (/work/shared/papers/NNN_*.txt; those lines say
# "paper" and the method's paper: line names the paper). Left out: our choices and readings (checked below
# to be marked as such), nbs-only switches, values whose source is not at hand (quark0/darts, SmoothDARTS, the
# DrNAS / FairDARTS / R-DARTS papers), and the defaults that disagree with their source.
# Repositories as read: D-X-Y/AutoDL-Projects f46486e, Sunshine-Ye/Beta-DARTS f307704, Meituan-AutoML/DARTS-
# adb81a8, xiaomi-automl/FairDARTS 270cfc9, ruocwang/darts-pt 4ec3149, automl/RobustDARTS 3dec3fe,
# xiangning-chen/DrNAS f2caa4d.
XAUTODL = "AutoDL-Projects"        # D-X-Y/AutoDL-Projects (xautodl): NB201's own search scripts
NB201_BARE = "NB201 reference"     # lines checked to say "NB201 reference" (most now also name their xautodl file)
PAPERS = {"paper 000": "MergeNAS", "paper 001": "Single-DARTS", "paper 002": "DNAS", "paper 003": "Factorizable",
          "paper 004": "EDAS"}     # seed paper → a word of its title on the method's paper: line
RESOLVED = {"tune_epochs_used": "tune_epochs", "supernet_epochs": "epochs"}   # resolved property → its option


def _but(settings: dict, *names: str) -> dict:
    """``settings`` without ``names`` (the options a method takes from another source)."""
    assert set(names) <= set(settings), set(names) - set(settings)
    return {k: v for k, v in settings.items() if k not in names}


# xautodl's NB201 DARTS recipe: configs/nas-benchmark/algos/DARTS.config, scripts-search/NAS-Bench-201-algos/
# DARTS-V1.sh, exps/NAS-Bench-201-algos/DARTS-V1.py; the methods built on it take what they do not override
DARTS_NB201 = {
    "epochs": 50,                  # configs/nas-benchmark/algos/DARTS.config:5  "epochs": 50
    "batch_size": 64,              # DARTS.config:12  "batch_size": 64
    "w_lr": 0.025,                 # DARTS.config:3   "LR": 0.025
    "w_lr_min": 0.001,             # DARTS.config:4   "eta_min": 0.001
    "w_momentum": 0.9,             # DARTS.config:9   "momentum": 0.9
    "w_nesterov": True,            # DARTS.config:10  "nesterov": 1
    "w_weight_decay": 5e-4,        # DARTS.config:8   "decay": 0.0005
    "lr_schedule": "per-epoch",    # xautodl/procedures/optimizers.py:88-94  cos(π·last_epoch/T_max), once per epoch
    "step_order": "w-alpha",       # exps/NAS-Bench-201-algos/DARTS-V1.py:52-73  weight step, then the α step
    "grad_clip": 5.0,              # DARTS-V1.py:383  --gradient_clip default=5
    "clip_includes_alpha": True,   # DARTS-V1.py:58  clip_grad_norm_(network.parameters(), gradient_clip)
    "track_running_stats": True,   # docs/NAS-Bench-201.md:227  `DARTS-V1.sh cifar10 1 -1` (BN=1)
    "a_optimizer": "adam",         # DARTS-V1.py:194  torch.optim.Adam(search_model.get_alphas(), ...)
    "a_lr": 3e-4,                  # scripts-search/NAS-Bench-201-algos/DARTS-V1.sh:42  --arch_learning_rate 0.0003
    "a_beta1": 0.5,                # DARTS-V1.py:197  betas=(0.5, 0.999)
    "a_beta2": 0.999,              # DARTS-V1.py:197  betas=(0.5, 0.999)
    "a_weight_decay": 1e-3,        # DARTS-V1.sh:42  --arch_weight_decay 0.001
    "alpha_init_std": 1e-3,        # xautodl/models/cell_searchs/search_model_darts.py:61  1e-3 * torch.randn(...)
}
DARTS_V2_NB201 = {
    "order": 2,                    # exps/NAS-Bench-201-algos/DARTS-V2.py:143-152  backward_step_unrolled
    "step_order": "alpha-w",       # DARTS-V2.py:141-167  the unrolled α step, then the weight step
}
# the same recipe where the lines name no file
DARTS_NB201_UNNAMED = {
    "mode": "bilevel",             # DARTS-V1.py:43  (base_inputs, ..., arch_inputs, arch_targets): w train, α valid
    "activation": "softmax",       # search_model_darts.py:108  alphas = softmax(self.arch_parameters, dim=-1)
    "order": 1,                    # DARTS-V1.py:69-73  arch_loss.backward() at the current weights
    "unrolled_eps": 0.01,          # DARTS-V2.py:32,34  _hessian_vector_product(..., r=1e-2); R = r / ‖vector‖
    "derive_none": True,           # search_model_darts.py:101-102  op_names[weights.argmax()], 'none' included
}
# ruocwang/darts-pt nasbench201/ (its NB201 search: train_search.py, then projection.py)
DARTS_PT = {
    "epochs": 125,                 # train_search.py:43 --epochs 100, + projection.py:78 proj_intv·(6 − 1) = 25
    "supernet_epochs": 100,        # train_search.py:43  --epochs 100 (exp_scripts/darts-proj-201.sh:8 resume_epoch 100)
    "tune_epochs_used": 5,         # exp_scripts/darts-proj-201.sh:31  --proj_intv 5
    "batch_size": 64,              # train_search.py:36  --batch_size 64
    "mode": "bilevel",             # train_search.py:302-305  input from train_queue, input_search from valid_queue
    "activation": "softmax",       # search_model_darts_proj.py:12  theta_map = torch.softmax(x, dim=-1)
    "order": 1,                    # architect_ig.py:20-21  darts / darts-proj: self.method = 'fo'
    "step_order": "alpha-w",       # train_search.py:309-314  architect.step, then model.step
    "w_lr": 0.025,                 # train_search.py:37  --learning_rate 0.025
    "w_lr_min": 0.001,             # train_search.py:38  --learning_rate_min 0.001
    "lr_schedule": "per-epoch",    # train_search.py:202-203, 269  CosineAnnealingLR, scheduler.step() per epoch
    "w_momentum": 0.9,             # train_search.py:39  --momentum 0.9
    "w_nesterov": False,           # search_model.py:55-59  torch.optim.SGD(..., momentum=...), no nesterov
    "w_weight_decay": 3e-4,        # train_search.py:40  --weight_decay 3e-4
    "grad_clip": 5.0,              # train_search.py:52  --grad_clip 5
    "clip_includes_alpha": False,  # search_model.py:168  clip_grad_norm_(self.get_weights(), args.grad_clip)
    "track_running_stats": True,   # search_model_darts_proj.py:9  affine=False, track_running_stats=True
    "a_optimizer": "adam",         # architect_ig.py:9  torch.optim.Adam(self.model.arch_parameters(), ...)
    "a_lr": 3e-4,                  # train_search.py:54  --arch_learning_rate 3e-4
    "a_beta1": 0.5,                # architect_ig.py:10  betas=(0.5, 0.999)
    "a_beta2": 0.999,              # architect_ig.py:10  betas=(0.5, 0.999)
    "a_weight_decay": 1e-3,        # train_search.py:55  --arch_weight_decay 1e-3
    "alpha_init_std": 1e-3,        # search_model.py:49  1e-3*torch.randn(num_edge, len(search_space))
    "derive_none": True,           # cell_operations.py:22  NAS_BENCH_201 = ['none', 'skip_connect', ...]
    "proj_batches": 0,             # projection.py:45  infer(valid_queue, model, ...): the whole valid queue
    "edge_order": "random",        # exp_scripts/darts-proj-201.sh:30  --edge_decision random
    "proj_crit": "acc",            # darts-proj-201.sh:30  --proj_crit acc
    "proj_bn": "train",            # projection.py:45 infer(eval=False); train_search.py:337 'disable running stats'
    "tune_lr_scale": 0.1,          # projection.py:79  model.reset_optimizer(args.learning_rate / 10, ...)
    "train_alpha": True,           # architect_ig.py:20-21, 34-35  darts / darts-proj: the first-order α step
}
# xiangning-chen/DrNAS 201-space/train_search.py: the NB201 script DrNAS and SDARTS share (SDARTS' own
# SmoothDARTS nasbench201/train_search.py, which nbs names alongside it, is not at hand)
CHEN_NB201 = {
    "epochs": 100,                 # 201-space/train_search.py:41  --epochs 100
    "step_order": "alpha-w",       # train_search.py:265-274  architect.step, then the weight step
    "w_nesterov": False,           # train_search.py:153-157  torch.optim.SGD(..., momentum=...), no nesterov
    "w_weight_decay": 3e-4,        # train_search.py:38  --weight_decay 3e-4
    "clip_includes_alpha": True,   # train_search.py:273  clip model.parameters(); α a Parameter (search_model.py:50)
}
# what the DARTS-family methods built on xautodl's recipe take from it, where their lines name no file
_NOT_NB201 = ("epochs", "step_order", "w_nesterov", "w_weight_decay", "clip_includes_alpha", "track_running_stats")
# xautodl's NB201 settings of the single-path methods: RANDOM.config and SETN.config are the same file
SINGLE_PATH_NB201 = {
    "epochs": 250,                 # configs/nas-benchmark/algos/RANDOM.config:5, SETN.config:5  "epochs": 250
    "batch_size": 64,              # RANDOM.config:12, SETN.config:12  "batch_size": 64
    "w_lr": 0.025,                 # RANDOM.config:3, SETN.config:3  "LR": 0.025
    "w_lr_min": 0.001,             # RANDOM.config:4, SETN.config:4  "eta_min": 0.001
    "w_momentum": 0.9,             # RANDOM.config:9, SETN.config:9  "momentum": 0.9
    "w_nesterov": True,            # RANDOM.config:10, SETN.config:10  "nesterov": 1
    "w_weight_decay": 5e-4,        # RANDOM.config:8, SETN.config:8  "decay": 0.0005
    "select_batch_size": 512,      # RANDOM.config:13, SETN.config:13  "test_batch_size": 512 (the valid_loader's batch)
    "select_num": 100,             # scripts-search/NAS-Bench-201-algos/RANDOM-NAS.sh:43, SETN.sh:44  --select_num 100
    "lr_schedule": "per-epoch",    # xautodl/procedures/optimizers.py:88-94
    "track_running_stats": True,   # docs/NAS-Bench-201.md:230, 232  `SETN.sh cifar10 1 -1`, `RANDOM-NAS.sh ... 1 -1`
    # RANDOM-NAS.py:45 w_optimizer.zero_grad(), SETN.py:57 network.zero_grad(): PyTorch 1.x zeroes .grad, keeps it
    "unsampled_weights": "decayed",
}
# xautodl's NB201 multi-trial scripts (exps/NAS-Bench-201-algos/R_EA.py's train_and_eval is every one's signal)
TABLE_NB201 = {
    "signal_epochs": 12,           # exps/NAS-Bench-201-algos/R_EA.py:51-52  get_more_info(..., iepoch=None, hp="12")
    "time_budget": 12000.0,        # scripts-search/NAS-Bench-201-algos/R-EA.sh:36 (Random.sh:33, REINFORCE.sh:34, ...)
}
# EDAS (paper 004), whose three variants differ in the weight step's network and the warm-up
EDAS_PAPER = {
    "epochs": 25,                  # paper 004 §4.1: "The one-shot network was trained for 25 epochs"
    "batch_size": 64,              # §4.1: "with a batch size of 64"
    "mode": "bilevel",             # §4.1: "using bilevel optimization adopted from DARTS"
    "activation": "softmax",       # Fig. 2: "all the candidate operations are mixed proportionally with as the softmax"
    "w_lr": 0.025,                 # §4.1: "initial learning rate is 0.025"
    "w_lr_min": 0.001,             # §4.1: "minimum learning rate is 0.001"
    "w_momentum": 0.9,             # §4.1: "SGD method with a momentum 0.9"
    "w_weight_decay": 3e-4,        # §4.1: "weight decay rate 3e-4"
    "a_lr": 0.025,                 # §4.1: "Adam optimizer with learning rate 0.025"
    "a_beta1": 0.5,                # §4.1: "betas (0.5, 0.999)"
    "a_beta2": 0.999,              # §4.1: "betas (0.5, 0.999)"
    "a_weight_decay": 0.0,         # §4.1: "and zero weight decay rate"
    "warmup_a_weight_decay": 1e-3,  # §4.1: "in the case of initial warm-up setting, weight decay rate ... set to 1e-3"
    "inversion": "alternate",      # §3.2: "we alternately inverse architecture parameters"; §4: "at every iteration"
    "weight_path": "sampled-edge",  # §3.2: "we choose one edge ... the other edges ... only the maximum-α operation"
}
EDAS_NB201 = {                     # the NB201 reference the EDAS variants take where the paper says nothing
    "w_nesterov": True,            # configs/nas-benchmark/algos/DARTS.config:10  "nesterov": 1
    "lr_schedule": "per-epoch",    # xautodl/procedures/optimizers.py:88-94
    "grad_clip": 5.0,              # exps/NAS-Bench-201-algos/DARTS-V1.py:383  --gradient_clip default=5
    "a_optimizer": "adam",         # DARTS-V1.py:194  torch.optim.Adam (also paper 004 §4.1: "Adam optimizer")
    "alpha_init_std": 1e-3,        # xautodl/models/cell_searchs/search_model_darts.py:61  1e-3 * torch.randn(...)
}
EDAS_UNNAMED = {"unrolled_eps": 0.01, "derive_none": True}   # DARTS-V2.py:32 r=1e-2; search_model_darts.py:101-102
# A-DARTS (paper 003, "Scalable NAS with Factorizable Architectural Parameters"): its three variants share options
FACTORIZED = {
    "paper 003": {
        "epochs": 25,              # paper 003 Results on CIFAR10: "The search epoch number is 25"
        "mode": "bilevel",         # Algorithm 1: ω on L_train, α and β on L_val (the validation set 𝒱)
        "activation": "softmax",   # eq. 1-2 (docs/methods.md: softmax(α_e), softmax(β_e))
        "order": 1,                # Algorithm 1: ∇_α L_val(ω_{t+1}, α_t, β_t), no unrolled term
        "step_order": "w-alpha",   # Algorithm 1 lines 2-4: ω, then α, then β
        "w_lr": 0.05,              # Results on CIFAR10: "an initial learning rate of 0.05"
        "w_lr_min": 0.001,         # "cosine annealed to a minimal value of 0.001"
        "a_lr": 6e-4,              # "two Adam optimizers ... a fixed learning rate of 6×10^-4"
        "a_beta1": 0.5,            # "a momentum of (0.5, 0.999)"
        "a_beta2": 0.999,          # "a momentum of (0.5, 0.999)"
        "a_weight_decay": 1e-3,    # "and a weight decay of 10^-3"
    },
    XAUTODL: {                     # the paper's DARTS-space network settings do not carry over: NB201's
        "batch_size": 64,          # configs/nas-benchmark/algos/DARTS.config:12 (also paper 003: "a batch size of 64")
        "w_momentum": 0.9,         # DARTS.config:9
        "w_nesterov": True,        # DARTS.config:10
        "w_weight_decay": 5e-4,    # DARTS.config:8
        "lr_schedule": "per-epoch",  # xautodl/procedures/optimizers.py:88-94
        "grad_clip": 5.0,          # exps/NAS-Bench-201-algos/DARTS-V1.py:383
        "a_optimizer": "adam",     # DARTS-V1.py:194
    },
    # search_model_darts.py:61 1e-3·randn; DARTS-V2.py:32 r=1e-2; search_model_darts.py:101-102 argmax, none included
    NB201_BARE: {"alpha_init_std": 1e-3, "unrolled_eps": 0.01, "derive_none": True},
}

AUTHORS_SETTINGS = {
    # ---- DARTS on NB201: xautodl's scripts
    "darts-v1": {XAUTODL: DARTS_NB201, NB201_BARE: DARTS_NB201_UNNAMED},
    "darts-v2": {XAUTODL: {**DARTS_NB201, **DARTS_V2_NB201}, NB201_BARE: _but(DARTS_NB201_UNNAMED, "order")},
    # ---- seed papers (no code): the paper's values, and NB201's where the paper follows NB201 or says nothing
    "single-darts": {
        "paper 001": {
            "mode": "single-level",    # paper 001 §4.3: "optimizes the network weights and architecture ... by the same batch"
            "activation": "sigmoid",   # §4.3: "we use sigmoid to replace softmax" (§5.3: Single-DARTS Sigmoid 94.36)
            "w_lr": 0.005,             # §5.1.1: "SGD optimizer with learning rate as 0.005"
            "a_momentum": 0.9,         # §5.3: "For SGD optimizer, we set momentum as 0.9"
        },
        # also paper 001 §5.1.1: "50 epochs with batch size of 64", "momentum as 0.9", Adam "(0.5, 0.999)"
        XAUTODL: _but(DARTS_NB201, "w_lr", "w_weight_decay", "clip_includes_alpha", "a_lr", "a_weight_decay",
                      "alpha_init_std"),
        NB201_BARE: _but(DARTS_NB201_UNNAMED, "mode", "activation"),
    },
    "mergenas-v1": {
        "paper 000": {
            "epochs": 50,              # paper 000 §4.2: "for 50 epochs"
            "order": 1,                # Table 1: "MergeNAS (1st order)"
            "w_momentum": 0.9,         # §4.2: "SGD optimizer with momentum 0.9"
            "w_weight_decay": 2e-2,    # §4.2: "we increase the weight decay up to 2e-2"
            "a_beta1": 0.5,            # §4.2: "Adam optimizer whose β equals to (0.5, 0.999)"
            "a_beta2": 0.999,          # §4.2: "(0.5, 0.999)"
            "pool": "merged",          # §4.2: "we can merge average pooling into parametric operation" (§3.4)
        },
        # §4.2: "We follow the settings in NAS-Bench-201"
        XAUTODL: _but(DARTS_NB201, "epochs", "w_momentum", "w_weight_decay", "a_beta1", "a_beta2"),
        NB201_BARE: _but(DARTS_NB201_UNNAMED, "order"),
    },
    "mergenas-v2": {
        "paper 000": {
            "epochs": 50, "w_momentum": 0.9, "w_weight_decay": 2e-2, "a_beta1": 0.5, "a_beta2": 0.999,  # §4.2, as V1
            "pool": "merged",          # §4.2, as V1
            "order": 2,                # Table 1: "MergeNAS (2nd order)", DARTS' second order
        },
        XAUTODL: {**_but(DARTS_NB201, "epochs", "w_momentum", "w_weight_decay", "a_beta1", "a_beta2"),
                  "step_order": "alpha-w"},   # exps/NAS-Bench-201-algos/DARTS-V2.py:141-167, the V2 order
        NB201_BARE: _but(DARTS_NB201_UNNAMED, "order"),
    },
    "dnas": {
        "paper 002": {
            "activation": "cam",       # paper 002 §3.3 eq. 4-5: σα, σβ, σγ "are sigmoid, softmax, and sigmoid"
            "zero_one_weight": 10.0,   # §3.4: "follow ... zero-one loss"; FairDARTS train_search.py:29  --aux_loss_weight
            "include_none": False,     # Fig. 1: "each connection has 7 candidate operations" (DARTS' 8 without zero)
        },
        XAUTODL: _but(DARTS_NB201, "alpha_init_std"),
        NB201_BARE: {**_but(DARTS_NB201_UNNAMED, "activation"),
                     "alpha_init_std": 1e-3,   # search_model_darts.py:61, for α, β and γ
                     "partial_channels": 1},   # docs/methods.md DNAS: "partial channels (option, default off on NB201)"
    },
    "edas": {"paper 004": {**EDAS_PAPER, "warmup_fraction": 0.0},   # Table 2: "EDAS CIFAR10 + cutout", no warm-up
             XAUTODL: EDAS_NB201, NB201_BARE: EDAS_UNNAMED},
    "edas-inv": {"paper 004": {**EDAS_PAPER, "warmup_fraction": 0.4},   # §4.1: "in the first 10 epochs" of 25
                 XAUTODL: EDAS_NB201, NB201_BARE: EDAS_UNNAMED},
    "alpha-max": {"paper 004": {**EDAS_PAPER, "warmup_fraction": 0.0,
                                "weight_path": "argmax"},   # §5.3: "α-max trains operation weights by ... the maximum"
                  XAUTODL: EDAS_NB201, NB201_BARE: EDAS_UNNAMED},
    "factorized-act": FACTORIZED,
    "factorized-kernel": FACTORIZED,
    "nonfactorized-act": FACTORIZED,
    # ---- sampling methods: xautodl's NB201 scripts
    "gdas": {
        XAUTODL: {
            "epochs": 250,             # configs/nas-benchmark/algos/GDAS.config:5  "epochs": 250
            "batch_size": 64,          # GDAS.config:12
            "w_lr": 0.025,             # GDAS.config:3
            "w_lr_min": 0.001,         # GDAS.config:4
            "w_momentum": 0.9,         # GDAS.config:9
            "w_nesterov": True,        # GDAS.config:10
            "w_weight_decay": 5e-4,    # GDAS.config:8
            "lr_schedule": "per-epoch",  # xautodl/procedures/optimizers.py:88-94
            "mode": "bilevel",         # exps/NAS-Bench-201-algos/GDAS.py:40-41  (base_inputs, ..., arch_inputs, ...)
            "order": 1,                # GDAS.py:65-69  arch_loss.backward() at the current weights
            "step_order": "w-alpha",   # GDAS.py:49-69  weight step, then the α step
            "grad_clip": 5.0,          # GDAS.py:54  clip_grad_norm_(network.parameters(), 5)
            "clip_includes_alpha": True,  # GDAS.py:54  network.parameters(), α included
            "track_running_stats": True,  # docs/NAS-Bench-201.md:229  `GDAS.sh cifar10 1 -1`
            "a_optimizer": "adam",     # GDAS.py:172  torch.optim.Adam
            "a_beta1": 0.5,            # GDAS.py:175  betas=(0.5, 0.999)
            "a_beta2": 0.999,          # GDAS.py:175
            "a_lr": 3e-4,              # scripts-search/NAS-Bench-201-algos/GDAS.sh:42  --arch_learning_rate 0.0003
            "a_weight_decay": 1e-3,    # GDAS.sh:42  --arch_weight_decay 0.001
            "tau_max": 10.0,           # GDAS.sh:41  --tau_max 10
            "tau_min": 0.1,            # GDAS.sh:41  --tau_min 0.1
            "activation": "softmax",   # xautodl/models/cell_searchs/search_model_gdas.py:85  show_alphas: softmax(α)
            "alpha_init_std": 1e-3,    # search_model_gdas.py:61  1e-3 * torch.randn(...)
            "derive_none": True,       # search_model_gdas.py:108-109  op_names[weights.argmax()], 'none' included
            "unsampled_weights": "decayed",  # GDAS.py:50  w_optimizer.zero_grad() (PyTorch 1.x: zeroed, not dropped)
        },
        NB201_BARE: {"unrolled_eps": 0.01},   # DARTS-V2.py:32  r=1e-2
    },
    "setn": {
        XAUTODL: {
            **SINGLE_PATH_NB201,
            "mode": "bilevel",         # exps/NAS-Bench-201-algos/SETN.py:44-45  (base_inputs, ..., arch_inputs, ...)
            "activation": "softmax",   # xautodl/models/cell_searchs/search_model_setn.py:153, 164-165  softmax, 'joint'
            "order": 1,                # SETN.py:70-76  arch_loss.backward() at the current weights
            "step_order": "w-alpha",   # SETN.py:53-76  weight step on a sampled cell, then the α step
            "grad_clip": 0.0,          # SETN.py:53-61  no clip in search_func
            "clip_includes_alpha": False,  # SETN.py:229  get_optim_scheduler(search_model.get_weights(), config)
            "a_optimizer": "adam",     # SETN.py:231  torch.optim.Adam
            "a_beta1": 0.5,            # SETN.py:234  betas=(0.5, 0.999)
            "a_beta2": 0.999,          # SETN.py:234
            "a_lr": 3e-4,              # scripts-search/NAS-Bench-201-algos/SETN.sh:43  --arch_learning_rate 0.0003
            "a_weight_decay": 1e-3,    # SETN.sh:43  --arch_weight_decay 0.001
            "alpha_init_std": 1e-3,    # search_model_setn.py:61  1e-3 * torch.randn(...)
            "derive_none": True,       # search_model_setn.py:144  Structure.gen_all(self.op_names, ...), none included
            "candidates": "top-k",     # SETN.py:117-120  get_best_arch: network.module.return_topK(n_samples)
        },
        NB201_BARE: {"unrolled_eps": 0.01},   # DARTS-V2.py:32  r=1e-2
    },
    "rsps": {XAUTODL: {**SINGLE_PATH_NB201,
                       "grad_clip": 5.0}},   # exps/NAS-Bench-201-algos/RANDOM-NAS.py:49  clip_grad_norm_(..., 5)
    "enas": {
        XAUTODL: {
            "epochs": 250,             # configs/nas-benchmark/algos/ENAS.config:5  "epochs": 250
            "batch_size": 128,         # ENAS.config:16  "batch_size": 128
            "w_lr": 0.05,              # ENAS.config:3   "LR": 0.05
            "w_lr_min": 0.0005,        # ENAS.config:4   "eta_min": 0.0005
            "lr_t_max": 10,            # ENAS.config:6   "T_max": 10
            "w_momentum": 0.9,         # ENAS.config:10
            "w_nesterov": True,        # ENAS.config:11
            "w_weight_decay": 2.5e-4,  # ENAS.config:9   "decay": 0.00025
            "a_lr": 0.001,             # ENAS.config:12  "controller_lr": 0.001
            "a_beta1": 0.0,            # ENAS.config:13  "controller_betas": [0, 0.999]
            "a_beta2": 0.999,          # ENAS.config:13
            "a_eps": 0.001,            # ENAS.config:14  "controller_eps": 0.001
            "grad_clip": 5.0,          # exps/NAS-Bench-201-algos/ENAS.py:63  clip_grad_norm_(shared_cnn..., 5)
            "unsampled_weights": "decayed",  # ENAS.py:58  optimizer.zero_grad() (PyTorch 1.x: zeroed, not dropped)
            "a_weight_decay": 0.0,     # ENAS.py:313-318  Adam(controller.parameters(), lr, betas, eps), no weight_decay
            "a_grad_clip": 5.0,        # ENAS.py:169  clip_grad_norm_(controller.parameters(), 5.0)
            "baseline_update": "xautodl",  # ENAS.py:145-150  baseline from config.baseline, not updated in the loop
            "select_samples": 10,      # ENAS.py:203, 435  get_best_arch(..., n_samples=10) every epoch
            "valid_augment": True,     # ENAS.py:281-282  valid_loader.dataset.transform = train transform
            "track_running_stats": True,  # docs/NAS-Bench-201.md:231  `ENAS.sh cifar10 1 -1`
            "lstm_size": 32,           # xautodl/models/cell_searchs/search_model_enas_utils.py:17  lstm_size=32
            "lstm_layers": 2,          # search_model_enas_utils.py:18  lstm_num_layers=2
            "tanh_constant": 2.5,      # search_model_enas_utils.py:19  tanh_constant=2.5
            "temperature": 5.0,        # search_model_enas_utils.py:20  temperature=5.0
            "entropy_weight": 1e-4,    # scripts-search/NAS-Bench-201-algos/ENAS.sh:43  --controller_entropy_weight
            "baseline_decay": 0.99,    # ENAS.sh:44  --controller_bl_dec 0.99
            "controller_train_steps": 50,   # ENAS.sh:45  --controller_train_steps 50
            "controller_num_aggregate": 20,  # ENAS.sh:46  --controller_num_aggregate 20
            "final_samples": 100,      # ENAS.sh:47  --controller_num_samples 100 (ENAS.py:502-503, the final pick)
        },
    },
    # ---- stabilizers: their authors' code, and xautodl's recipe where nbs builds on it
    # Sunshine-Ye/Beta-DARTS nasbench201/train_search.py (the NB201 search script)
    "beta-darts": {
        "Sunshine-Ye/Beta-DARTS": {
            "epochs": 100,                # nasbench201/train_search.py:40  --epochs 100
            "batch_size": 64,             # train_search.py:33  --batch_size 64
            "w_lr": 0.025,                # train_search.py:34  --learning_rate 0.025
            "w_lr_min": 0.001,            # train_search.py:35  --learning_rate_min 0.001
            "w_momentum": 0.9,            # train_search.py:36  --momentum 0.9
            "w_weight_decay": 3e-4,       # train_search.py:37  --weight_decay 3e-4
            "grad_clip": 5.0,             # train_search.py:49  --grad_clip 5
            "a_lr": 3e-4,                 # train_search.py:52  --arch_learning_rate 3e-4
            "a_weight_decay": 1e-3,       # train_search.py:53  --arch_weight_decay 1e-3
            "w_nesterov": False,          # train_search.py:119-123  torch.optim.SGD(..., momentum=...) without nesterov
            "step_order": "alpha-w",      # train_search.py:229  architect.step, then the weight step
            "clip_includes_alpha": True,  # train_search.py:248  clip model.parameters(); α a Parameter (model.py:158)
            "a_beta1": 0.5, "a_beta2": 0.999,   # optimizers/darts/architect.py:18-19  Adam betas=(0.5, 0.999)
            "beta_decay_max": 50.0,       # optimizers/darts/architect.py:81  weights = 0 + 50*epoch/100
            "beta_decay_schedule": "linear",   # architect.py:81  λ = 50·epoch/100, rising linearly with the epoch
            "track_running_stats": True,  # nasbench201/model.py:128  Network(..., track_running_stats=True)
        },
        # (the same in Beta-DARTS: Adam architect.py:18, scheduler.step() train_search.py:161, model.py:158)
        XAUTODL: {k: DARTS_NB201[k] for k in ("a_optimizer", "lr_schedule", "alpha_init_std")},
        NB201_BARE: DARTS_NB201_UNNAMED,
    },
    # Meituan-AutoML/DARTS- src/search (DARTS' search code; no NB201 script is published)
    "darts-minus": {
        "Meituan-AutoML/DARTS-": {
            "epochs": 50,                 # src/search/args.py:28  --epochs 50
            "batch_size": 64,             # args.py:29  --batch_size 64
            "w_lr": 0.025,                # args.py:30  --learning_rate 0.025
            "w_lr_min": 0.001,            # args.py:31  --learning_rate_min 0.001
            "w_momentum": 0.9,            # args.py:32  --momentum 0.9
            "w_weight_decay": 3e-4,       # args.py:33  --weight_decay 3e-4 (run_darts_minus.sh WEIGHT_DECAY=0.0003)
            "grad_clip": 5.0,             # args.py:34  --grad_clip 5
            "a_lr": 3e-4,                 # args.py:36  --arch_learning_rate 3e-4
            "a_weight_decay": 1e-3,       # args.py:37  --arch_weight_decay 1e-3
            "w_nesterov": False,          # train_search.py:64-67  torch.optim.SGD(..., momentum=...) without nesterov
            "step_order": "alpha-w",      # train_search.py:366  architect.step before the weight step
            "clip_includes_alpha": False,  # train_search.py:374  model.parameters(), α plain tensors (model_search.py:170)
            "a_beta1": 0.5, "a_beta2": 0.999,   # architect.py:17-18  Adam betas=(0.5, 0.999)
            "aux_beta0": 1.0,             # args.py:78  --skip_beta 1.0; scripts/run_darts_minus.sh beta=1
            "aux_decay": "linear",        # scripts/run_darts_minus.sh  DECAY_TYPE='linear'
        },
        # (the same in DARTS-: 1e-3·randn model_search.py:170-174, scheduler.step(epoch) train_search.py:109)
        XAUTODL: {k: DARTS_NB201[k] for k in ("a_optimizer", "lr_schedule", "alpha_init_std", "track_running_stats")},
        NB201_BARE: DARTS_NB201_UNNAMED,
    },
    # xiaomi-automl/FairDARTS fairdarts/ (its DARTS-space search: α's settings and the method's own); the
    # network's recipe is xautodl's NB201 one
    "fair-darts": {
        "xiaomi-automl/FairDARTS": {
            "zero_one_weight": 10.0,      # fairdarts/train_search.py:29  --aux_loss_weight 10
            "op_threshold": 0.85,         # train_search.py:41  --op_threshold 0.85
            "a_lr": 3e-3,                 # train_search.py:46  --arch_learning_rate 3e-3
            "a_beta1": 0.9,               # train_search.py:47  --arch_lr_gamma 0.9, the Adam β1 of architect.py:15-16
            "a_beta2": 0.999,             # architect.py:15-16  betas=(args.arch_lr_gamma, 0.999)
            "a_weight_decay": 1e-3,       # train_search.py:48  --arch_weight_decay 1e-3
            "alpha_init_std": 0.0,        # model_search.py:125-126  torch.zeros(k, num_ops)
            "include_none": False,        # genotypes.py:8-16  PRIMITIVES: no 'none'
        },
        XAUTODL: _but(DARTS_NB201, "a_lr", "a_beta1", "a_beta2", "a_weight_decay", "alpha_init_std"),
        NB201_BARE: {**_but(DARTS_NB201_UNNAMED, "activation"),
                     "derivation": "argmax"},   # search_model_darts.py:101-102  argmax per edge
    },
    # ruocwang/darts-pt nasbench201 (exp_scripts/darts-201.sh + darts-proj-201.sh: --method darts / darts-proj)
    "darts-pt": {"ruocwang/darts-pt": DARTS_PT, NB201_BARE: {"unrolled_eps": 0.01}},   # DARTS-V2.py:32  r=1e-2
    # the fix-α variant (exp_scripts/blank-201.sh, blank-proj-201.sh: --method blank / blank-proj)
    "darts-pt-fix-alpha": {
        "ruocwang/darts-pt": {**DARTS_PT,
                              "train_alpha": False},   # architect_ig.py:24-25, 38-39  "do not update alpha"
        NB201_BARE: {"unrolled_eps": 0.01},
    },
    # xiangning-chen/DrNAS 201-space (its NB201 search) and xautodl's recipe for what nbs names it for
    # (DrNAS' train_search.py:34-37, 48, 51 and architect.py:22 set the same values)
    "drnas": {
        "DrNAS": {
            **CHEN_NB201,
            "track_running_stats": True,  # 201-space/search_model.py:18  track_running_stats=True (not set :144-146)
            "a_weight_decay": 1e-3,       # architect.py:17-18  l2: weight_decay = reg_scale, train_search.py:59 1e-3
            "kl_weight": 0.0,             # train_search.py:57  --reg_type l2 (no KL term)
            "prior_concentration": 1.0,   # search_model.py:57  self.anchor = Dirichlet(torch.ones_like(...))
            "partial_channels": 1,        # train_search.py:55  --k 1
        },
        XAUTODL: _but(DARTS_NB201, *_NOT_NB201, "a_weight_decay"),
        NB201_BARE: _but(DARTS_NB201_UNNAMED, "activation"),
    },
    # SDARTS: the Chen NB201 settings it shares with DrNAS, xautodl's recipe for the rest
    "sdarts-rs": {"DrNAS": CHEN_NB201, XAUTODL: _but(DARTS_NB201, *_NOT_NB201), NB201_BARE: DARTS_NB201_UNNAMED},
    "sdarts-adv": {"DrNAS": CHEN_NB201, XAUTODL: _but(DARTS_NB201, *_NOT_NB201), NB201_BARE: DARTS_NB201_UNNAMED},
    # automl/RobustDARTS src/search (DARTS-space), on xautodl's DARTS-V1
    "rdarts-l2": {
        "automl/RobustDARTS": {
            # scripts/start_search.sh:5  grid 3e-4·3^k ∋ 0.0081 (Beta-DARTS nasbench201/train_search.py:37 'RDARTS: 81e-4')
            "w_weight_decay": 81e-4,
        },
        XAUTODL: _but(DARTS_NB201, "w_weight_decay"),
        NB201_BARE: DARTS_NB201_UNNAMED,
    },
    "rdarts-dp": {
        "automl/RobustDARTS": {
            "drop_path_max": 0.2,         # src/search/args.py:49  --drop_path_prob 0.2 (train_search.py:112 p·e/(E−1))
        },
        XAUTODL: DARTS_NB201,
        NB201_BARE: DARTS_NB201_UNNAMED,
    },
    "darts-es": {
        "automl/RobustDARTS": {
            "es_rule": "code",            # src/utils.py:117-139  EVLocalAvg.early_stop: current / previous > factor
            "es_every": 2,                # scripts/DARTS_search.sh:19 --report_freq_hessian 2; utils.py:32 ev_freq=2
            "es_average": 5,              # src/search/args.py:61  --window 5
            "es_start_epoch": 10,         # args.py:62  --es_start_epoch 10
            "es_delta": 4,                # args.py:63  --delta 4
            "es_factor": 1.3,             # args.py:64  --factor 1.3
        },
        XAUTODL: DARTS_NB201,
        NB201_BARE: DARTS_NB201_UNNAMED,
    },
    # ---- CDARTS: microsoft/Cream CDARTS/benchmark201 (its NB201 run script is not published: config.py's defaults)
    "cdarts": {
        "Cream CDARTS/benchmark201/configs/config.py": {
            "pretrain_epochs": 5,         # configs/config.py:82  --pretrain_epochs default=5
            "batch_size": 128,            # config.py:56  --batch_size default=128
            "sample_ratio": 0.2,          # config.py:62  --sample_ratio default=0.2 (search_function.py:19-20 step_num)
            "w_lr": 0.05,                 # config.py:66  --w_lr default=0.05
            "w_momentum": 0.9,            # config.py:69  --w_momentum default=0.9
            "w_weight_decay": 3e-4,       # config.py:70  --w_weight_decay default=3e-4
            "grad_clip": 5.0,             # config.py:72  --w_grad_clip default=5.
            "a_lr": 6e-4,                 # config.py:74  --alpha_lr default=6e-4
            "a_weight_decay": 1e-3,       # config.py:75  --alpha_weight_decay default=1e-3
            "eval_lr": 0.1,               # config.py:105  --nasnet_lr default=0.1
            "eval_warmup": 5,             # config.py:106  --nasnet_warmup default=5
            "loss_alpha": 1.0,            # config.py:107  --loss_alpha default=1
            "temperature": 2.0,           # config.py:108  --loss_T default=2
            "interaction": "kl",          # config.py:109  --interactive_type default=0 (models/loss.py:25-26 KLDivLoss)
        },
        "Cream CDARTS/benchmark201/search.py": {
            "a_beta1": 0.5, "a_beta2": 0.999,   # search.py:178  Adam(..., betas=(0.5, 0.999))
            "w_nesterov": False,          # search.py:114, 171, 191  torch.optim.SGD(..., momentum=, weight_decay=): no nesterov
        },
        "Cream CDARTS/benchmark201/models/cdarts_controller.py": {
            "track_running_stats": True,  # cdarts_controller.py:15  track_running_stats=True (search.py:71 passes none)
            "alpha_init_std": 1e-3,       # cdarts_controller.py:115  1e-3*torch.randn(num_edge, len(search_space))
        },
        # search_function.py: optimizer.zero_grad() on PyTorch >= 1.2 (SETUP.md:3) zeroes .grad in place
        "Cream CDARTS/benchmark201/core/search_function.py": {"zero_grad": "zero"},
    },
    # ---- multi-trial searches on the table: xautodl's NB201 scripts
    "rs": {XAUTODL: TABLE_NB201},   # exps/NAS-Bench-201-algos/RANDOM.py:25  from R_EA import train_and_eval
    "rea": {XAUTODL: {
        **TABLE_NB201,
        "population": 10,             # scripts-search/NAS-Bench-201-algos/R-EA.sh:37  --ea_population 10
        "sample_size": 3,             # R-EA.sh:3, docs/NAS-Bench-201.md:233  `R-EA.sh cifar10 3 -1` ($2)
        "mutation_edge": "by-node",   # exps/NAS-Bench-201-algos/R_EA.py:138-140  random node, then one of its inputs
    }},
    "reinforce": {XAUTODL: {
        **TABLE_NB201,                # reinforce.py:27  from R_EA import train_and_eval
        "lr": 0.001,                  # scripts-search/NAS-Bench-201-algos/REINFORCE.sh:2  `REINFORCE.sh 0.001 -1`
        "ema_momentum": 0.9,          # REINFORCE.sh:35  --EMA_momentum 0.9
        "init_std": 1e-3,             # exps/NAS-Bench-201-algos/reinforce.py:41  1e-3 * torch.randn(...)
    }},
    "bohb": {
        XAUTODL: {
            "time_budget": 12000.0,       # scripts-search/NAS-Bench-201-algos/BOHB.sh:33  --time_budget 12000
            "num_samples": 4,             # BOHB.sh:34  --num_samples 4
            "random_fraction": 0.0,       # BOHB.sh:34  --random_fraction 0.0
            "bandwidth_factor": 3.0,      # BOHB.sh:34  --bandwidth_factor 3
            "min_bandwidth": 0.3,         # exps/NAS-Bench-201-algos/BOHB.py:294-295  --min_bandwidth default=0.3
        },
        "hpbandster": {
            "top_n_percent": 15,          # hpbandster 0.7.4 optimizers/bohb.py:19 (BOHB.py:215-228 passes none)
        },
    },
}

# values the code marks as not the authors' (the paper does not give them): `nbs methods --show` must say so
NOT_THE_AUTHORS = {
    "single-darts": {"a_weight_decay": "a reading", "alpha_init_std": "a reading", "clip_includes_alpha": "our choice",
                     "w_weight_decay": "value lost in the text", "a_lr": "value lost in the text"},
    "mergenas-v1": {"branch_scale": "our choice"},
    "mergenas-v2": {"branch_scale": "our choice"},
    "edas": {"order": "our choice", "freeze_unsampled": "our choice"},
    "edas-inv": {"order": "our choice", "freeze_unsampled": "our choice"},
    "alpha-max": {"order": "our choice", "freeze_unsampled": "our choice"},
    "bohb": {"signal_epochs": "our choice"},
    "cdarts": {"epochs": "A reading"},
}


def option_lines(name: str) -> dict[str, tuple[str, str]]:
    """``nbs methods --show NAME``'s option lines: option → (source column, whole line)."""
    lines = {}
    for line in describe_method(name).splitlines():
        parts = line.split(" · ")
        if line.startswith("  ") and len(parts) >= 3 and " = " in parts[0]:
            lines[line.split()[0]] = (parts[1], line)
    return lines


@pytest.mark.parametrize("name", sorted(AUTHORS_SETTINGS))
def test_defaults_are_their_sources(name):
    info = get_method(name)
    opts = info.default_options()
    shown = option_lines(name)
    for source, settings in AUTHORS_SETTINGS[name].items():
        for key, value in settings.items():
            assert getattr(opts, key) == value, f"{name}.{key}: {getattr(opts, key)!r}, {source} says {value!r}"
            # and `nbs methods --show` names that source for it
            column = shown[RESOLVED.get(key, key)][0]
            if source in PAPERS:
                assert column.startswith("paper") and PAPERS[source] in info.paper, (name, key, column, info.paper)
            else:
                assert source in column, f"{name}.{key}: shown from {column!r}, not {source!r}"


def test_every_method_has_its_sources_pinned():
    # pc-darts: its own tests (tests/test_method_pc_darts.py) pin its settings
    assert {m.name for m in list_methods()} - {"pc-darts"} == set(AUTHORS_SETTINGS)


@pytest.mark.parametrize("name", sorted(NOT_THE_AUTHORS))
def test_values_not_from_the_authors_are_marked_so(name):
    shown = option_lines(name)
    pinned = {key for settings in AUTHORS_SETTINGS[name].values() for key in settings}
    for key, mark in NOT_THE_AUTHORS[name].items():
        assert key not in pinned, f"{name}.{key} is not the authors' value"
        assert mark in shown[key][1], shown[key][1]


def test_single_darts_readings_are_marked_as_readings():
    """Single-DARTS' α weight decay and α initialisation are not in the paper's NB201 setting: `nbs methods
    --show` must say they are readings (and why), not pass them off as the paper's."""
    lines = {line.split()[0]: line for line in describe_method("single-darts").splitlines() if " = " in line}
    for key in ("a_weight_decay", "alpha_init_std"):
        assert "a reading" in lines[key] and "§5.1" in lines[key], lines[key]
    assert "a reading" not in lines["w_lr"] and "paper" in lines["w_lr"]
