"""Packed seeds: K seeds of a DARTS-family method as one model with stacked parameters
(methods/packing.py, engine/packed_run.py, `nbs run --pack`).

The step is checked in float64, where K packed steps equal K solo steps to rounding (≤ 1e-10 here,
1e-16 seen); whole runs are checked on CPU in float32 against solo runs of the same seeds, within the
tolerances justified in packed_helpers.py; divergence of one seed, resume across modes and the CLI's
refusals end to end on real CIFAR-10 images (the session's fixtures).
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nasbench_stability.cli.main import main
from nasbench_stability.data.pipeline import BatchStream
from nasbench_stability.engine.checkpoint import load_checkpoint, restore_state
from nasbench_stability.engine.config import RunConfig, resolve_config
from nasbench_stability.engine.executor import PACK_BY_DEFAULT, run_seeds, will_pack
from nasbench_stability.engine.run import build_method
from nasbench_stability.errors import ConfigError
from nasbench_stability.methods.packing import clip_per_seed, pack, unpack
from nasbench_stability.methods.registry import get_method, list_methods

from packed_helpers import (K, SEEDS, SMALL, assert_records_close, max_difference, random_batches, records,
                            run_dir, stack_batches, state_tensors, status)

PACKABLE = {"darts-v1", "darts-v2", "single-darts", "mergenas-v1", "mergenas-v2"}
SOLO_ONLY = {"edas", "edas-inv", "alpha-max", "dnas", "factorized-act", "factorized-kernel", "nonfactorized-act"}
REGISTRY_PACKABLE = [m.name for m in list_methods() if m.packable]
STEP_ATOL = 1e-10   # float64: one packed step vs K solo steps


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as the `nbs` subprocesses of the suite run: on the 2 shared cores two OpenMP
    threads per op crawl when anything else runs (a smoke step measured 5× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    """Methods built inside this fixture hold float64 parameters; the default dtype is put back."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def tiny_config(method: str, seed: int, **overrides) -> RunConfig:
    return resolve_config(method, preset="smoke", seed=seed, device="cpu",
                          overrides={"channels": "8", "cells_per_stage": "1", **{k: str(v) for k, v in overrides.items()}})


def tiny_methods(method: str, seeds=SEEDS, **overrides) -> list:
    return [build_method(tiny_config(method, s, **overrides), num_classes=10, steps_per_epoch=10) for s in seeds]


# =================================================================================================
# 1. the step, in float64
# =================================================================================================
def test_the_packable_methods_are_the_darts_family_five():
    assert set(REGISTRY_PACKABLE) == PACKABLE
    assert {m.name for m in list_methods() if not m.packable} == SOLO_ONLY


@pytest.mark.parametrize("name", REGISTRY_PACKABLE)
def test_packed_step_equals_solo_steps_in_float64(name, float64):
    """K=3 seeds, 3 steps (gradient correlation measured on the first and last): the packed step's
    per-seed statistics equal each solo step's, and after `unpack` every parameter, buffer (BN running
    statistics, α's leftover gradient) and optimizer state tensor equals the solo method's."""
    solo = tiny_methods(name)
    assert solo[0].alpha.dtype == torch.float64
    assert max_difference(solo[0].alpha, solo[1].alpha) > 1e-4      # the seeds start apart
    fresh = [copy.deepcopy(m) for m in solo]                          # unstepped: `unpack` targets
    packed = pack([copy.deepcopy(m) for m in solo])
    assert packed.pack_size == K and packed.alpha.shape == (K, *solo[0].alpha.shape)

    for step in range(3):
        measure_gc = step != 1
        per_seed = [random_batches(s, step) for s in SEEDS]
        want = [m.step(b, 0, step, measure_gc) for m, b in zip(solo, per_seed)]
        got = packed.step(stack_batches(per_seed), 0, step, measure_gc)
        assert got.count == want[0].count
        assert torch.equal(got.correct, torch.stack([w.correct for w in want])), step
        for field in ("loss_sum", "op_grad", "gc_inner", "gc_cos"):
            if not measure_gc and field.startswith("gc"):
                assert getattr(got, field) is None and all(getattr(w, field) is None for w in want)
                continue
            stacked = torch.stack([getattr(w, field) for w in want])
            assert getattr(got, field).shape == stacked.shape, (field, step)
            assert max_difference(getattr(got, field), stacked) <= STEP_ATOL, (field, step)
        assert got.extra.keys() == want[0].extra.keys()
        if measure_gc:   # a method whose learnable ops measure gc measured something
            assert torch.isfinite(got.gc_inner).any()

    unpack(packed, fresh)
    for k, (u, s) in enumerate(zip(fresh, solo)):
        a, b = state_tensors(u), state_tensors(s)
        assert a.keys() == b.keys()
        assert any(n.endswith("momentum_buffer") for n in a) and any(n.endswith("exp_avg_sq") for n in a)
        for n in a:
            assert a[n].shape == b[n].shape, (k, n)
            assert max_difference(a[n], b[n]) <= STEP_ATOL, (k, n, max_difference(a[n], b[n]))
        # the optimizers carry on from the solo state: same hyper-parameters (the cosine lr included)
        for key, opt in u.optimizers().items():
            assert opt.state_dict()["param_groups"] == s.optimizers()[key].state_dict()["param_groups"]


