"""Packed seeds: K seeds of a DARTS-family method as one model with stacked parameters
(methods/packing.py, engine/packed_run.py, `nbs run --pack`).

The step is checked in float64, where K packed steps equal K solo steps to rounding (≤ 1e-10 here,
1e-16 seen); whole runs are checked on CPU in float32 against solo runs of the same seeds, within the
tolerances justified in packed_helpers.py; divergence of one seed, resume across modes and the CLI's
refusals end to end on real CIFAR-10 images (the session's fixtures).
"""

from __future__ import annotations

import copy
import dataclasses
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

from packed_helpers import (K, OP_WEIGHTS_ATOL, SEEDS, SMALL, STATE_RTOL, assert_records_close, max_difference, random_batches,
                            records, run_dir, stack_batches, state_tensors, status, weights_of)

PACKABLE = {"darts-v1", "darts-v2", "single-darts", "mergenas-v1", "mergenas-v2", "pc-darts", "fair-darts",
            "darts-minus", "beta-darts", "rdarts-l2", "darts-es"}
SOLO_ONLY = {"edas", "edas-inv", "alpha-max", "dnas", "factorized-act", "factorized-kernel", "nonfactorized-act",
             "darts-pt", "darts-pt-fix-alpha", "gdas", "sdarts-rs", "sdarts-adv", "drnas", "rdarts-dp", "rsps", "setn",
             "enas", "cdarts"}
REGISTRY_PACKABLE = [m.name for m in list_methods() if m.packable]
# packable methods whose step is DartsFamily's own code with other option values (R-DARTS(L2): a weight
# decay; DARTS-ES: stops between epochs): their packed step is darts-v1's, checked below
# (test_method_stabilizers_reg.py checks that they override no step code)
STEP_OF_DARTS_V1 = {"rdarts-l2", "darts-es"}
STEP_ATOL = 1e-10   # float64: one packed step vs K solo steps


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as the `nbs` subprocesses of the suite run: on the 2 shared cores two OpenMP
    threads per op crawl when anything else runs (a smoke step measured 5× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    assert {m.name for m in list_methods() if not m.packable and not m.table_search} == SOLO_ONLY


@pytest.mark.parametrize("name", [m for m in REGISTRY_PACKABLE if m not in STEP_OF_DARTS_V1])
def test_packed_step_equals_solo_steps_in_float64(name, float64):
    """K=3 seeds, 3 steps (gradient correlation measured on the first and last): the packed step's
    per-seed statistics equal each solo step's, and after `unpack` every parameter, buffer (BN running
    statistics, α's leftover gradient) and optimizer state tensor equals the solo method's. These
    batches keep every gradient norm under grad_clip=5 (≈ 2-3), so the clip's scaling is checked by
    test_packed_step_with_an_active_clip_equals_solo_steps."""
    # FairDARTS starts every α at 0 (its code's choice): a random start here, so that seeds differ from step 0
    solo = tiny_methods(name, **({"alpha_init_std": 1e-3} if name == "fair-darts" else {}))
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
# torch's clip_grad_norm_ takes the norm in the gradients' dtype; so must clip_per_seed, or a float64
# packed step with an active clip stops equalling the solo step (float32 norms: ~1e-8 relative off)
DTYPES = [pytest.param(torch.float32, 1e-6, id="float32"),
          pytest.param(torch.float64, 1e-12, id="float64")]


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
                                        pytest.param(torch.float64, STEP_ATOL, id="float64")])
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
    assert state_tensors(packed).keys() == per_seed[0].keys()
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


# =================================================================================================
# end to end on CPU: real CIFAR-10 images (the session's fixtures), smoke preset, one step an epoch
# =================================================================================================
class _Stop(Exception):
    """Raised from the log callback: the run stops exactly after the line's epoch was checkpointed."""


def stop_at(pattern: str):
    """A log callback that raises _Stop at the first line matching ``pattern``: the engine logs
    "<run> epoch E/N: ..." after that seed's record, checkpoint and status were written."""

    def log(line: str) -> None:
        if re.search(pattern, line):
            raise _Stop(line)

    return log


