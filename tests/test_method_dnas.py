"""DNAS / CAM: 174 decoupled parameters over the four non-'none' ops (195 with 'none') give every cell
its own weights ψ, the weights really reach the cells, the zero-one loss pushes sigmoids to 0 or 1,
derivation per layer / shared / majority; and end to end through the CLI on real CIFAR-10 (two
seeds, resume after SIGKILL).

"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasbench_stability.engine.config import resolve_config
from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.gradient.dnas import cam_parts, cam_weights, majority_vote, zero_one_loss
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.mixed_cell import MixedCell
from nasbench_stability.space.ops import OPS
from nasbench_stability.space.partial_channel_cell import PartialChannelCell, channel_shuffle

from method_helpers import assert_resume_reproduces, batch, check_records, run_all, tiny


@pytest.mark.parametrize("include_none,ops,total", [(False, 4, 174), (True, 5, 195)])
def test_parameter_count_and_per_layer_weights_for_nb201(include_none, ops, total):
    m = tiny("dnas", cells_per_stage=5, include_none=include_none)
    assert sum(p.numel() for p in m.arch_parameters()) == 15 * 6 + 15 * ops + 6 * ops == total
    parts = m.parts()
    assert (parts.alpha.shape, parts.beta.shape, parts.gamma.shape) == ((6, ops), (15, 6), (15, ops))
    psi = m.activate(m.alpha)
    assert psi.shape == (15, 6, 5) and m.layer_op_weights().shape == (15, 6, 5)
    cols = [o for o in range(5) if include_none or OPS[o] != "none"]
    k, i, j = 7, 4, 2  # the definition, element by element (j: a candidate's own index)
    expected = torch.sigmoid(parts.alpha[i, j]) * torch.softmax(parts.beta[k], 0)[i] * torch.sigmoid(parts.gamma[k, j])
    torch.testing.assert_close(psi[k, i, cols[j]], expected)
    if not include_none:   # 'none' is no candidate: weight exactly 0 in every cell
        assert torch.equal(psi[..., OPS.index("none")], torch.zeros(15, 6))
    assert m.op_weights().shape == (6, 5)


def test_default_never_derives_none_even_when_every_gate_is_closed():
    m = tiny("dnas")
    with torch.no_grad():
        m.alpha.fill_(-200.0)      # σ underflows to 0 for every candidate, the tie 'none' must not win
    assert "none" not in m.derive().ops
    assert all("none" not in g.ops for g in m.layer_genotypes())
    with_none = tiny("dnas", include_none=True)
    with torch.no_grad():
        with_none.parts().alpha.fill_(-5.0)
        with_none.parts().alpha[:, OPS.index("none")] = 5.0
    assert set(with_none.derive().ops) == {"none"}   # as a candidate, it can win


def test_per_layer_weights_reach_the_cells():
    m = tiny("dnas", cells_per_stage=2).eval()
    with torch.no_grad():
        p = m.parts()
        p.beta[1].copy_(torch.tensor([3.0, -2, 0, 1, 0, -1]))
        p.gamma[1].copy_(torch.tensor([-1.0, 2, 3, -2]))
    psi = m.activate(m.alpha).detach()
    assert not torch.equal(psi[0], psi[1])

    received = {}
    cells = m.supernet.search_cells
    hooks = [c.register_forward_hook(lambda mod, args, out, k=k: received.__setitem__(k, args[1]))
             for k, c in enumerate(cells)]
    m.logits(batch(0)[0])
    for h in hooks:
        h.remove()
    assert len(received) == 6 and all(torch.equal(received[k], psi[k]) for k in range(6))

    # cells 0 and 1 are in the same stage: give them the same weights, feed them the same input
    cells[1].load_state_dict(cells[0].state_dict())
    x = torch.randn(2, 4, 32, 32)
    assert not torch.allclose(cells[0](x, psi[0]), cells[1](x, psi[1]))
    with torch.no_grad():
        p.beta[1].copy_(p.beta[0])
        p.gamma[1].copy_(p.gamma[0])
    psi = m.activate(m.alpha).detach()
    assert torch.equal(cells[0](x, psi[0]), cells[1](x, psi[1]))


def test_zero_one_loss_pushes_sigmoids_away_from_one_half():
    flat = torch.tensor([0.4, -0.4, 2.0, -2.0, 0.05, -0.05] * 4 + [0.0] * 6 + [0.3, -0.3, 1.0, -1.0],
                        requires_grad=True)
    parts = cam_parts(flat, layers=1, ops=4)
    loss = zero_one_loss(parts, weight=10.0)
    sig = torch.cat([torch.sigmoid(parts.alpha).flatten(), torch.sigmoid(parts.gamma).flatten()])
    torch.testing.assert_close(loss, -10.0 * ((sig - 0.5) ** 2).mean())
    (grad,) = torch.autograd.grad(loss, flat)
    g = cam_parts(grad, layers=1, ops=4)
    # gradient descent moves every α and γ away from 0 (σ away from 0.5); β (a softmax) is untouched
    for value, step in ((parts.alpha, -g.alpha), (parts.gamma, -g.gamma)):
        assert (torch.sign(step) == torch.sign(value)).all()
    assert torch.equal(g.beta, torch.zeros_like(g.beta))
    with torch.no_grad():
        stepped = flat - 0.1 * grad
        new = cam_parts(stepped, 1, 4)
        new_sig = torch.sigmoid(torch.cat([new.alpha.flatten(), new.gamma.flatten()]))
    assert ((new_sig - 0.5).abs() > (sig - 0.5).abs()).all()
    assert zero_one_loss(cam_parts(stepped, 1, 4), 10.0) < loss


def test_zero_one_loss_is_in_the_arch_objective_only():
    m = tiny("dnas")
    x, y = batch(1)
    m.eval()  # BN uses batch statistics either way (no running stats); eval keeps nothing stochastic
    arch_loss, _ = m.arch_objective(x, y)
    weight_loss, _ = m.loss_and_logits(x, y, arch_grad=False)
    torch.testing.assert_close(arch_loss - weight_loss, zero_one_loss(m.parts(), 10.0))
    off = tiny("dnas", zero_one_weight=0)
    off.load_state_dict(m.state_dict())
    off.eval()
    torch.testing.assert_close(off.arch_objective(x, y)[0], weight_loss)
    torch.testing.assert_close(m.arch_loss(x, y), weight_loss)   # the Hessian sees L_valid alone


def test_a_step_moves_all_three_parts_and_records_them():
    m = tiny("dnas")
    before = m.alpha.detach().clone()
    stats = m.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=True)
    moved = cam_parts(m.alpha.detach() - before, layers=3, ops=4)
    assert all(part.abs().min() > 0 for part in moved)
    assert stats.op_grad.shape == (6, 5) and stats.extra["op_grad_beta"].shape == (3, 6)
    assert stats.extra["op_grad_gamma"].shape == (3, 5) and torch.isfinite(stats.gc_inner[:, 2:4]).all()
    # the records keep NB201's five columns; 'none', no parameter, has no gradient
    none = OPS.index("none")
    candidates = [o for o in range(5) if o != none]
    assert torch.isnan(stats.op_grad[:, none]).all() and torch.isfinite(stats.op_grad[:, candidates]).all()
    assert torch.isnan(stats.extra["op_grad_gamma"][:, none]).all()


def test_derivation_per_layer_shared_and_majority():
    m = tiny("dnas", cells_per_stage=1)  # 3 layers
    col = {op: i for i, op in enumerate(o for o in OPS if o != "none")}   # candidate columns
    with torch.no_grad():
        p = m.parts()
        p.alpha.zero_()
        p.alpha[:, col["nor_conv_3x3"]] = 1.0   # shared part: conv3x3 everywhere
        p.gamma.zero_()
        p.gamma[0, col["skip_connect"]] = 5.0   # layer 0 prefers skip, layers 1 and 2 follow α
    layers = m.layer_genotypes()
    conv3 = Genotype(("nor_conv_3x3",) * 6)
    assert layers[0] == Genotype(("skip_connect",) * 6) and layers[1] == layers[2] == conv3
    assert m.derive() == conv3
    rec = m.extra_records()
    assert rec["layer_genotypes"] == [g.to_str() for g in layers]
    assert rec["distinct_layer_genotypes"] == 2 and rec["layers_differing_from_lookup"] == 1
    assert rec["majority_genotype"] == conv3.to_str() and rec["lookup_exact"] is False
    assert rec["layer_op_weights"].shape == (3, 6, 5) and rec["layer_edge_weights"].shape == (3, 6)
    tie = majority_vote([Genotype(("avg_pool_3x3",) * 6), Genotype(("skip_connect",) * 6)])
    assert tie == Genotype(("skip_connect",) * 6)  # ties: first op in OPS order


def test_cam_weights_are_the_product_of_the_three_activations():
    parts = cam_parts(torch.randn(3 * 6 + 3 * 4 + 24), layers=3, ops=4)
    psi = cam_weights(parts)
    manual = torch.einsum("ij,ki,kj->kij", torch.sigmoid(parts.alpha), torch.softmax(parts.beta, 1),
                          torch.sigmoid(parts.gamma))
    torch.testing.assert_close(psi, manual)


def test_partial_channels_k1_is_the_mixed_cell_and_k4_shuffles_the_bypass():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6, dtype=torch.double)
    w = torch.softmax(torch.randn(6, 5, dtype=torch.double), -1)
    full = PartialChannelCell(8, 1).double()
    mixed = MixedCell(8).double()
    mixed.load_state_dict(full.ops.state_dict())
    torch.testing.assert_close(full(x, w), mixed(x, w), rtol=0, atol=1e-12)

    pc = PartialChannelCell(8, 4).double()
    assert pc.conv_weights(0, OPS.index("nor_conv_3x3"))[0].shape == (2, 2, 3, 3)   # ops see C/K channels
    only_none = torch.zeros(6, 5, dtype=torch.double)
    only_none[:, 0] = 1.0                  # every op output is zero: only the bypass flows
    node1 = channel_shuffle(torch.cat([torch.zeros_like(x[:, :2]), x[:, 2:]], 1), 4)
    node2 = channel_shuffle(torch.cat([torch.zeros_like(x[:, :2]), x[:, 2:] + node1[:, 2:]], 1), 4)
    node3 = channel_shuffle(torch.cat([torch.zeros_like(x[:, :2]), x[:, 2:] + node1[:, 2:] + node2[:, 2:]], 1), 4)
    torch.testing.assert_close(pc(x, only_none), node3, rtol=0, atol=1e-12)


def test_dnas_with_partial_channels_steps_and_checks_divisibility():
    m = tiny("dnas", channels=8, partial_channels=4)
    assert all(isinstance(c, PartialChannelCell) for c in m.supernet.search_cells)
    before = m.alpha.detach().clone()
    stats = m.step({"train": batch(1), "valid": batch(2)}, epoch=0, step=0, measure_gc=True)
    assert torch.isfinite(stats.loss_sum) and not torch.equal(before, m.alpha.detach())
    assert torch.isfinite(stats.gc_inner[:, 2:4]).all()
    with pytest.raises(ConfigError, match="divisible"):
        tiny("dnas", channels=6, partial_channels=4)
    with pytest.raises(ConfigError):
        resolve_config("dnas", preset="smoke", device="cpu", overrides={"partial_channels": "0"})


DNAS_ARGS = ("--epochs", "3", "--set", "cells_per_stage=5")   # 15 searchable cells, as in NB201


@pytest.fixture(scope="module")
def dnas_runs(method_cli, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dnas")
    run_all(method_cli, [("dnas", out, ("--seeds", "2", *DNAS_ARGS))])
    return out


@pytest.mark.slow
def test_dnas_two_seeds_record_15_layer_genotypes(dnas_runs):
    frames = [check_records(dnas_runs / f"dnas-cifar10-seed{s}", 3) for s in (0, 1)]
    for df in frames:
        assert all(len(layers) == 15 for layers in df.layer_genotypes)
        for layers, n in zip(df.layer_genotypes, df.distinct_layer_genotypes):
            assert all(Genotype.from_str(g) for g in layers) and n == len(set(layers))
        assert all(len(w) == 15 * 30 for w in df.layer_op_weights) and all(len(w) == 30 for w in df.op_weights)
        # the recorded cell is the shared σ(α) cell, and its op count and accuracy describe that cell
        cells = [Genotype.from_weights(np.reshape(w, (6, 5))) for w in df.op_weights]
        assert (df.genotype == [g.to_str() for g in cells]).all()
        assert not any("none" in g.ops for g in cells)   # 'none' is not a candidate by default
        assert (df.param_free_count == [g.param_free_count for g in cells]).all()
        assert (df.canonical_key == [g.canonical_key for g in cells]).all()
        assert all(Genotype.from_str(g) for g in df.majority_genotype)
    assert not np.array_equal(frames[0].layer_op_weights.iloc[-1], frames[1].layer_op_weights.iloc[-1])


@pytest.mark.slow
def test_dnas_resume_after_sigkill_reproduces_the_uninterrupted_run(method_cli, dnas_runs, tmp_path):
    assert_resume_reproduces(method_cli, "dnas", dnas_runs / "dnas-cifar10-seed0", tmp_path, 3,
                             "--seeds", "1", *DNAS_ARGS[2:])