# =================================================================================================
# 2. per-seed gradient clipping
# =================================================================================================
# packing.clip_per_seed takes each gradient's norm in float32 (`g.flatten(1).float()`), where torch's
# clip_grad_norm_ takes it in the gradients' dtype: with float64 gradients the clip coefficient is off
# by float32 rounding (~1e-8 relative), so a float64 packed step with an active clip no longer equals
# the solo step. In float32 (every real run) both agree to rounding. Strict: a fix turns these green.
FLOAT32_NORM_BUG = pytest.mark.xfail(strict=True, reason="clip_per_seed computes per-seed norms in float32 "
                                                       "(methods/packing.py), clip_grad_norm_ in the grads' dtype")
DTYPES = [pytest.param(torch.float32, 1e-6, id="float32"),
          pytest.param(torch.float64, 1e-12, id="float64", marks=FLOAT32_NORM_BUG)]


@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_clip_per_seed_is_clip_grad_norm_of_each_seed(dtype, rtol):
    """Seed 0 under the threshold (its gradients untouched), seeds 1 and 2 over it; a parameter
    without gradient is skipped as torch skips it."""
    g = torch.Generator().manual_seed(0)
    shapes = [(4, 5), (7,), (2, 3, 3)]
    grads = [torch.randn(K, *s, generator=g, dtype=dtype) for s in shapes]
    scale = torch.tensor([0.01, 3.0, 50.0], dtype=dtype)       # total norms ≈ 0.06, 18, 300 around max_norm 5
    params = []
    for gr in grads:
        p = torch.nn.Parameter(torch.zeros_like(gr))
        p.grad = gr * scale.view(-1, *[1] * (gr.dim() - 1))
        params.append(p)
    params.append(torch.nn.Parameter(torch.zeros(K, 3, dtype=dtype)))   # grad None
    before = [p.grad.clone() for p in params[:-1]]

    norms = clip_per_seed(params, 5.0)

    for k in range(K):
        solo = [torch.nn.Parameter(torch.zeros(s, dtype=dtype)) for s in shapes]
        solo.append(torch.nn.Parameter(torch.zeros(3, dtype=dtype)))
        for p, b in zip(solo, before):
            p.grad = b[k].clone()
        total = torch.nn.utils.clip_grad_norm_(solo, 5.0)
        torch.testing.assert_close(norms[k].to(dtype), total, rtol=rtol, atol=0)
        for p, q in zip(params[:-1], solo):
            torch.testing.assert_close(p.grad[k], q.grad, rtol=rtol, atol=0)
    assert norms[0] < 5.0 < norms[1] < norms[2]
    for p, b in zip(params[:-1], before):
        assert torch.equal(p.grad[0], b[0])                                   # under the threshold: unchanged
        assert not torch.equal(p.grad[1], b[1]) and not torch.equal(p.grad[2], b[2])
        assert p.grad.dtype == dtype
    clipped = torch.sqrt(sum(p.grad[1:].flatten(1).pow(2).sum(1) for p in params[:-1]))
    torch.testing.assert_close(clipped, torch.full((2,), 5.0, dtype=dtype), rtol=1e-5, atol=0)
    assert params[-1].grad is None