@pytest.fixture(scope="module")
def data(bench_path, cifar_root, nbs_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBS_HOME", str(nbs_home))
        yield {"benchmark_path": bench_path, "data_root": cifar_root, "home": nbs_home}


def search(data, method: str, out: Path, *, pack: bool | None, epochs: int, seeds=SEEDS, gc_every: int = 0,
           log=None):
    return run_seeds(method, list(seeds), preset="smoke", epochs=epochs, device="cpu", out=out,
                     overrides={**SMALL, "gc_every": str(gc_every)}, data_root=data["data_root"],
                     benchmark_path=data["benchmark_path"], progress=False, pack=pack,
                     log=log or (lambda line: None))


def derive_none(method: str) -> bool:
    return get_method(method).default_options().derive_none


DARTS_EPOCHS = 3


@pytest.fixture(scope="module")
def darts_v1(data, tmp_path_factory):
    """darts-v1, seeds 0-2, 3 epochs, uninterrupted: packed and solo (the references of the
    divergence and resume tests)."""
    root = tmp_path_factory.mktemp("darts-v1")
    packed = search(data, "darts-v1", root / "packed", pack=True, epochs=DARTS_EPOCHS)
    solo = search(data, "darts-v1", root / "solo", pack=False, epochs=DARTS_EPOCHS)
    return {"packed": root / "packed", "solo": root / "solo", "results": {"packed": packed, "solo": solo}}


# (method, epochs, gc_every): gradient correlation measured in every epoch of the runs that have it
E2E = [("darts-v1", DARTS_EPOCHS, 0), ("darts-v2", 2, 1), ("single-darts", 2, 1), ("mergenas-v1", 2, 1),
       ("mergenas-v2", 2, 1)]


@pytest.mark.parametrize("method,epochs,gc_every", E2E, ids=[m for m, _, _ in E2E])
def test_packed_run_matches_solo_run(method, epochs, gc_every, data, request, tmp_path):
    """`run_seeds(pack=True)` vs `run_seeds(pack=False)` into separate --out folders: each seed has its
    own complete run directory (the same config.json either way), its records say pack_size 3 vs 1 and
    agree within the tolerances of packed_helpers.py, and its packed checkpoint is a solo checkpoint."""
    if method == "darts-v1":
        ref = request.getfixturevalue("darts_v1")
        outs, results = {m: ref[m] for m in ("packed", "solo")}, ref["results"]
    else:
        outs = {"packed": tmp_path / "packed", "solo": tmp_path / "solo"}
        results = {mode: search(data, method, outs[mode], pack=mode == "packed", epochs=epochs, gc_every=gc_every)
                   for mode in ("packed", "solo")}
    for mode, out in outs.items():
        assert sorted(p.name for p in out.iterdir()) == [run_dir(out, method, s).name for s in SEEDS]
        for s, r in zip(SEEDS, results[mode]):
            rd = run_dir(out, method, s)
            assert r.run_dir == rd and r.state == "finished" and r.epochs_done == epochs
            assert {"config.json", "status.json", "checkpoint.pt", "records"} <= {p.name for p in rd.iterdir()}
            assert status(rd)["state"] == "finished" and status(rd)["epochs_done"] == epochs
            assert sorted(p.name for p in (rd / "records").iterdir()) == [f"epoch-{e:04d}.parquet"
                                                                         for e in range(1, epochs + 1)]
            assert r.final_genotype == records(rd).genotype.iloc[-1]
    seen = []
    for s in SEEDS:
        p_dir, s_dir = run_dir(outs["packed"], method, s), run_dir(outs["solo"], method, s)
        assert json.loads((p_dir / "config.json").read_text()) == json.loads((s_dir / "config.json").read_text())
        p, q = records(p_dir), records(s_dir)
        assert p.pack_size.tolist() == [K] * epochs and q.pack_size.tolist() == [1] * epochs
        assert (p.seed == s).all()
        seen.append(assert_records_close(p, q, derive_none=derive_none(method), what=f"{method} seed {s}"))
        if gc_every:   # gradient correlation was measured (compared in assert_records_close)
            assert np.isfinite(np.stack(p.gc_inner.map(np.asarray))).any()
        assert_solo_checkpoint(p_dir, s_dir, epochs)
    assert sum(d["decisive_edges"] for d in seen) > 0   # the genotype comparison compared something
    # the seeds differ from one another by far more than the tolerance: a seed mix-up shows
    first = [records(run_dir(outs["solo"], method, s)) for s in SEEDS]
    assert min(np.abs(weights_of(first[0]) - weights_of(f)).max() for f in first[1:]) > 100 * OP_WEIGHTS_ATOL
    print(f"\n{method}: packed vs solo", seen)


def assert_solo_checkpoint(packed_run: Path, solo_run: Path, epochs: int) -> None:
    """A packed seed's checkpoint loads into a freshly built solo method (`load_checkpoint` +
    `restore_state`, as a resume does): nothing in it has a seed axis, it holds the state the last
    record describes, and every tensor of it is the solo run's within STATE_RTOL."""
    loaded = {}
    for run in (packed_run, solo_run):
        cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
        payload = load_checkpoint(run / "checkpoint.pt", config_hash=cfg.config_hash, device=torch.device("cpu"))
        assert payload["epochs_done"] == epochs
        method = build_method(cfg, num_classes=10, steps_per_epoch=1)
        shapes = {n: t.shape for n, t in state_tensors(method).items() if not n.startswith("optimizer")}
        restore_state(method, payload, run / "checkpoint.pt", rng=True)
        assert method.pack_size is None
        for key, opt in method.optimizers().items():   # load_state_dict does not check state shapes: we do
            for group in opt.param_groups:
                for p in group["params"]:
                    assert opt.state[p], (run, key, "optimizer state missing")
                    for name, value in opt.state[p].items():
                        if torch.is_tensor(value) and value.dim() > 0:
                            assert value.shape == p.shape, (run, key, name)
        assert {n: t.shape for n, t in state_tensors(method).items() if n in shapes} == shapes
        loaded[run] = method
    packed, solo = loaded[packed_run], loaded[solo_run]
    last = records(packed_run).iloc[-1]
    np.testing.assert_array_equal(packed.op_weights().astype(np.float64).ravel(), np.asarray(last.op_weights))
    assert packed.derive().to_str() == last.genotype
    a, b = state_tensors(packed), state_tensors(solo)
    assert a.keys() == b.keys()
    for n in a:
        if a[n].is_floating_point():
            bound = STATE_RTOL * max(float(b[n].abs().max()), 1e-30) if b[n].numel() else 0.0
            assert max_difference(a[n], b[n]) <= bound, (packed_run.name, n, max_difference(a[n], b[n]))
        else:
            assert torch.equal(a[n], b[n]), (packed_run.name, n)


# =================================================================================================
# 5. one seed diverges
# =================================================================================================
def cli_args(data, out: Path, *args: str, method: str = "darts-v1", seeds: int = K, small: bool = True) -> list[str]:
    """`nbs run` of this file's darts-v1 runs (``small``: the same config as `search`, 3 epochs)."""
    sets = [a for k, v in {**SMALL, "gc_every": "0"}.items() for a in ("--set", f"{k}={v}")] if small else []
    return ["run", "--method", method, "--seeds", str(seeds), "--device", "cpu", "--preset", "smoke", "--epochs",
            str(DARTS_EPOCHS), "--quiet", "--out", str(out), "--benchmark", str(data["benchmark_path"]),
            "--data-root", str(data["data_root"]), *sets, *args]


def invoke(*args: str, home: Path | None = None):
    """`nbs ARGS...` in this process; an exception other than the CLI's own exit is re-raised."""
    result = CliRunner().invoke(main, list(args), env={"NBS_HOME": str(home)} if home else None)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_a_diverging_seed_leaves_the_pack_and_the_others_finish(data, darts_v1, tmp_path, monkeypatch):
    """Seed 1's training images are +inf from epoch 2 on: `nbs run --pack` records seed 1 as diverged
    at epoch 2 and exits 3; seeds 0 and 2 run all 3 epochs (the last as a pack of 2), and their records
    are those of the undisturbed packed run: bit for bit while the pack was the same, within the
    tolerances after it shrank. NaNs of one seed never reach another."""
    real_epoch = BatchStream.epoch

    def poisoned(self, epoch, start=0):
        for x, y in real_epoch(self, epoch, start):
            if self.stream == "train" and self.seed == 1 and epoch >= 1:
                x = torch.full_like(x, math.inf)
            yield x, y

    monkeypatch.setattr(BatchStream, "epoch", poisoned)
    result = invoke(*cli_args(data, tmp_path, "--pack"), home=data["home"])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "nbs: darts-v1-cifar10-seed1 diverged at epoch 2 (non-finite training loss); records kept"]
    for s in (0, 2):
        assert f"{run_dir(tmp_path, 'darts-v1', s)}: finished after 3 epochs" in result.stdout

    lost = run_dir(tmp_path, "darts-v1", 1)
    assert status(lost)["state"] == "diverged" and status(lost)["epochs_done"] == 2
    df = records(lost)
    assert df.epoch.tolist() == [1, 2] and df.diverged.tolist() == [False, True]
    assert not np.isfinite(df.train_loss.iloc[1]) and np.isnan(df.valid_loss.iloc[1])
    ref = records(run_dir(darts_v1["packed"], "darts-v1", 1))
    assert_records_close(df.iloc[:1], ref.iloc[:1], exact=True, what="seed 1 before it diverged")
    # its checkpoint stays the last finite state, as a solo run's does
    cfg = RunConfig.from_dict(json.loads((lost / "config.json").read_text()))
    assert load_checkpoint(lost / "checkpoint.pt", config_hash=cfg.config_hash,
                           device=torch.device("cpu"))["epochs_done"] == 1

    for s in (0, 2):
        rd = run_dir(tmp_path, "darts-v1", s)
        assert status(rd)["state"] == "finished" and status(rd)["epochs_done"] == DARTS_EPOCHS
        got, want = records(rd), records(run_dir(darts_v1["packed"], "darts-v1", s))
        assert got.pack_size.tolist() == [3, 3, 2] and not got.diverged.any()
        assert np.isfinite(got.train_loss).all() and np.isfinite(np.stack(got.op_weights.map(np.asarray))).all()
        assert_records_close(got.iloc[:2], want.iloc[:2], exact=True, what=f"seed {s}, epochs 1-2")
        assert_records_close(got.drop(columns="pack_size"), want.drop(columns="pack_size"),
                             what=f"seed {s} after the pack shrank")
        assert got.genotype.tolist() == want.genotype.tolist()

    # asked again (nothing poisoned now): the diverged seed fails again, nothing is re-run
    monkeypatch.setattr(BatchStream, "epoch", real_epoch)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    again = invoke(*cli_args(data, tmp_path, "--pack"), home=data["home"])
    assert again.exit_code == 3 and "already diverged at epoch 2" in again.stderr
    assert again.stdout.count("already finished") == 2
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == before


