"""PC-DARTS' NB201 defaults are DrNAS' NB201 PC-DARTS (issue 22 item 4): xiangning-chen/DrNAS
``201-space/train_search.py --method darts --k K``, the source of the quoted 93.41 ± 0.30. Each default
against the line it was read from (and, where the mirror of that repository is on this machine, the line
itself), the describe text naming those lines, and the default model (no edge normalization) stepping at
smoke size. PC-DARTS' edge normalization (the option) is tested in test_method_stabilizers_perturb.py."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
import torch

from nasbench_stability.methods.describe import describe_method, step_line
from nasbench_stability.methods.registry import get_method
from nasbench_stability.methods.stabilizers.common import DartsCodeClip
from nasbench_stability.space.partial_channel_cell import PartialChannelCell

from conftest import METHOD_RUN_ARGS
from method_helpers import batch, check_records, tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DRNAS = "DrNAS code: xiangning-chen/DrNAS"
SCRIPT, MODEL, CELLS, ARCH = "201-space/train_search.py", "201-space/search_model.py", "201-space/search_cells.py", \
    "architect.py"

# option: (value, the file:line the describe text names, what that line of xiangning-chen/DrNAS says)
DRNAS_201_SETTINGS = {
    "epochs": (100, f"{SCRIPT}:41", "'--epochs', type=int, default=100"),                 # train_search.py:41
    "batch_size": (64, f"{SCRIPT}:34", "'--batch_size', type=int, default=64"),           # train_search.py:34
    "w_lr": (0.025, f"{SCRIPT}:35", "'--learning_rate', type=float, default=0.025"),      # train_search.py:35
    "w_lr_min": (0.001, f"{SCRIPT}:36", "'--learning_rate_min', type=float, default=0.001"),  # :36
    "w_momentum": (0.9, f"{SCRIPT}:37", "'--momentum', type=float, default=0.9"),         # train_search.py:37
    "w_weight_decay": (3e-4, f"{SCRIPT}:38", "'--weight_decay', type=float, default=3e-4"),  # :38
    "grad_clip": (5.0, f"{SCRIPT}:48", "'--grad_clip', type=float, default=5"),           # train_search.py:48
    "order": (1, f"{SCRIPT}:50", "'--unrolled', action='store_true', default=False"),     # train_search.py:50
    "a_lr": (3e-4, f"{SCRIPT}:51", "'--arch_learning_rate', type=float, default=3e-4"),   # train_search.py:51
    "activation": ("softmax", f"{SCRIPT}:147-149", "species='softmax'"),                  # --method darts
    "w_nesterov": (False, f"{SCRIPT}:153-157", "momentum=args.momentum"),                 # SGD, no nesterov
    "lr_schedule": ("per-epoch", f"{SCRIPT}:192-193", "CosineAnnealingLR"),               # stepped at :237
    "warmup_epochs": (0, f"{SCRIPT}:264", "# if epoch >= 15:"),                           # commented out
    "step_order": ("alpha-w", f"{SCRIPT}:265", "architect.step("),                        # then the w step
    # clip over model.parameters(), α an nn.Parameter (search_model.py:50), its α-step gradient zeroed at :267
    "clip_includes_alpha": (True, f"{SCRIPT}:273", "clip_grad_norm_(model.parameters(), args.grad_clip)"),
    "mode": ("bilevel", f"{SCRIPT}:182-190", "indices[split:num_train]"),                 # α on the other half
    "a_optimizer": ("adam", f"{ARCH}:21", "torch.optim.Adam("),                           # architect.py:21
    "a_beta1": (0.5, f"{ARCH}:21-22", "betas=(0.5, 0.999)"),                              # architect.py:22
    "a_beta2": (0.999, f"{ARCH}:21-22", "betas=(0.5, 0.999)"),
    "a_weight_decay": (1e-3, f"{ARCH}:17-22", "weight_decay = args.reg_scale"),           # reg_scale 1e-3
    "unrolled_eps": (0.01, f"{ARCH}:89-90", "r=1e-2"),                                    # order 2 only
    "track_running_stats": (True, f"{MODEL}:18", "affine=False, track_running_stats=True"),  # search_model.py:18
    "alpha_init_std": (1e-3, f"{MODEL}:50", "nn.Parameter( 1e-3*torch.randn(num_edge, len(search_space)) )"),
    "derive_none": (True, f"{MODEL}:104-116", "op_name = self.op_names[ weights.argmax().item() ]"),  # 'none' in
    "edge_normalization": (False, f"{CELLS}:168-177", "nodes.append( sum(inter_nodes) )"),  # unweighted sum
}
# K: the script's --k (train_search.py:55, default 1 = DARTS) does not say which K its PC-DARTS row used;
# 4 is our reading (PC-DARTS' own K; DrNAS' partial-channel cell search_cells.py:136 and its progressive
# script train_search_progressive.py:53 default to 4)
PARTIAL_CHANNELS = 4
OTHER_LINES = {   # lines the sources above cite beside their main one
    (SCRIPT, 55): "'--k', type=int, default=1",
    (SCRIPT, 59): "'--reg_scale', type=float, default=1e-3",
    (SCRIPT, 237): "scheduler.step()",
    (SCRIPT, 260): "next(iter(valid_queue))",
    (SCRIPT, 267): "architect.optimizer.zero_grad()",
    (MODEL, 39): "track_running_stats, k)",
    (CELLS, 136): "track_running_stats=True, k=4):",
    ("201-space/train_search_progressive.py", 53): "'--k', type=int, default=4",
}


def test_defaults_are_drnas_201_space_settings():
    opts = get_method("pc-darts").default_options()
    got = {name: getattr(opts, name) for name in DRNAS_201_SETTINGS}
    assert got == {name: value for name, (value, _, _) in DRNAS_201_SETTINGS.items()}
    assert opts.partial_channels == PARTIAL_CHANNELS
    # the same script as SDARTS' and β-DARTS': their shared settings agree with β-DARTS' (its own source lines)
    beta = get_method("beta-darts").default_options()
    shared = {f.name for f in dataclasses.fields(beta)} & set(DRNAS_201_SETTINGS)
    assert {n: getattr(beta, n) for n in shared} == {n: got[n] for n in shared}


def option_lines(name: str) -> dict[str, str]:
    lines = [line.strip() for line in describe_method(name).splitlines()]
    return {line.split(" = ")[0]: line for line in lines if " = " in line and " · " in line}


def test_describe_names_the_drnas_file_and_line_of_every_default():
    shown = option_lines("pc-darts")
    for name, (value, where, _) in DRNAS_201_SETTINGS.items():
        assert f"{name} = {value}" in shown[name], name
        assert f"· {DRNAS} {where}" in shown[name], name
    k = shown["partial_channels"]
    assert k.startswith("partial_channels = 4") and "our choice — a reading" in k and f"{SCRIPT}:55" in k
    text = describe_method("pc-darts")
    assert "93.41 ± 0.30" in text and "K = 4 is a reading" in text
    assert text.split("one step: ")[1].startswith("α step on a valid batch, then weight step")


def drnas_line(path: str, line: int) -> str:
    mirror = Path(os.environ.get("NBS_DRNAS_MIRROR", "/work/.mirror/xiangning-chen+DrNAS/repo"))
    if not mirror.is_dir():
        pytest.skip(f"no mirror of xiangning-chen/DrNAS at {mirror} (set NBS_DRNAS_MIRROR)")
    text = subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout
    return text.splitlines()[line - 1]


def test_the_cited_lines_say_what_the_defaults_are():
    for name, (_, where, says) in DRNAS_201_SETTINGS.items():
        path, lines = where.rsplit(":", 1)
        first, last = (int(n) for n in (lines.split("-") * 2)[:2])
        assert any(says in drnas_line(path, n) for n in range(first, last + 1)), (name, where, says)
    for (path, n), says in OTHER_LINES.items():
        assert says in drnas_line(path, n), (path, n, says)
    sgd = " ".join(drnas_line(SCRIPT, n) for n in range(153, 158))
    assert "torch.optim.SGD" in sgd and "nesterov" not in sgd


def test_default_model_has_no_beta_and_steps_alpha_first_at_smoke_size():
    m = tiny("pc-darts")   # K=4 on C=4: one channel through the ops, the other three bypass them
    assert isinstance(m, DartsCodeClip) and not m.options.edge_normalization
    assert m.alpha.shape == (6, 5) and isinstance(m.supernet.search_cells[0], PartialChannelCell)
    assert m.supernet.search_cells[0].part == 1
    seen = []
    m.supernet.register_forward_pre_hook(lambda mod, args: seen.append(args[1].detach().clone()))
    before = m.alpha.detach().clone()
    stats = m.step({"train": batch(1, 8, 16), "valid": batch(101, 8, 16)}, 0, 0, True)
    assert stats.op_grad.shape == (6, 5) and "edge_grad" not in stats.extra
    assert torch.isfinite(stats.op_grad).all() and torch.isfinite(stats.loss_sum).all()
    assert (m.alpha.detach() != before).all()
    assert m.extra_records() == {}   # no edge_weights record
    # the supernet gets softmax(α) itself, rows summing to 1: no β̂ scaling
    torch.testing.assert_close(seen[-1].sum(-1), torch.ones(6), rtol=0, atol=1e-6)
    # DrNAS' Architect zeroes α's gradient after its step: the weight step's clip sees ∇α L_train alone
    assert not m.alpha_grad_left.any()
    assert step_line(m.options).startswith("α step on a valid batch")


def batches(seed: int) -> dict:
    return {"train": batch(seed, 8, 16), "valid": batch(seed + 100, 8, 16)}


def test_all_channels_is_darts_as_drnas_runs_it_step_for_step():
    """K=1 (no β) is DrNAS' `--method darts --k 1`: the same steps as β-DARTS at λ = 0 (the same script's
    settings, the same clip). Same seed, same batches, two steps (gradient correlation measured in the
    first): every tensor of the state is bit-equal."""
    pc, darts = tiny("pc-darts", partial_channels=1), tiny("beta-darts", beta_decay_max=0)
    start = pc.alpha.detach().clone()
    for step in range(2):
        b = batches(step)
        got, want = pc.step(b, 0, step, step == 0), darts.step(b, 0, step, step == 0)
        for field in ("loss_sum", "correct", "op_grad", "gc_inner", "gc_cos"):
            a, w = getattr(got, field), getattr(want, field)
            assert (a is None and w is None) or torch.equal(a.nan_to_num(7.0), w.nan_to_num(7.0)), (field, step)
    a = pc.state_dict()
    b = {k: v for k, v in darts.state_dict().items() if k != "coefficient"}   # β-DARTS' λ buffer
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(pc.alpha, start)   # the steps did move α


def test_tiny_run_with_the_defaults_records_no_edge_columns(cli, tmp_path):
    """`nbs run` end to end with the defaults (C=8, N=1, 16+16 images, 2 epochs): records without β columns."""
    out = cli("run", "--method", "pc-darts", "--out", str(tmp_path), "--device", "cpu", *METHOD_RUN_ARGS)
    assert out.returncode == 0, out.stdout + out.stderr
    df = check_records(tmp_path / "pc-darts-cifar10-seed0", 2)
    assert not {"edge_weights", "edge_grad"} & set(df.columns)
    assert all(len(w) == 30 for w in df.op_weights)   # 6 edges × 5 ops, no β column