@pytest.mark.parametrize("dtype,rtol", [pytest.param(torch.float32, 1e-4, id="float32"),
                                        pytest.param(torch.float64, STEP_ATOL, id="float64", marks=FLOAT32_NORM_BUG)])
@pytest.mark.parametrize("name", ["darts-v1", "single-darts"])
def test_packed_step_with_an_active_clip_equals_solo_steps(name, dtype, rtol):
    """grad_clip=0.5 clips every seed (their norms are ≈ 2–3) in both steps: per seed, with α's
    gradient counted (clip_includes_alpha). A clip over all seeds' gradients at once would scale by
    another factor (~√3 apart). float32: measured ≤ 3e-6 relative to each tensor's largest entry."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        solo = tiny_methods(name, grad_clip=0.5)
        fresh = [copy.deepcopy(m) for m in solo]
        packed = pack([copy.deepcopy(m) for m in solo])
        for step in range(2):
            per_seed = [random_batches(s, step) for s in SEEDS]
            for m, b in zip(solo, per_seed):
                m.step(b, 0, step, True)
            packed.step(stack_batches(per_seed), 0, step, True)
    finally:
        torch.set_default_dtype(before)
    unpack(packed, fresh)
    for k, (u, s) in enumerate(zip(fresh, solo)):
        a, b = state_tensors(u), state_tensors(s)
        for n in a:
            bound = rtol * max(float(b[n].abs().max()), 1e-30) if dtype == torch.float32 else rtol
            assert max_difference(a[n], b[n]) <= bound, (k, n, max_difference(a[n], b[n]))


# =================================================================================================
# 3. pack / unpack
# =================================================================================================
def test_unpack_of_pack_is_exact_and_independent():
    """Methods with optimizer state (one solo step each) → pack → unpack into other objects: every
    state tensor equal, bit for bit; the packed object holds seed k's tensors at index k."""
    ms = tiny_methods("darts-v1")
    for s, m in enumerate(ms):
        m.step(random_batches(s, 0), 0, 0, False)
    packed = pack(ms)
    per_seed = [state_tensors(m) for m in ms]
    for name, t in state_tensors(packed).items():
        for k in range(K):
            want = per_seed[k][name]
            assert torch.equal(t[k] if t.shape != want.shape else t, want), (name, k)   # counters are shared

    copies = tiny_methods("darts-v1", seeds=[7, 8, 9])
    unpack(packed, copies)
    for k, (c, m) in enumerate(zip(copies, ms)):
        a, b = state_tensors(c), state_tensors(m)
        assert a.keys() == b.keys()
        for n in a:
            assert a[n].dtype == b[n].dtype and torch.equal(a[n], b[n]), (k, n)
        assert c.options == m.options
    with torch.no_grad():                          # the copies own their tensors
        packed.alpha.add_(1.0)
        next(packed.supernet.parameters()).add_(1.0)
    assert all(torch.equal(c.alpha, m.alpha) for c, m in zip(copies, ms))
    assert all(torch.equal(next(c.supernet.parameters()), next(m.supernet.parameters())) for c, m in zip(copies, ms))


def test_pack_refuses_mixed_options_and_methods():
    a, b = tiny_methods("darts-v1", seeds=[0, 1])
    (other_lr,) = tiny_methods("darts-v1", seeds=[2], w_lr=0.1)
    (v2,) = tiny_methods("darts-v2", seeds=[2])
    (merged,) = tiny_methods("mergenas-v1", seeds=[2])
    for mix in ([a, b, other_lr], [a, v2], [a, merged]):
        with pytest.raises(ValueError, match="same options"):
            pack(mix)


@pytest.mark.parametrize("name", sorted(SOLO_ONLY))
def test_solo_only_methods_do_not_pack(name):
    info = get_method(name)
    assert not info.packable and info.solo_reason and "not been written" not in info.solo_reason
    (m,) = tiny_methods(name, seeds=[0])
    assert not m.packable
    with pytest.raises(ValueError, match="does not pack") as err:
        pack([m, m])
    assert info.solo_reason in str(err.value)
