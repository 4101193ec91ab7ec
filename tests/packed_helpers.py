"""Helpers for the packed-seed tests (test_packed_seeds.py): tiny methods on random batches, every
state tensor of a method by name, and record comparisons between packed and solo runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasbench_stability.engine.records import TIMING_COLUMNS, read_records
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import NUM_EDGES, NUM_OPS, OP_INDEX

K = 3                                   # seeds per pack in these tests
SEEDS = list(range(K))

# ---- tolerances between a packed and a solo run of the same seeds (float32, CPU) -------------------
# The packed network is the same arithmetic as K solo ones, but in grouped kernels (a vmapped conv is
# one grouped conv, BN statistics and the loss are reductions over another memory layout), so fp32
# sums are taken in another order and results agree to rounding (~1e-7 relative), not bitwise. A few
# steps can amplify that rounding: Adam's first steps move each α by about its lr whatever the size of
# the gradient, so a rounding-level difference that flips the sign of a near-zero gradient entry moves
# that α by up to 2·lr per step (softmax weights by up to half that), and DARTS-V2's finite-difference
# Hessian-vector product divides rounding noise by a small ε. Measured with the runs of
# test_packed_seeds.py (SMALL below): op_weights ≤ 9e-6 apart (darts-v2; ≤ 2.3e-6 for the first-order
# methods, often exactly 0); with the default α init (std 1e-3) darts-v2 reached 1.1e-4. Bound: 1e-3 on
# the softmax/sigmoid weights, ~10× the worst seen (and about a_lr × steps: even one sign flip per step
# of these 2-3-step runs stays inside).
OP_WEIGHTS_ATOL = 1e-3
# The first step of a run sees identical weights and the same batch packed or solo: its loss differs
# only by summation order (measured ≤ 5e-7 on losses ≈ 2.3). Two seeds' first losses differ by > 1e-2,
# so this bound catches a seed fed another seed's batches.
FIRST_LOSS_RTOL = 1e-5
# Later losses sit downstream of the amplification above (measured ≤ 1.2e-6 with SMALL, ≤ 1.8e-3 for
# darts-v2 with the default α init); the seeds' losses differ by ≥ 2e-2.
LOSS_RTOL = 5e-3
# The recorded gradients (op_grad: the α gradient Adam saw; gc_inner: inner products of raw weight
# gradients, in float32) feel that amplification undamped by Adam: measured ≤ 4.8e-3 (op_grad),
# ≤ 7.4e-4 (gc_inner) and ≤ 4e-4 (gc_cos) of the run's largest entry (mergenas-v1 and darts-v2 seed 0;
# most seeds ≤ 2e-6). Bound 5e-2 of the largest entry: a gradient of another seed or batch is off by O(1).
GRAD_RTOL = 5e-2
# The checkpoints' state (weights, BN running statistics, α's leftover gradient, SGD momentum, Adam
# moments) holds the same gradients: measured ≤ 4.9e-3 of each tensor's largest entry (mergenas-v1 seed
# 0's Adam moments), ≤ 1e-5 for most. A state left out of `unpack` is off by O(1) (BN statistics at their
# initial values, momentum of another seed).
STATE_RTOL = GRAD_RTOL

# α init std 0.5 instead of 1e-3: the seeds' softmax weights then differ by ~0.1 (a seed mix-up is far
# outside OP_WEIGHTS_ATOL) and every edge's top-2 margin exceeds the tolerance, so the genotype check
# below compares real choices rather than near-ties. One step per epoch (8 images in batches of 8).
SMALL = {"data_subset": "8", "batch_size": "8", "eval_batches": "1", "alpha_init_std": "0.5"}


# ---- methods on random batches -------------------------------------------------------------------
def random_batches(seed: int, step: int, streams=("train", "valid", "train2"), n: int = 4, size: int = 32):
    """{stream: (x, y)} of random CIFAR-sized images in the default dtype. Smaller images are cheaper
    but leave the last stage's BN too few values per channel: at 8×8 a float64 step drifts apart by
    1e-9 for reasons that have nothing to do with packing."""
    g = torch.Generator().manual_seed(10_000 * seed + step)
    return {name: (torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g))
            for name in streams}


def stack_batches(per_seed: list[dict]) -> dict:
    """K solo batch dicts → one dict of (K, B, ...) tensors, as the engine feeds a pack."""
    return {name: (torch.stack([b[name][0] for b in per_seed]), torch.stack([b[name][1] for b in per_seed]))
            for name in per_seed[0]}


def state_tensors(method) -> dict[str, torch.Tensor]:
    """Every parameter, buffer and optimizer-state tensor (momentum, Adam moments and step counters)
    of a method, by a name that says which."""
    out = {f"param {n}": p.detach() for n, p in method.named_parameters()}
    out.update({f"buffer {n}": b.detach() for n, b in method.named_buffers()})
    for key, opt in method.optimizers().items():
        for pid, entry in opt.state_dict()["state"].items():
            for name, value in entry.items():
                out[f"optimizer {key} [{pid}] {name}"] = torch.as_tensor(value)
    return out


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| over entries (NaN where both are NaN counts as equal; NaN in one only as inf)."""
    a, b = a.detach().double(), b.detach().double()
    both_nan = torch.isnan(a) & torch.isnan(b)
    d = (a - b).abs().masked_fill(both_nan, 0.0).nan_to_num(nan=float("inf"))
    return float(d.max()) if d.numel() else 0.0