# =================================================================================================
# 6. resume across modes
# =================================================================================================
def assert_matches_references(out: Path, darts_v1, pack_sizes: dict[int, list[int]], what: str) -> None:
    """Every seed finished, with the given pack sizes, and records within the tolerances of both
    uninterrupted runs (packed and solo)."""
    for s in SEEDS:
        rd = run_dir(out, "darts-v1", s)
        assert status(rd)["state"] == "finished" and status(rd)["epochs_done"] == DARTS_EPOCHS
        got = records(rd)
        assert got.pack_size.tolist() == pack_sizes[s], (what, s)
        for mode in ("packed", "solo"):
            want = records(run_dir(darts_v1[mode], "darts-v1", s))
            assert_records_close(got.drop(columns="pack_size"), want.drop(columns="pack_size"),
                                 what=f"{what}: seed {s} vs uninterrupted {mode}")


def test_packed_run_interrupted_after_epoch_1_finishes_solo(data, darts_v1, tmp_path):
    with pytest.raises(_Stop):   # stopped once seed 2, the last of the pack, has written epoch 1
        search(data, "darts-v1", tmp_path, pack=True, epochs=DARTS_EPOCHS, log=stop_at(r"seed2 epoch 1/3"))
    for s in SEEDS:
        rd = run_dir(tmp_path, "darts-v1", s)
        assert (status(rd)["state"], status(rd)["epochs_done"]) == ("running", 1)
        # both sides packed, K=3, same process: the same floats
        assert_records_close(records(rd), records(run_dir(darts_v1["packed"], "darts-v1", s)).iloc[:1], exact=True,
                             what=f"seed {s} epoch 1")
    lines: list[str] = []
    results = search(data, "darts-v1", tmp_path, pack=False, epochs=DARTS_EPOCHS, log=lines.append)
    assert [r.state for r in results] == ["finished"] * K
    assert sum("resuming after epoch 1/3" in line for line in lines) == K
    assert_matches_references(tmp_path, darts_v1, {s: [3, 1, 1] for s in SEEDS}, "packed → solo")


