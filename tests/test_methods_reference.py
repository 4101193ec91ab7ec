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
    "pc-darts": (0.025, 0.9, True, 5e-4, 3e-4, (0.5, 0.999), 1e-3),
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
    m._set_lr(0, 0)
    w = m.w_opt.param_groups[0]
    shown = {"w_lr": w["lr"], "w_momentum": w["momentum"], "w_nesterov": w["nesterov"],
             "w_weight_decay": w["weight_decay"], "grad_clip": opts.grad_clip}
    alpha = info.name not in ALPHA_FREE
    for name, opt in [(n, o) for n, o in m.optimizers().items() if n != "w"]:   # α's (and β's), ENAS' controller
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
                                          ("factorized-act", "w-alpha"), ("pc-darts", "w-alpha"),
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
# the stabilizers' search settings as their authors' code sets them, read off the file and line each value
# comes from (a default that drifts from its source fails here, not only where nbs checks itself)
AUTHORS_SETTINGS = {
    # Sunshine-Ye/Beta-DARTS nasbench201/train_search.py (the NB201 search script)
    "beta-darts": {
        "epochs": 100,                # :40  --epochs 100
        "batch_size": 64,             # :33  --batch_size 64
        "w_lr": 0.025,                # :34  --learning_rate 0.025
        "w_lr_min": 0.001,            # :35  --learning_rate_min 0.001
        "w_momentum": 0.9,            # :36  --momentum 0.9
        "w_weight_decay": 3e-4,       # :37  --weight_decay 3e-4
        "grad_clip": 5.0,             # :49  --grad_clip 5
        "a_lr": 3e-4,                 # :52  --arch_learning_rate 3e-4
        "a_weight_decay": 1e-3,       # :53  --arch_weight_decay 1e-3
        "w_nesterov": False,          # :119-123 torch.optim.SGD(..., momentum=...) without nesterov
        "step_order": "alpha-w",      # :229 architect.step, then the weight step
        "clip_includes_alpha": True,  # :248 clip_grad_norm_(model.parameters()); α an nn.Parameter (model.py:158)
        "a_beta1": 0.5, "a_beta2": 0.999,   # optimizers/darts/architect.py:18-19 Adam betas=(0.5, 0.999)
        "beta_decay_max": 50.0,       # optimizers/darts/architect.py:81 weights = 0 + 50*epoch/100
        "track_running_stats": True,  # nasbench201/model.py:128 Network(..., track_running_stats=True)
    },
    # xiaomi-automl/FairDARTS fairdarts (its DARTS-space search; α's settings and the method's own)
    "fair-darts": {
        "zero_one_weight": 10.0,      # train_search.py:29  --aux_loss_weight 10
        "op_threshold": 0.85,         # train_search.py:41  --op_threshold 0.85
        "a_lr": 3e-3,                 # train_search.py:46  --arch_learning_rate 3e-3
        "a_beta1": 0.9,               # train_search.py:47  --arch_lr_gamma 0.9, the Adam β1 of architect.py:15-16
        "a_beta2": 0.999,             # architect.py:15-16 betas=(args.arch_lr_gamma, 0.999)
        "a_weight_decay": 1e-3,       # train_search.py:48  --arch_weight_decay 1e-3
        "alpha_init_std": 0.0,        # model_search.py:125-126 torch.zeros(k, num_ops)
    },
    # ruocwang/darts-pt nasbench201: the fix-α variant (exp_scripts/blank-201.sh, blank-proj-201.sh: --method blank)
    "darts-pt-fix-alpha": {
        "train_alpha": False,         # architect_ig.py:24-25, 38-39 method 'blank': "do not update alpha"
        "epochs": 125,                # train_search.py --epochs 100 + projection 5 × --proj_intv 5
        "proj_crit": "acc",           # blank-proj-201.sh --proj_crit acc
        "edge_order": "random",       # blank-proj-201.sh --edge_decision random
    },
    # Meituan-AutoML/DARTS- src/search (DARTS' search code; no NB201 script is published)
    "darts-minus": {
        "epochs": 50,                 # args.py:28  --epochs 50
        "batch_size": 64,             # args.py:29  --batch_size 64
        "w_lr": 0.025,                # args.py:30  --learning_rate 0.025
        "w_lr_min": 0.001,            # args.py:31  --learning_rate_min 0.001
        "w_momentum": 0.9,            # args.py:32  --momentum 0.9
        "w_weight_decay": 3e-4,       # args.py:33  --weight_decay 3e-4 (scripts/run_darts_minus.sh WEIGHT_DECAY=0.0003)
        "grad_clip": 5.0,             # args.py:34  --grad_clip 5
        "a_lr": 3e-4,                 # args.py:36  --arch_learning_rate 3e-4
        "a_weight_decay": 1e-3,       # args.py:37  --arch_weight_decay 1e-3
        "w_nesterov": False,          # train_search.py:64-67 torch.optim.SGD(..., momentum=...) without nesterov
        "step_order": "alpha-w",      # train_search.py:366 architect.step before the weight step
        "clip_includes_alpha": False,  # train_search.py:374 clip over model.parameters(); α plain tensors (model_search.py:170-173)
        "a_beta1": 0.5, "a_beta2": 0.999,   # architect.py:17-18 Adam betas=(0.5, 0.999)
        "aux_beta0": 1.0,             # args.py:78 --skip_beta 1.0; scripts/run_darts_minus.sh beta=1
        "aux_decay": "linear",        # scripts/run_darts_minus.sh DECAY_TYPE='linear'
    },
}


@pytest.mark.parametrize("name", sorted(AUTHORS_SETTINGS))
def test_stabilizer_defaults_are_their_authors_code(name):
    opts = get_method(name).default_options()
    for key, value in AUTHORS_SETTINGS[name].items():
        assert getattr(opts, key) == value, f"{name}.{key}: {getattr(opts, key)!r}, the authors' code says {value!r}"
    # and `nbs methods --show` names the authors' file for each of them
    text = describe_method(name)
    code = {"beta-darts": "Sunshine-Ye/Beta-DARTS", "darts-minus": "Meituan-AutoML/DARTS-",
            "fair-darts": "xiaomi-automl/FairDARTS", "darts-pt-fix-alpha": "ruocwang/darts-pt"}[name]
    shown = [line for line in text.splitlines() if line.strip().split(" ")[0] in AUTHORS_SETTINGS[name]]
    assert len(shown) == len(AUTHORS_SETTINGS[name]), text
    for line in shown:
        assert code in line, line


def test_single_darts_readings_are_marked_as_readings():
    """Single-DARTS' α weight decay and α initialisation are not in the paper's NB201 setting: `nbs methods
    --show` must say they are readings (and why), not pass them off as the paper's."""
    lines = {line.split()[0]: line for line in describe_method("single-darts").splitlines() if " = " in line}
    for key in ("a_weight_decay", "alpha_init_std"):
        assert "a reading" in lines[key] and "§5.1" in lines[key], lines[key]
    assert "a reading" not in lines["w_lr"] and "paper" in lines["w_lr"]