# ---- run directories -----------------------------------------------------------------------------
def run_dir(out: Path, method: str, seed: int) -> Path:
    return Path(out) / f"{method}-cifar10-seed{seed}"


def status(rd: Path) -> dict:
    return json.loads((rd / "status.json").read_text())


def records(rd: Path) -> pd.DataFrame:
    return read_records(rd).sort_values("epoch").reset_index(drop=True)


def weights_of(df: pd.DataFrame) -> np.ndarray:
    """(epochs, edges, ops) op weights of a records frame."""
    return np.stack([np.asarray(w, dtype=np.float64) for w in df.op_weights]).reshape(-1, NUM_EDGES, NUM_OPS)


def decisive_edges(weights: np.ndarray, derive_none: bool, margin: float) -> np.ndarray:
    """(epochs, edges) mask: the top-2 margin of the derivation's candidates exceeds ``margin``."""
    w = weights.copy()
    if not derive_none:
        w[..., OP_INDEX["none"]] = -np.inf
    top = np.sort(w, axis=-1)
    return (top[..., -1] - top[..., -2]) > margin


def assert_records_close(packed: pd.DataFrame, solo: pd.DataFrame, *, derive_none: bool = True,
                         exact: bool = False, what: str = "") -> dict[str, float]:
    """Records of one seed from two runs of the same config agree: bookkeeping columns exactly; op
    weights within OP_WEIGHTS_ATOL; losses within FIRST_LOSS_RTOL (first epoch) / LOSS_RTOL; the
    derived op on every edge whose top-2 margin exceeds 2·OP_WEIGHTS_ATOL (two weight matrices that
    close can order a nearer tie either way); accuracies within one example. ``exact``: every column
    but the timing ones equal (both sides computed the same way). Returns the differences seen."""
    assert list(packed.columns) == list(solo.columns), what
    assert packed.epoch.tolist() == solo.epoch.tolist(), what
    if exact:
        cols = [c for c in packed.columns if c not in TIMING_COLUMNS]
        pd.testing.assert_frame_equal(packed[cols], solo[cols], check_exact=True, obj=what or "records")
        return {}
    for col in ("run", "method", "dataset", "seed", "preset", "epochs", "lr_w", "lr_alpha", "diverged",
                "track_running_stats", "data_split", "data_source"):
        assert packed[col].tolist() == solo[col].tolist(), (what, col)
    wp, ws = weights_of(packed), weights_of(solo)
    dw = float(np.abs(wp - ws).max())
    assert dw <= OP_WEIGHTS_ATOL, (what, "op_weights", dw)
    np.testing.assert_allclose(packed.train_loss.iloc[:1], solo.train_loss.iloc[:1], rtol=FIRST_LOSS_RTOL,
                               err_msg=f"{what}: first epoch's train loss")
    np.testing.assert_allclose(packed.train_loss, solo.train_loss, rtol=LOSS_RTOL, err_msg=f"{what}: train_loss")
    np.testing.assert_allclose(packed.valid_loss, solo.valid_loss, rtol=LOSS_RTOL, err_msg=f"{what}: valid_loss")
    one_example = 100.0 / 8 + 1e-9
    assert (packed.train_acc - solo.train_acc).abs().max() <= one_example, what
    assert (packed.valid_acc - solo.valid_acc).abs().max() <= one_example, what
    decisive = decisive_edges(ws, derive_none, 2 * OP_WEIGHTS_ATOL)
    for e, (gp, gs) in enumerate(zip(packed.genotype, solo.genotype)):
        ops_p, ops_s = Genotype.from_str(gp).ops, Genotype.from_str(gs).ops
        for edge in np.flatnonzero(decisive[e]):
            assert ops_p[edge] == ops_s[edge], (what, f"epoch {e + 1} edge {edge}", gp, gs)
    for col in ("op_grad", "gc_inner", "gc_cos"):   # NaN: not measured / not learnable, in both runs alike
        gp, gs = (np.stack([np.asarray(v, dtype=np.float64) for v in df[col]]) for df in (packed, solo))
        assert np.array_equal(np.isnan(gp), np.isnan(gs)), (what, col)
        if np.isfinite(gs).any():
            scale = np.nanmax(np.abs(gs))
            np.testing.assert_allclose(gp, gs, rtol=0, atol=GRAD_RTOL * scale, err_msg=f"{what}: {col}")
    same = packed.genotype == solo.genotype
    for col in [c for c in packed.columns if c.startswith("bench_")]:   # the same cell scores the same
        np.testing.assert_array_equal(packed[col][same], solo[col][same], err_msg=f"{what}: {col}")
    return {"op_weights": dw, "train_loss": float((packed.train_loss - solo.train_loss).abs().max()),
            "valid_loss": float((packed.valid_loss - solo.valid_loss).abs().max()),
            "decisive_edges": int(decisive.sum()), "edges": int(decisive.size)}