def test_solo_runs_interrupted_after_epoch_1_finish_packed(data, darts_v1, tmp_path):
    """Each seed stopped solo after epoch 1; seed 0 finished solo (bit for bit the uninterrupted solo
    run: both sides solo); then `pack=True` finds seed 0 finished and packs seeds 1 and 2."""
    for s in SEEDS:
        with pytest.raises(_Stop):
            search(data, "darts-v1", tmp_path, pack=False, epochs=DARTS_EPOCHS, seeds=[s],
                   log=stop_at(r"epoch 1/3"))
        rd = run_dir(tmp_path, "darts-v1", s)
        assert status(rd)["epochs_done"] == 1
        assert_records_close(records(rd), records(run_dir(darts_v1["solo"], "darts-v1", s)).iloc[:1], exact=True,
                             what=f"seed {s} epoch 1")
    (r0,) = search(data, "darts-v1", tmp_path, pack=False, epochs=DARTS_EPOCHS, seeds=[0])
    assert r0.state == "finished"
    assert_records_close(records(run_dir(tmp_path, "darts-v1", 0)), records(run_dir(darts_v1["solo"], "darts-v1", 0)),
                         exact=True, what="seed 0 resumed solo")

    lines: list[str] = []
    results = search(data, "darts-v1", tmp_path, pack=True, epochs=DARTS_EPOCHS, log=lines.append)
    assert [r.state for r in results] == ["already-finished", "finished", "finished"]
    assert [s for s in SEEDS if any(f"seed{s}: resuming after epoch 1/3" in line for line in lines)] == [1, 2]
    assert_matches_references(tmp_path, darts_v1, {0: [1, 1, 1], 1: [1, 2, 2], 2: [1, 2, 2]}, "solo → packed")


