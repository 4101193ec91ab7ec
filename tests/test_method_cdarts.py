"""CDARTS as its authors' NB201 code runs it (microsoft/Cream CDARTS/benchmark201): the epoch's phases and
lengths, which weights each phase moves, the distillation loss and its reduction, the clip over every
gradient left, fresh optimizers every iteration, and an exact resume."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasbench_stability.methods.gradient.cdarts_network import ensemble, interactive_loss
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import OPS

from method_helpers import batch, tiny

CONV3 = OPS.index("nor_conv_3x3")
CONV1 = OPS.index("nor_conv_1x1")


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def batches(k: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {"train": batch(2 * k), "valid": batch(2 * k + 1)}


def run_epoch(m, epoch: int, steps: int = 4, only: int | None = None) -> None:
    m.train()
    m.begin_epoch(epoch)
    n = m.epoch_steps(epoch, steps)
    for s in range(n if only is None else only):
        m.step(batches(100 * epoch + s), epoch, s, False)


def conv3_everywhere(m) -> None:
    """α that derives nor_conv_3x3 on every edge (ops with weights, so the pool's bookkeeping shows)."""
    with torch.no_grad():
        m.alpha.zero_()
        m.alpha[:, CONV3] = 1.0


# ---- the losses ---------------------------------------------------------------------------------------
def test_the_interaction_is_kldivloss_at_its_default_mean_reduction_times_t_squared():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(12, 10, generator=g), torch.randn(12, 10, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # PyTorch warns that 'mean' is not the KL's batch mean: theirs is 'mean'
        theirs = nn.KLDivLoss()(F.log_softmax(s / 2, dim=1), F.softmax(t / 2, dim=1)) * 4
    mine = interactive_loss(s, t, 2.0, "kl")
    torch.testing.assert_close(mine, theirs)
    batchmean = F.kl_div(F.log_softmax(s / 2, dim=1), F.softmax(t / 2, dim=1), reduction="batchmean") * 4
    assert not torch.allclose(mine, batchmean)    # a tenth of it: the mean runs over classes too
    # the other interactive types of models/loss.py
    torch.testing.assert_close(interactive_loss(s, t, 2.0, "mse"), F.mse_loss(s, t) * 4)
    torch.testing.assert_close(interactive_loss(s, t, 2.0, "smooth-l1"), F.smooth_l1_loss(s, t) * 4)
    torch.testing.assert_close(interactive_loss(s, t, 2.0, "cosine"),
                               -nn.CosineSimilarity(dim=1, eps=1e-6)(s, t).mean() * 4)


def test_both_networks_get_the_distillation_gradient():
    s = torch.randn(6, 10, requires_grad=True)
    t = torch.randn(6, 10, requires_grad=True)
    interactive_loss(s, t, 2.0, "kl").backward()
    assert s.grad.abs().sum() > 0 and t.grad.abs().sum() > 0   # neither side is detached (their Loss_interactive)


def test_the_ensemble_stacks_the_heads_and_the_logits_with_weights_of_a_third():
    aux = [torch.randn(4, 10), torch.randn(4, 10)]
    logits = torch.randn(4, 10)
    weights = torch.softmax(0.333 * torch.ones(3), 0)     # their ensemble_param, not learned
    theirs = torch.cat([weights[0] * aux[0], weights[1] * aux[1], weights[2] * logits], 0)
    torch.testing.assert_close(ensemble(aux, logits), theirs)


# ---- the epoch's shape -----------------------------------------------------------------------------------
def test_each_pass_reads_a_fifth_of_the_batches_plus_one_and_a_cyclic_epoch_six_passes():
    m = tiny("cdarts")
    assert m.epoch_steps(0, 195) == 40                # 25k/128 batches: their step_num 39, steps 0..39
    assert m.epoch_steps(4, 195) == 40                # the last pretraining epoch
    assert m.epoch_steps(5, 195) == 6 * 40            # 5 warm-up passes of the evaluation network + 1 cyclic
    assert m.epoch_steps(5, 16) == 6 * 4              # the cpu preset: 2048/128 batches
    assert tiny("cdarts", sample_ratio=1.0).epoch_steps(0, 16) == 16   # never more than the half holds
    assert tiny("cdarts", eval_warmup=0).epoch_steps(7, 16) == 4


def test_pretraining_moves_only_the_search_network_and_sums_alphas_gradient():
    m = tiny("cdarts", pretrain_epochs=2)
    alpha = m.alpha.detach().clone()
    evaluation, search = snapshot(m.nets.eval_layers), snapshot(m.nets.search_layers)
    run_epoch(m, 0)
    assert torch.equal(m.alpha, alpha)
    assert not changed(evaluation, m.nets.eval_layers)
    assert changed(search, m.nets.search_layers)
    assert m.eval_ops is None and m.extra_records()["cdarts_phase"] == "pretrain"
    # nobody zeroes α's gradient while pretraining (their retrain_warmup): it sums every step's
    g = torch.zeros_like(m.alpha)
    probe = tiny("cdarts", pretrain_epochs=2)
    probe.load_state_dict(m.state_dict())
    x, y = batch(7)
    for _ in range(2):
        probe.alpha.grad = None
        F.cross_entropy(probe.logits(x), y).backward()
        g += probe.alpha.grad
    m.alpha.grad = None
    for _ in range(2):
        m.w_opt.zero_grad()
        F.cross_entropy(m.logits(x), y).backward()
    torch.testing.assert_close(m.alpha.grad, g)


def test_a_cyclic_epoch_trains_the_derived_cells_ops_alpha_and_both_networks():
    m = tiny("cdarts", pretrain_epochs=0)
    conv3_everywhere(m)
    alpha = m.alpha.detach().clone()
    pool, search = snapshot(m.nets.eval_layers), snapshot(m.nets.search_layers)
    run_epoch(m, 0)
    assert m.eval_ops == (CONV3,) * 6
    assert m.extra_records()["eval_cell"] == Genotype.from_op_indices([CONV3] * 6).to_str()
    moved = changed(pool, m.nets.eval_layers)
    conv3 = {k for k in pool if f".edges.{0}.{CONV3}." in k or any(f".edges.{e}.{CONV3}." in k for e in range(6))}
    conv1 = {k for k in pool if any(f".edges.{e}.{CONV1}." in k for e in range(6))}
    assert conv3 and {k for k in conv3 if "weight" in k} <= moved
    assert not moved & conv1                           # the pool's other ops wait for a cell that uses them
    assert changed(search, m.nets.search_layers)
    assert not torch.equal(m.alpha, alpha)


def test_the_evaluation_warm_up_moves_neither_alpha_nor_the_search_network():
    m = tiny("cdarts", pretrain_epochs=0)
    conv3_everywhere(m)
    alpha = m.alpha.detach().clone()
    pool, search, fc = snapshot(m.nets.eval_layers), snapshot(m.nets.search_layers), snapshot(m.nets.fc_search)
    m.begin_epoch(0)
    warmup = m.options.eval_warmup * m.epoch_steps(0, 4) // (m.options.eval_warmup + 1)
    run_epoch(m, 0, only=warmup)
    assert torch.equal(m.alpha, alpha)
    assert not changed(search, m.nets.search_layers) and not changed(fc, m.nets.fc_search)
    assert changed(pool, m.nets.eval_layers)


def test_every_iteration_derives_its_cell_and_starts_fresh_optimizers():
    m = tiny("cdarts", pretrain_epochs=0)
    conv3_everywhere(m)
    run_epoch(m, 0)
    assert m.w_opt.state and m.e_opt.state and m.a_opt.state
    with torch.no_grad():
        m.alpha[:, CONV1] = 5.0
    m.begin_epoch(1)
    assert m.eval_ops == (CONV1,) * 6                  # argmax of α, none included (their genotype())
    assert not m.w_opt.state and not m.e_opt.state and not m.a_opt.state   # no momentum or Adam moments carried
    assert {id(p) for p in m.e_opt.param_groups[0]["params"]} == {id(p) for p in m.nets.eval_parameters(m.eval_ops)}
    assert m.e_opt.param_groups[0]["lr"] == 0.1 and m.w_opt.param_groups[0]["lr"] == 0.05
    none = tiny("cdarts", pretrain_epochs=0)
    with torch.no_grad():
        none.alpha.zero_()
        none.alpha[:, OPS.index("none")] = 1.0
    none.begin_epoch(0)
    assert none.eval_ops == (OPS.index("none"),) * 6


def test_the_clip_counts_every_gradient_left_in_the_model():
    """Their clip_grad_norm_(model.parameters(), 5) reads α's gradient too: a large one left from earlier
    steps shrinks a weight step to almost nothing."""
    def step_size(left: torch.Tensor | None) -> float:
        m = tiny("cdarts", pretrain_epochs=2)
        before = snapshot(m.nets.search_layers)
        m.alpha.grad = left
        m._weight_step(batch(3))
        return sum(float((v - before[k]).abs().sum()) for k, v in m.nets.search_layers.state_dict().items()
                   if k.endswith("weight"))
    free, held = step_size(None), step_size(torch.full((6, 5), 1e4))
    assert held < free / 100


@pytest.mark.parametrize("mode,heads_move", [("zero", True), ("none", False)])
def test_zero_grad_decides_whether_the_heads_take_the_weight_steps_decay(mode, heads_move):
    m = tiny("cdarts", pretrain_epochs=0, zero_grad=mode)
    conv3_everywhere(m)
    m.begin_epoch(0)
    m._cyclic_step(batch(1), batch(2))                 # the heads now have a gradient (the valid half)
    heads = snapshot(m.nets.heads)
    m._weight_step(batch(4))                           # their loss never reads the heads
    assert bool(changed(heads, m.nets.heads)) == heads_move


# a clip that binds at every step, so that the gradients left in the model (its norm counts them) matter
CLIPPED = {"pretrain_epochs": 2, "grad_clip": 0.01}


def _resumed(drop_grads: bool = False, epochs: int = 3):
    """(whole, resumed): one search run for ``epochs`` epochs straight, one stopped after epoch 1, saved, loaded
    into a new model as the engine reads it (``drop_grads``: without the gradients left in the model) and run on."""
    whole = tiny("cdarts", **CLIPPED)
    for epoch in range(epochs):
        run_epoch(whole, epoch)
    first = tiny("cdarts", **CLIPPED)
    run_epoch(first, 0)
    state = first.checkpoint_state()
    if drop_grads:
        state["grads"] = {}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = tiny("cdarts", **CLIPPED)
    resumed.load_checkpoint_state(torch.load(buffer, weights_only=True))
    for epoch in range(1, epochs):
        run_epoch(resumed, epoch)
    return whole, resumed


def test_a_resumed_search_continues_exactly():
    """Momentum of the pretraining optimizer and every .grad left (the clips read them) travel in the checkpoint."""
    whole, resumed = _resumed()
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_resume_without_the_gradients_would_differ():
    """The check above can fail: dropping the gradients left in the model changes the next clips."""
    whole, resumed = _resumed(drop_grads=True, epochs=2)
    assert not torch.equal(whole.nets.fc_search.weight, resumed.nets.fc_search.weight)


def test_records_of_a_cyclic_epoch():
    m = tiny("cdarts", pretrain_epochs=0)
    conv3_everywhere(m)
    m.begin_epoch(0)
    warm = m._eval_warmup_step(batch(5))
    assert warm.count == 0 and set(warm.extra) == {"eval_warmup_loss", "eval_warmup_acc"}
    stats = m._cyclic_step(batch(1), batch(2))
    assert stats.count == 8 and stats.op_grad.shape == (6, 5)
    assert set(stats.extra) == {"eval_loss", "eval_acc", "valid_step_acc", "distill_loss"}
    assert m.learning_rates() == {"lr_w": 0.05, "lr_alpha": 6e-4, "lr_eval": 0.1}
