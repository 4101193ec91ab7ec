"""benchmarks/gpu_check.sh, the one prepared GPU check (issue 25), tested on the CPU: its dry mode runs
every part at smoke size and writes every file; no target is ever "met" without a CUDA measurement; a
part that fails or runs over its budget is reported so and the parts after it still run; and the
summary judges the targets from CUDA measurements (synthetic ones here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"

# real `nbs run`s on CIFAR-10 (smoke preset) and gpu_epoch.py at its CPU size: about a minute
pytestmark = pytest.mark.slow


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _module()


# the parts' dry budgets are sized for this machine; a suite on a busy CI machine gets room, so that only the
# budgets a test sets itself can time a part out
ROOMY = ("--budget", "env=300", "--budget", "gpu_epoch=400", "--budget", "nbs_run=400")


def _check(root: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(root / "out"), "--work", str(root / "work"), *ROOMY, *extra],
                          cwd=REPO, env={**env, "PYTHON": sys.executable}, capture_output=True, text=True,
                          timeout=1800)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def dry(tmp_path_factory, nbs_env):
    root = tmp_path_factory.mktemp("gpu-check-dry")
    proc = _check(root, {**nbs_env, "DRY": "1"}, "--budget", "pytest=400")
    return proc, root / "out"


def test_dry_mode_writes_every_part_and_they_parse(dry):
    proc, out = dry
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    # seven files, no folders: within what the device tool brings back from $OUT (8 files)
    assert sorted(p.name for p in out.iterdir()) == sorted(gpu_check.FILES)
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] and env["cuda_available"] is False and env["data_ok"] is True
    tests = gpu_check.pytest_counts(out / "pytest.xml")
    assert tests["report"] == "pytest's own" and tests["tests"] > 0 and tests["skipped"] == tests["tests"]
    bench = json.loads((out / "gpu_epoch.json").read_text())
    assert bench["meta"]["device_type"] == "cpu" and bench["meta"]["channels"] == 8
    ok = {(r["method"], r["label"]) for r in bench["rows"] if r["status"] == "ok"}
    for method in ("darts-v1", "single-darts"):
        assert {(method, "solo-eager"), (method, "packed 1"), (method, "packed 2")} <= ok, bench["rows"]
    real = json.loads((out / "nbs_run.json").read_text())
    assert real["status"] == "ok" and real["data"]["status"] == "ok"
    packed, solo = real["runs"]["packed"], real["runs"]["solo"]
    assert packed["pack_size"] == 2 and packed["seeds_recorded"] == 2 and solo["pack_size"] == 1
    assert packed["seed_epoch_s"] == pytest.approx(packed["epoch_wall_s"] / 2, rel=1e-3)
    assert packed["expected_line"].startswith("expected wall time")
    for run in packed["seed_runs"] + solo["seed_runs"]:
        assert (run["device"], run["preset"], run["state"]) == ("cpu", "smoke", "finished")
    summary = _summary(out)
    assert summary["mode"] == "dry" and [p["status"] for p in summary["parts"]] == ["ok"] * 4
    assert [p["name"] for p in summary["parts"]] == list(gpu_check.PARTS)
    assert "==== part 4/4: nbs_run" in (out / "check.log").read_text()


def test_dry_summary_lists_every_target_and_calls_none_met(dry):
    proc, out = dry
    summary = _summary(out)
    names = [t["target"] for t in summary["targets"]]
    assert any(n.startswith("pytest -m cuda passes") for n in names)
    assert sum(n.startswith("5 packed seeds ≤ 1.5x") for n in names) == 2          # benchmark and real run
    assert sum(n.startswith("≤ 15 s per seed-epoch") for n in names) == 2
    assert sum(n.startswith("stretch: ≤ 10 s per seed-epoch") for n in names) == 2
    assert {t["verdict"] for t in summary["targets"]} == {"not measured (dry run on cpu)"}
    text = (out / "summary.md").read_text()
    assert "| met |" not in text and "not met" not in text
    # the targets table is the last thing printed
    assert proc.stdout.endswith(text)
    tail = proc.stdout.rstrip().splitlines()
    assert tail[-len(names) - 2] == "| target | measured by | value | verdict |"
    assert all(line.endswith("| not measured (dry run on cpu) |") for line in tail[-len(names):])


def test_failed_and_timed_out_parts_are_reported_and_the_rest_runs(tmp_path, nbs_env):
    # no DRY: this CPU machine has no CUDA, so the check says so in one line and runs the dry mode
    proc = _check(tmp_path, nbs_env, "--budget", "pytest=0.5", "--gpu-epoch-methods", "no-such-method")
    out = tmp_path / "out"
    assert proc.returncode == 1, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "missing: no CUDA device: the other parts run in the dry mode" in proc.stdout
    summary = _summary(out)
    assert (summary["mode"], summary["dry_reason"]) == ("dry", "no CUDA")
    status = {p["name"]: p for p in summary["parts"]}
    assert status["env"]["status"] == "ok"
    assert status["pytest"]["status"] == "timed out" and "budget of 0.5 s" in status["pytest"]["note"]
    assert status["gpu_epoch"]["status"].startswith("failed (exit")
    assert status["nbs_run"]["status"] == "ok"                  # ran after the failure
    # the failed and the killed part still leave a file that parses and says what happened
    assert gpu_check.pytest_counts(out / "pytest.xml")["report"].startswith("timed out")
    assert json.loads((out / "gpu_epoch.json").read_text())["rows"] == []
    assert json.loads((out / "nbs_run.json").read_text())["runs"]["packed"]["pack_size"] == 2
    assert {t["verdict"] for t in summary["targets"]} == {"not measured (no CUDA; dry run on cpu)"}
    assert "---- pytest: timed out" in proc.stdout and "| pytest | 0.5 |" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].endswith("| not measured (no CUDA; dry run on cpu) |")


# ---- the verdicts, from synthetic CUDA measurements (no subprocess) ------------------------------------
def _fake_outputs(out: Path, device: str = "cuda") -> None:
    def row(mode, k, epoch_s):
        return {"method": "darts-v1", "mode": mode, "k": k, "label": f"packed {k}" if mode == "packed" else mode,
                "status": "ok", "epoch_s": epoch_s, "seed_epoch_s": epoch_s / k, "warmup_s": 2.0}

    rows = [row("solo-eager", 1, 60.0), row("solo-graph", 1, 24.0), row("packed", 5, 45.0), row("packed", 10, 80.0)]
    rows.append({"method": "darts-v1", "mode": "packed", "k": 2, "label": "packed 2", "status": "skipped"})
    gpu_check.write_json(out / "gpu_epoch.json", {"meta": {"device_type": device, "channels": 16}, "rows": rows,
                                                  "ratios": ["darts-v1: ..."]})

    def runs(k, wall):
        return {"status": "ok", "pack_size": k, "epoch_wall_s": wall, "seed_epoch_s": wall / k,
                "seed_runs": [{"device": device, "preset": "paper"}] * k}

    gpu_check.write_json(out / "nbs_run.json", {"status": "ok", "runs": {"packed": runs(5, 70.0),
                                                                          "solo": runs(1, 40.0)}})
    (out / "pytest.xml").write_text('<testsuites><testsuite name="pytest" tests="12" failures="0" errors="0" '
                                    'skipped="2"></testsuite></testsuites>')


def _verdicts(summary: dict) -> list[tuple[str, str]]:
    return [(t["measured_by"].split(":")[0], t["verdict"]) for t in summary["targets"]]


def test_summary_judges_cuda_measurements_and_nothing_else(tmp_path):
    _fake_outputs(tmp_path)
    parts = [gpu_check.PartResult(p, "ok", 1.0, 1.0, 0, gpu_check.OUTPUTS[p]) for p in gpu_check.PARTS]
    env = {"device": "NVIDIA H100 80GB HBM3", "cuda_available": True, "torch": "2.11.0+cu130", "missing": []}
    summary = gpu_check.build_summary(tmp_path, parts, env, False, None, 400.0, tmp_path)
    assert _verdicts(summary) == [
        ("pytest", "met"),                  # 10 passed, 2 skipped
        ("gpu_epoch", "met"),               # packed 5 / solo eager = 45 / 60 = 0.75
        ("nbs run on CIFAR-10", "not met"),  # 70 / 40 = 1.75
        ("gpu_epoch", "met"),               # best seed-epoch 8 s (packed 10) ≤ 15
        ("nbs run on CIFAR-10", "met"),      # 70 / 5 = 14 s ≤ 15
        ("gpu_epoch", "met"),               # 8 ≤ 10
        ("nbs run on CIFAR-10", "not met"),  # 14 > 10
    ]
    assert summary["targets"][1]["value_text"] == "0.75x (45.0 / 60.0 s)"
    assert summary["targets"][3]["value_text"] == "8.0 s (packed 10)"
    text = gpu_check.summary_markdown(summary)
    assert text.rstrip().splitlines()[-1].endswith("| 14.0 s (K=5, first epoch) | not met |")
    # the same numbers never count in the dry mode, nor when they were not measured on CUDA
    dry = gpu_check.build_summary(tmp_path, parts, env, True, gpu_check.DRY_REASON, 60.0, tmp_path)
    assert {v for _, v in _verdicts(dry)} == {"not measured (dry run on cpu)"}
    _fake_outputs(tmp_path, device="cpu")
    on_cpu = gpu_check.build_summary(tmp_path, parts, env, False, None, 60.0, tmp_path)
    assert all(v.startswith("not measured") for s, v in _verdicts(on_cpu) if s != "pytest")


def test_missing_measurements_say_which_part_did_not_deliver(tmp_path):
    parts = [gpu_check.PartResult("env", "ok"), gpu_check.PartResult("pytest", "timed out"),
             gpu_check.PartResult("gpu_epoch", "failed (exit 1)"), gpu_check.PartResult("nbs_run", "timed out")]
    for part in parts:
        part.output = gpu_check.OUTPUTS[part.name]
        if part.name != "env":
            gpu_check.ensure_output(tmp_path, part)
    summary = gpu_check.build_summary(tmp_path, parts, {"cuda_available": True, "missing": []}, False, None, 1.0,
                                      tmp_path)
    verdicts = [t["verdict"] for t in summary["targets"]]
    assert verdicts[0] == "not measured (pytest timed out)"
    assert verdicts[1] == "not measured (gpu_epoch failed (exit 1))"
    assert verdicts[2] == "not measured (nbs_run timed out)"
    assert "met" not in verdicts and "not met" not in verdicts


def test_tests_cut_short_by_the_budget_do_not_count_as_passing(tmp_path):
    _fake_outputs(tmp_path)   # a report of 10 passed: what pytest writes when interrupted at its budget
    parts = [gpu_check.PartResult(p, "timed out" if p == "pytest" else "ok") for p in gpu_check.PARTS]
    summary = gpu_check.build_summary(tmp_path, parts, {"cuda_available": True, "missing": []}, False, None, 1.0,
                                      tmp_path)
    assert summary["targets"][0]["verdict"] == "not measured (pytest timed out after 10 passed)"