def test_pack_interrupted_between_seeds_resumes_as_two_packs(data, darts_v1, tmp_path):
    """Stopped right after seed 0 wrote epoch 1, before seeds 1 and 2 did: their run directories, which
    held no epoch yet, are removed again; the next packed call runs seeds 1-2 from scratch as one pack
    and seed 0 from epoch 1 as another."""
    with pytest.raises(_Stop):
        search(data, "darts-v1", tmp_path, pack=True, epochs=DARTS_EPOCHS, log=stop_at(r"seed0 epoch 1/3"))
    assert status(run_dir(tmp_path, "darts-v1", 0))["epochs_done"] == 1
    assert_records_close(records(run_dir(tmp_path, "darts-v1", 0)),
                         records(run_dir(darts_v1["packed"], "darts-v1", 0)).iloc[:1], exact=True, what="seed 0")
    assert not run_dir(tmp_path, "darts-v1", 1).exists() and not run_dir(tmp_path, "darts-v1", 2).exists()

    lines: list[str] = []
    results = search(data, "darts-v1", tmp_path, pack=True, epochs=DARTS_EPOCHS, log=lines.append)
    assert [r.state for r in results] == ["finished"] * K
    assert [s for s in SEEDS if any(f"seed{s}: resuming" in line for line in lines)] == [0]
    assert_matches_references(tmp_path, darts_v1, {0: [3, 1, 1], 1: [2, 2, 2], 2: [2, 2, 2]}, "two packs")


# =================================================================================================
# 7. the command line
# =================================================================================================
@pytest.mark.parametrize("method,seeds,args,needles", [
    ("darts-v1", K, ["--pack", "--jobs", "2"], ["--pack", "--jobs"]),
    ("edas", 2, ["--pack"], ["edas does not pack", get_method("edas").solo_reason, "without --pack"]),
], ids=["pack-with-jobs", "pack-a-solo-method"])
def test_pack_that_cannot_be_is_a_one_line_error(data, tmp_path, method, seeds, args, needles):
    """Refused before any work: exit 2, one line, no traceback, no run directory (no --out folder)."""
    out = tmp_path / "runs"
    result = invoke(*cli_args(data, out, *args, method=method, seeds=seeds, small=False), home=data["home"])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nbs: error:") and "Traceback" not in result.output
    for n in needles:
        assert n in err, err
    assert not out.exists()


def test_nbs_methods_says_which_methods_pack():
    result = invoke("methods")
    assert result.exit_code == 0
    marks = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if words and words[0] in PACKABLE | SOLO_ONLY:
            marks[words[0]] = words[1] == "s"
    assert marks == {name: name in SOLO_ONLY for name in PACKABLE | SOLO_ONLY}
    assert marks["edas"] and not marks["darts-v1"]
    assert "s = runs its seeds solo" in result.stdout

    shown = invoke("methods", "--show", "darts-v1").stdout.splitlines()
    (seeds,) = [line for line in shown if line.startswith("seeds:")]
    assert "packed" in seeds
    shown = invoke("methods", "--show", "edas").stdout.splitlines()
    (seeds,) = [line for line in shown if line.startswith("seeds:")]
    assert "solo" in seeds and get_method("edas").solo_reason in seeds


def test_seeds_pack_by_default_on_cuda_only():
    """will_pack: the device's default when --pack is not given; one seed never packs."""
    cpu = [tiny_config("darts-v1", s) for s in SEEDS]
    cuda = [dataclasses.replace(c, device="cuda") for c in cpu]   # no CUDA needed to ask
    assert PACK_BY_DEFAULT == {"cuda": True, "cpu": False}
    assert will_pack(cuda, None) and not will_pack(cpu, None)
    assert not will_pack(cuda[:1], None) and not will_pack(cuda, None, jobs=2) and not will_pack(cuda, False)
    assert will_pack(cpu, True) and not will_pack(cpu[:1], True)
    solo = [dataclasses.replace(tiny_config("edas", s), device="cuda") for s in SEEDS]
    assert not will_pack(solo, None)
    with pytest.raises(ConfigError, match="does not pack"):
        will_pack(solo, True)
    with pytest.raises(ConfigError, match="--jobs"):
        will_pack(cpu, True, jobs=2)


@pytest.mark.parametrize("name,overrides,blocker", [
    ("darts-v1", {}, None), ("darts-v2", {}, None), ("single-darts", {}, None), ("mergenas-v1", {}, None),
    ("dnas", {}, None),
    ("darts-v1", {"lr_schedule": "per-step"}, "per-step"),
    ("edas-inv", {}, "drawn on the host"), ("alpha-max", {}, "drawn on the host"),
    ("factorized-kernel", {}, "reseeded on the host"), ("nonfactorized-act", {}, "reseeded on the host"),
])
def test_graph_blocker_says_why_a_step_cannot_be_graphed(name, overrides, blocker):
    from nasbench_stability.engine.config import resolve_config
    from nasbench_stability.engine.run import build_method

    cfg = resolve_config(name, preset="smoke", device="cpu",
                         overrides={"channels": "8", "cells_per_stage": "1", **overrides})
    method = build_method(cfg, 10, 4)
    found = method.graph_blocker()
    assert method.graph_static() == (found is None)
    assert (found is None) if blocker is None else (blocker in found)
