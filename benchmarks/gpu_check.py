"""One prepared GPU check (issue 25, item 1): every CUDA measurement this project needs, in one command
of at most 8 minutes on one H100, each part under its own time budget, everything written to OUT_DIR.

    bash benchmarks/gpu_check.sh --prepare          # here, once: .gpu-check/ (data + xautodl) to carry
    bash benchmarks/gpu_check.sh OUT_DIR             # on the GPU machine (python benchmarks/gpu_check.py OUT_DIR)
    DRY=1 bash benchmarks/gpu_check.sh OUT_DIR       # CPU, smoke sizes, every part (or --dry); about a minute

Parts, in order, each a subprocess in its own process group, killed at its budget and then reported
"timed out" while the next part still runs (GPU budgets; ``--budget PART=SECONDS`` changes one):

  1. env (40 s)        device, driver, torch, CUDA, cuDNN; what is missing, one line each (no CUDA,
                       no xautodl, no CIFAR-10 / NB201 data, a missing Python package)   -> env.json
  2. pytest (110 s)    ``pytest -m cuda``: graph replay = eager, packed on CUDA = solo, the packed
                       scorer, a packed CLI run, xautodl parity on CUDA                  -> pytest.xml (JUnit)
  3. gpu_epoch (180 s) ``benchmarks/gpu_epoch.py`` for darts-v1 and single-darts: solo eager, solo graph,
                       packed K = 1, 2, 5, 10 and xautodl (its --time-limit is the budget less 40 s, so
                       rows it cannot start are reported "skipped" and its JSON is still written)
                                                                                         -> gpu_epoch.json
  4. nbs_run (145 s)   one real ``nbs run -m darts-v1 --epochs 1 --preset paper`` on CIFAR-10: 5 seeds
                       packed, then ``--seeds 1``; each seed's first-epoch seconds from its records,
                       beside gpu_epoch's estimate of the same epoch (the benchmark's extrapolation
                       checked on real data)                                             -> nbs_run.json

then summary.md and summary.json, and the summary printed last, ending with the targets table:
5 packed seeds ≤ 1.5x the epoch of one; ≤ 15 s per seed-epoch of darts-v1 at the paper preset (stretch
10 s); ``pytest -m cuda`` passes. Each is "met", "not met" or "not measured (why)"; a target is judged
only from a measurement on a CUDA device at paper size, so the dry mode never says "met". All that the
console shows is also in check.log: seven files in all, within what the device tool brings back (8).

Nothing is installed. The package is imported from this checkout (PYTHONPATH), so on the GPU machine
its own python3 (with a CUDA torch) runs it; ``--prepare`` copies the reference data (../shared:
CIFAR-10 and nb201/, ~40 MB) and the pure-Python xautodl from this venv into the git-ignored
``.gpu-check/``, which the check finds there (NBS_SHARED, PYTHONPATH) when it travels as a carried path.
Run folders, caches and pytest's temporary files go to ``--work`` (default: a new temporary folder),
never to OUT_DIR. Exit status: 0 when every part ran to the end, 1 otherwise (the summary is written
either way).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".gpu-check"          # made by --prepare, git-ignored; travels as a carried path
DEVICE_TREE_LIMIT_MB = 64            # what the device tool sends: working tree + carried paths

PARTS = ("env", "pytest", "gpu_epoch", "nbs_run")
OUTPUTS = {"env": "env.json", "pytest": "pytest.xml", "gpu_epoch": "gpu_epoch.json", "nbs_run": "nbs_run.json"}
TITLES = {"env": "device, driver, torch and CUDA versions; what is missing",
          "pytest": "pytest -m cuda",
          "gpu_epoch": "benchmarks/gpu_epoch.py (extrapolated paper epochs)",
          "nbs_run": "a real nbs run on CIFAR-10, packed against one seed"}
LOG, SUMMARY_MD, SUMMARY_JSON = "check.log", "summary.md", "summary.json"
FILES = (LOG, *OUTPUTS.values(), SUMMARY_MD, SUMMARY_JSON)
# GPU budgets: 475 s in all, under the 8 minutes (the device tool's commands stop at 10); env's
# allows for a cold first import of torch and CUDA's initialisation on a fresh machine
GPU_BUDGETS = {"env": 40.0, "pytest": 110.0, "gpu_epoch": 180.0, "nbs_run": 145.0}
# dry budgets are ceilings for a loaded 2-core CPU; a dry run takes about a minute there
DRY_BUDGETS = {"env": 60.0, "pytest": 120.0, "gpu_epoch": 150.0, "nbs_run": 150.0}
GPU_EPOCH_ROW_MARGIN = {"gpu": 40.0, "dry": 20.0}   # gpu_epoch's --time-limit = budget - this (its last row)
GRACE_S = 5.0     # a part over its budget gets SIGINT this long before the budget ends, then SIGTERM/SIGKILL
NBS_RUN_MARGIN = 8.0                                 # the nbs_run part's own deadline: its budget less this
METHODS = "darts-v1,single-darts"
DRY_REASON = "dry run on cpu"

TARGET_PACK = 1.5       # 5 packed seeds: at most 1.5x the epoch wall time of one seed
TARGET_EPOCH = 15.0     # s per seed-epoch of darts-v1 at the paper preset
TARGET_STRETCH = 10.0

# the project's runtime dependencies (pyproject.toml) and the test runner: a missing one is one line
NEEDED_MODULES = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow", "scipy": "scipy",
                  "statsmodels": "statsmodels", "matplotlib": "matplotlib", "seaborn": "seaborn",
                  "click": "click", "PIL": "pillow", "tqdm": "tqdm", "pytest": "pytest", "filelock": "filelock"}


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Atomically: a part killed while writing leaves the previous version, never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text[:limit] + ("…" if len(text) > limit else "")


class Tee:
    """The console and check.log, line by line (the parts' output included)."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.file.write(text)
            self.file.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def close(self) -> None:
        self.file.close()


def child_env(dry: bool) -> dict[str, str]:
    """The parts' environment: this checkout's package first on the path, the carried site-packages
    and reference data where --prepare made them and nothing else provides them; one thread per
    process in the dry mode (this project's CPU machines are small and shared)."""
    env = dict(os.environ)
    path = [str(REPO)]
    if (CARRY / "site").is_dir():
        path.append(str(CARRY / "site"))
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    beside = REPO.parent / "shared"
    has_beside = (beside / "nb201").is_dir() or (beside / "datasets").is_dir()
    if not env.get("NBS_SHARED") and not has_beside and (CARRY / "shared").is_dir():
        env["NBS_SHARED"] = str(CARRY / "shared")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    if dry:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, "1")
    return env


# ---------------------------------------------------------------------------------------------
# part 1: env (run as `gpu_check.py --part env`, in its own process: torch is imported there only)
# ---------------------------------------------------------------------------------------------
def part_env(out: Path) -> int:
    info: dict[str, Any] = {"date": now(), "python": platform.python_version(), "executable": sys.executable,
                            "platform": platform.platform(), "cpu_count": os.cpu_count()}
    missing: list[str] = []
    info["missing"] = missing
    try:
        import torch
    except Exception as err:   # noqa: BLE001 - any import failure is reported, not raised
        info.update(torch=None, cuda_available=False)
        missing.append(f"no torch: {one_line(err)}")
        torch = None
    if torch is not None:
        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
        try:
            cuda = bool(torch.cuda.is_available())
        except Exception as err:   # noqa: BLE001
            cuda = False
            info["cuda_error"] = one_line(err)
        info["cuda_available"] = cuda
        if cuda:
            props = torch.cuda.get_device_properties(0)
            info.update(device=torch.cuda.get_device_name(0), device_count=torch.cuda.device_count(),
                        capability=f"sm_{props.major}{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                        multiprocessors=props.multi_processor_count)
        elif torch.version.cuda is None:
            missing.append(f"no CUDA: torch {torch.__version__} is a CPU build")
        else:
            missing.append(f"no CUDA: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no device"
                           + (f" ({info['cuda_error']})" if info.get("cuda_error") else ""))
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            proc = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=10)
            info["nvidia_smi"] = proc.stdout.strip() or one_line(proc.stderr)
        except (OSError, subprocess.SubprocessError) as err:
            info["nvidia_smi"] = f"failed: {one_line(err)}"
    packages = {}
    for module, dist in NEEDED_MODULES.items():
        packages[dist] = _version(module, dist)
        if packages[dist] is None:
            missing.append(f"no Python package {dist}" + (": pytest -m cuda cannot run" if dist == "pytest" else ""))
    info["packages"] = packages
    info["xautodl"] = _version("xautodl", "xautodl")
    if info["xautodl"] is None:
        missing.append("no xautodl: gpu_epoch's xautodl row and the xautodl parity tests are skipped "
                       "(carry it: bash benchmarks/gpu_check.sh --prepare)")
    info.update(_project_info(missing))
    info["git_commit"] = _git_commit()
    write_json(out / OUTPUTS["env"], info)
    if info.get("cuda_available"):
        print(f"device: {info['device']} ({info['capability']}, {info['memory_gib']} GiB, "
              f"{info['multiprocessors']} SMs), {info['device_count']} visible")
    else:
        print("device: cpu (no CUDA device)")
    print(f"driver (nvidia-smi): {info.get('nvidia_smi', 'no nvidia-smi')}")
    print(f"torch {info.get('torch')}, CUDA {info.get('torch_cuda')}, cuDNN {info.get('cudnn')}, "
          f"python {info['python']} ({sys.executable}), {info['cpu_count']} CPUs")
    print(f"nasbench_stability from {info.get('package')}, commit {info['git_commit'] or 'unknown'}; "
          f"xautodl {info['xautodl'] or 'not importable'}")
    print(f"data: shared {info.get('shared')}, CIFAR-10 {info.get('dataset')}, benchmark table "
          f"{info.get('benchmark_table') or info.get('nb201_source')}")
    for line in missing:
        print(f"missing: {line}")
    return 0


def _version(module: str, dist: str) -> str | None:
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:   # noqa: BLE001 - importable without metadata (a carried copy): still there
        return "present"


def _project_info(missing: list[str]) -> dict[str, Any]:
    """Where the package, the reference data, CIFAR-10 and the benchmark table are (as nbs finds them)."""
    try:
        import nasbench_stability
        from nasbench_stability import paths
        from nasbench_stability.bench.locate import default_source_dir, table_path
        from nasbench_stability.data.catalog import dataset_spec
        from nasbench_stability.data.locate import locate_dataset
    except Exception as err:   # noqa: BLE001
        missing.append(f"nasbench_stability does not import: {one_line(err)}")
        return {"package": None, "data_ok": False}
    info: dict[str, Any] = {"package": str(Path(nasbench_stability.__file__).parent)}
    shared = paths.shared_dir()
    info["shared"] = str(shared) if shared else None
    try:
        info["dataset"] = str(locate_dataset(dataset_spec("cifar10")))
    except Exception as err:   # noqa: BLE001
        info["dataset"] = None
        missing.append(f"no CIFAR-10 data ({one_line(err, 120)}): the nbs run part is skipped, the data tests "
                       "skip (carry it: bash benchmarks/gpu_check.sh --prepare)")
    table = table_path()
    info["benchmark_table"] = str(table) if table.exists() else None
    source = default_source_dir()
    info["nb201_source"] = str(source) if source else None
    if table.exists() or source is not None:
        info["benchmark_ok"] = True
    else:
        info["benchmark_ok"] = False
        missing.append("no NB201 benchmark data (no table, no shared/nb201): the nbs run part is skipped")
    info["data_ok"] = info["dataset"] is not None and info["benchmark_ok"]
    return info


def _git_commit() -> str | None:
    """HEAD (read-only); on the GPU machine, whose copy of the tree has no .git, the one --prepare saw."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return (CARRY / "commit.txt").read_text().strip() + " (HEAD at --prepare)"
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# part 4: nbs_run (run as `gpu_check.py --part nbs_run`): the real CLI, packed K seeds then one seed
# ---------------------------------------------------------------------------------------------
def part_nbs_run(out: Path, work: Path, deadline_s: float, dry: bool, method: str, seeds: int) -> int:
    t0 = time.monotonic()
    device, preset = ("cpu", "smoke") if dry else ("cuda", "paper")
    env = dict(os.environ)
    home = work / "pytest" / "nbs-home"     # where pytest's session decoded CIFAR-10 (tests/conftest.py)
    if any((home / "datasets").glob("*.npz")):
        env["NBS_HOME"] = str(home)
        if (work / "pytest" / "bench" / "nb201.parquet").is_file():
            env["NBS_BENCHMARK"] = str(work / "pytest" / "bench" / "nb201.parquet")
    result: dict[str, Any] = {"status": "running", "date": now(), "dry": dry, "device": device, "preset": preset,
                              "method": method, "epochs": 1, "nbs_home": env.get("NBS_HOME"), "runs": {}}
    path = out / OUTPUTS["nbs_run"]
    write_json(path, result)
    # first the data, apart from the runs' time: CIFAR-10 decoded into the cache (unless pytest's session
    # did it) and the benchmark table built, as a first `nbs run` on a fresh machine would
    print("data: decode CIFAR-10 into the cache and build the benchmark table where missing", flush=True)
    data = _run_cli([sys.executable, "-c", DATA_SNIPPET], env, deadline_s - 10)
    result["data"] = {k: data[k] for k in ("status", "exit_code", "process_s", "output_tail")}
    write_json(path, result)
    statuses = [] if data["status"] == "ok" else [data["status"]]
    left_at_runs = deadline_s - (time.monotonic() - t0)
    plan = [("packed", seeds, ["--pack"], 0.62), ("solo", 1, [], 1.0)]
    for name, k, extra, share in plan:
        left = deadline_s - (time.monotonic() - t0)
        timeout = min(left, share * left_at_runs) if share < 1 else left
        argv = [sys.executable, "-m", "nasbench_stability.cli.main", "run", "-m", method, "--seeds", str(k),
                "--epochs", "1", "--device", device, "--preset", preset, "--out", str(work / "runs" / name),
                "--quiet", *extra]
        entry: dict[str, Any] = {"argv": argv, "seeds": k, "timeout_s": round(max(timeout, 0.0), 1)}
        result["runs"][name] = entry
        if timeout < 5:
            entry.update(status="timed out", note="no time left in the part's budget")
            statuses.append("timed out")
            write_json(path, result)
            continue
        print(f"$ {shlex.join(argv)}   (at most {timeout:.0f} s)", flush=True)
        entry.update(_run_cli(argv, env, timeout))
        entry.update(_read_runs(work / "runs" / name))
        statuses.append(entry["status"])
        write_json(path, result)
    result.update(_compare(result["runs"], out / OUTPUTS["gpu_epoch"], dry, seeds))
    result["status"] = ("ok" if all(s == "ok" for s in statuses) else
                        "timed out" if "timed out" in statuses else "failed")
    result["part_s"] = round(time.monotonic() - t0, 1)
    write_json(path, result)
    for line in result.get("lines", []):
        print(line)
    return {"ok": 0, "timed out": 124}.get(result["status"], 1)


DATA_SNIPPET = """
from nasbench_stability.bench.build import ensure_table
from nasbench_stability.data.cache import load_arrays
print("benchmark table:", ensure_table())
print("CIFAR-10 from", load_arrays("cifar10", progress=False).source)
"""


def _run_cli(argv: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One `nbs run` in this part's process group (the check kills the whole group at the budget)."""
    lines: list[str] = []
    t = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            sys.stdout.write(line)
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    status = None
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rc, status = proc.returncode, "timed out"
    reader.join(timeout=5)
    expected = next((line for line in lines if line.startswith("expected wall time")), None)
    return {"status": status or ("ok" if rc == 0 else f"failed (exit {rc})"), "exit_code": rc,
            "process_s": round(time.monotonic() - t, 2), "expected_line": expected,
            "output_tail": lines[-8:]}


RECORD_COLUMNS = ("seed", "epoch", "epoch_seconds", "wall_seconds", "pack_size", "genotype", "param_free_count",
                  "train_acc", "valid_acc", "bench_cifar10_test_200", "diverged")


def _read_runs(folder: Path) -> dict[str, Any]:
    """Each run directory's config (device, preset) and epoch records, as the runs wrote them."""
    seeds = []
    for run in sorted(folder.glob("*-seed*")):
        item: dict[str, Any] = {"run": run.name}
        cfg = read_json(run / "config.json") or {}
        item.update(device=cfg.get("device"), preset=cfg.get("preset"), channels=cfg.get("channels"),
                    cells_per_stage=cfg.get("cells_per_stage"), data_subset=cfg.get("data_subset"))
        item["state"] = (read_json(run / "status.json") or {}).get("state")
        records = sorted((run / "records").glob("epoch-*.parquet"))
        if records:
            try:
                import pandas as pd
                frame = pd.read_parquet(run / "records")
                keep = [c for c in frame.columns if c in RECORD_COLUMNS
                        or any(w in c for w in ("path", "graph", "fallback"))]   # which path ran, if recorded
                item["records"] = json.loads(frame[keep].to_json(orient="records"))
            except Exception as err:   # noqa: BLE001
                item["records_error"] = one_line(err)
        seeds.append(item)
    out: dict[str, Any] = {"seed_runs": seeds}
    firsts = [r for s in seeds for r in s.get("records", []) if r.get("epoch") == 1]
    secs = [finite(r.get("epoch_seconds")) for r in firsts]
    if firsts and all(s is not None for s in secs):
        k = int(firsts[0].get("pack_size") or 1)
        # a packed epoch's wall time is shared out evenly among its seeds (epoch_seconds = wall / K)
        wall = max(s * int(r.get("pack_size") or 1) for s, r in zip(secs, firsts))
        out.update(pack_size=k, epoch_wall_s=round(wall, 3), seed_epoch_s=round(wall / max(k, 1), 3),
                   seeds_recorded=len(firsts))
    return out


def _compare(runs: dict[str, Any], gpu_epoch_json: Path, dry: bool, seeds: int) -> dict[str, Any]:
    """The real first epochs beside gpu_epoch's estimate of them (epoch_s + warmup_s: the first epoch
    pays the eager warm-up steps and first captures that later epochs do not)."""
    lines, rows = [], []
    bench = read_json(gpu_epoch_json) or {}
    by = {(r.get("method"), r.get("mode"), r.get("k")): r for r in bench.get("rows", []) if r.get("status") == "ok"}
    method = "darts-v1"
    packed, solo = runs.get("packed", {}), runs.get("solo", {})
    if finite(packed.get("epoch_wall_s")) and finite(solo.get("epoch_wall_s")):
        lines.append(f"{packed.get('pack_size')} packed seeds' first epoch {packed['epoch_wall_s']:.1f} s "
                     f"= {packed['epoch_wall_s'] / solo['epoch_wall_s']:.2f}x one seed's {solo['epoch_wall_s']:.1f} s "
                     f"({packed['seed_epoch_s']:.1f} s per seed-epoch)")
    for name in ("packed", "solo"):
        run = runs.get(name, {})
        if run.get("expected_line"):
            lines.append(f"{name}: whole command {run.get('process_s', 0):.1f} s; nbs's own estimate: "
                         f"{run['expected_line']}")
    for name, mode, k in (("solo", "solo-graph", 1), ("solo", "solo-eager", 1), ("packed", "packed", seeds)):
        real = finite(runs.get(name, {}).get("epoch_wall_s"))
        est = by.get((method, mode, k))
        if real is None or est is None:
            continue
        if name == "solo" and mode == "solo-eager" and (method, "solo-graph", 1) in by:
            continue   # on CUDA the real solo run is graphed: compare with the graphed estimate
        first = (finite(est.get("epoch_s")) or 0.0) + (finite(est.get("warmup_s")) or 0.0)
        row = {"run": name, "benchmark_row": f"{mode} {k}" if mode == "packed" else mode, "real_epoch_s": real,
               "estimate_epoch_s": finite(est.get("epoch_s")), "estimate_first_epoch_s": round(first, 3),
               "real_over_estimate": round(real / first, 3) if first > 0 and not dry else None}
        rows.append(row)
        if dry:
            lines.append(f"extrapolation, {row['benchmark_row']}: real {real:.1f} s vs estimate {first:.1f} s: not "
                         "comparable in the dry mode (smoke-preset run, --small benchmark)")
        else:
            lines.append(f"extrapolation, {row['benchmark_row']}: real first epoch {real:.1f} s vs gpu_epoch's "
                         f"{first:.1f} s (epoch_s + warmup_s) = {real / first:.2f}x")
    return {"extrapolation": rows, "lines": lines}


# ---------------------------------------------------------------------------------------------
# the check: parts in order, each under its budget
# ---------------------------------------------------------------------------------------------
@dataclass
class PartResult:
    name: str
    status: str              # ok | timed out | failed (...) | skipped (...)
    budget_s: float | None = None
    wall_s: float | None = None
    exit_code: int | None = None
    output: str = ""
    note: str = ""


def run_part(log: Tee, index: int, name: str, argv: list[str], budget: float, env: dict[str, str],
             out: Path) -> PartResult:
    log.line()
    log.line(f"==== part {index}/{len(PARTS)}: {name}: {TITLES[name]} (budget {budget:g} s) ====")
    log.line(f"$ {shlex.join(argv)}")
    t = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
                            start_new_session=True)   # its own process group: killed whole at the budget

    def pump() -> None:
        for line in proc.stdout:
            log.write(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    first = max(budget - GRACE_S, budget / 2)
    try:
        rc = proc.wait(timeout=first)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop_group(proc, budget - first)
        rc = proc.returncode
    except KeyboardInterrupt:
        _stop_group(proc, 2.0)
        raise
    reader.join(timeout=10)
    wall = time.monotonic() - t
    if timed_out or rc == 124:
        status = "timed out"
    else:
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    result = PartResult(name, status, budget, round(wall, 1), rc, OUTPUTS[name])
    if timed_out:
        result.note = f"killed at its budget of {budget:g} s"
    log.line(f"---- {name}: {status} after {wall:.1f} s")
    return result


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    """Stop the part's process group (the part and what it started): SIGINT first, so that pytest
    still writes its report of the tests run so far, then SIGTERM and SIGKILL to what is left."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:   # the leader is gone; what it left in its group goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def ensure_output(out: Path, part: PartResult) -> None:
    """Every part's file exists and parses afterwards: a part that failed, timed out or was skipped
    before writing it gets a placeholder that says so."""
    path = out / OUTPUTS[part.name]
    if path.suffix == ".xml":
        try:
            ET.parse(path)
            return
        except (OSError, ET.ParseError):
            suite = ET.Element("testsuite", name="pytest", tests="0", failures="0", errors="0", skipped="0")
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="gpu_check_status", value=f"{part.status}: no report written")
            root = ET.Element("testsuites")
            root.append(suite)
            ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    elif read_json(path) is not None:
        return
    else:
        placeholder = {"status": part.status, "note": f"{part.name} wrote no output ({part.status})"}
        if part.name == "gpu_epoch":
            placeholder.update(meta={}, rows=[], ratios=[])
        write_json(path, placeholder)
    if part.status == "ok":
        part.status = "failed (no output)"
    part.note = "; ".join(filter(None, [part.note, "placeholder output written"]))


def part_argv(name: str, args: argparse.Namespace, out: Path, work: Path, budget: float, dry: bool) -> list[str]:
    py, me = sys.executable, str(Path(__file__).resolve())
    if name == "env":
        return [py, me, "--part", "env", str(out)]
    if name == "pytest":
        return [py, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rfEs", "--durations=10",
                "--continue-on-collection-errors", "--junitxml", str(out / OUTPUTS["pytest"]),
                "--basetemp", str(work / "pytest"), *cuda_test_files()]
    if name == "gpu_epoch":
        limit = max(1.0, budget - GPU_EPOCH_ROW_MARGIN["dry" if dry else "gpu"])
        argv = [py, str(REPO / "benchmarks" / "gpu_epoch.py"), "--methods", args.gpu_epoch_methods,
                "--time-limit", f"{limit:g}", "--json", str(out / OUTPUTS["gpu_epoch"])]
        if dry:
            return argv + ["--device", "cpu", "--small", "--steps", "1", "--eval-batches", "1", "--packs", "1,2",
                           "--threads", "1"]
        return argv + ["--device", "cuda", "--packs", "1,2,5,10"]
    if name == "nbs_run":
        return [py, me, "--part", "nbs_run", str(out), "--work", str(work), "--deadline",
                f"{max(1.0, budget - NBS_RUN_MARGIN):g}", "--nbs-method", args.nbs_method,
                "--seeds", str(2 if dry else args.seeds), *(["--dry"] if dry else [])]
    raise ValueError(name)


def cuda_test_files() -> list[str]:
    """The test files that carry the cuda marker: collecting only these keeps a module that does not
    import on the GPU machine (an optional package missing there) from stopping the CUDA tests."""
    files = [str(p.relative_to(REPO)) for p in sorted((REPO / "tests").glob("test_*.py"))
             if "mark.cuda" in p.read_text(errors="replace")]
    return files or ["tests"]


def check(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    # parts inherit SIGINT's default (KeyboardInterrupt), also where this was started with it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out: Path = args.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:   # a re-run into the same folder must not show the last run's files as its own
        (out / name).unlink(missing_ok=True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="nbs-gpu-check-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = Tee(out / LOG)
    dry, dry_reason = bool(args.dry), (DRY_REASON if args.dry else None)
    selected = [p for p in PARTS if (not args.only or p in args.only) and p not in args.skip]
    log.line(f"gpu_check: {'DRY (cpu, smoke sizes)' if dry else 'GPU'} mode, {now()}, output {out}, work {work}")
    log.line("budgets: " + ", ".join(f"{p} {budget_of(p, args, dry):g} s" for p in selected)
             + f" (in all {sum(budget_of(p, args, dry) for p in selected):g} s)")
    results: list[PartResult] = []
    env_info: dict[str, Any] = {}
    try:
        for index, name in enumerate(PARTS, 1):
            budget = budget_of(name, args, dry)
            if name not in selected:
                part = PartResult(name, "skipped (not selected)", budget, output=OUTPUTS[name])
            elif name == "pytest" and env_info and env_info.get("packages", {}).get("pytest") is None:
                part = PartResult(name, "skipped (missing: pytest)", budget, output=OUTPUTS[name])
            elif name == "nbs_run" and env_info and not env_info.get("data_ok", True):
                part = PartResult(name, "skipped (missing: CIFAR-10 or NB201 data, see env)", budget,
                                  output=OUTPUTS[name])
            else:
                part = run_part(log, index, name, part_argv(name, args, out, work, budget, dry), budget,
                                child_env(dry), out)
            if part.status.startswith("skipped"):
                log.line()
                log.line(f"==== part {index}/{len(PARTS)}: {name}: {part.status} ====")
            ensure_output(out, part)
            results.append(part)
            if name == "env":
                env_info = read_json(out / OUTPUTS["env"]) or {}
                if not dry and env_info.get("cuda_available") is False:
                    dry, dry_reason = True, "no CUDA"
                    log.line("missing: no CUDA device: the other parts run in the dry mode (CPU, smoke sizes) "
                             "instead, and no target is judged")
                elif not dry and "cuda_available" not in env_info:   # env did not finish: the parts will tell
                    log.line(f"CUDA not confirmed (env {part.status}): the other parts run as on a GPU")
    finally:
        summary = build_summary(out, results, env_info, dry, dry_reason, time.monotonic() - t0, work)
        write_json(out / SUMMARY_JSON, summary)
        text = summary_markdown(summary)
        (out / SUMMARY_MD).write_text(text)
        log.line()
        log.write(text)
        log.close()
    return 0 if all(r.status in ("ok",) or r.status.startswith("skipped (not selected") for r in results) else 1


def budget_of(name: str, args: argparse.Namespace, dry: bool) -> float:
    return float(args.budget.get(name, (DRY_BUDGETS if dry else GPU_BUDGETS)[name]))


# ---------------------------------------------------------------------------------------------
# the summary
# ---------------------------------------------------------------------------------------------
def pytest_counts(path: Path) -> dict[str, Any] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {k: sum(int(s.get(k, 0) or 0) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["not_passed"] = [f"{case.get('classname')}::{case.get('name')}" for s in suites for case in s.iter("testcase")
                            if case.find("failure") is not None or case.find("error") is not None][:20]
    status = [p.get("value") for p in root.iter("property") if p.get("name") == "gpu_check_status"]
    counts["report"] = status[0] if status else "pytest's own"
    return counts


def _verdict(value: float | None, threshold: float, unjudged: str | None, missing: str) -> str:
    """met / not met only for a value measured where the target applies; otherwise not measured (why)."""
    if unjudged:
        return f"not measured ({unjudged})"
    if value is None:
        return f"not measured ({missing})"
    return "met" if value <= threshold else "not met"


def build_summary(out: Path, results: list[PartResult], env: dict[str, Any], dry: bool, dry_reason: str | None,
                  total_s: float, work: Path) -> dict[str, Any]:
    status = {r.name: r.status for r in results}
    bench = read_json(out / OUTPUTS["gpu_epoch"]) or {}
    real = read_json(out / OUTPUTS["nbs_run"]) or {}
    tests = pytest_counts(out / OUTPUTS["pytest"])
    meta = bench.get("meta") or {}
    v1 = {(r.get("mode"), r.get("k")): r for r in bench.get("rows", [])
          if r.get("method") == "darts-v1" and r.get("status") == "ok"}
    targets: list[dict[str, Any]] = []

    def add(target: str, source: str, value: float | None, text: str, threshold: float, unjudged: str | None,
            why: str) -> None:
        targets.append({"target": target, "measured_by": source, "value": value, "value_text": text,
                        "threshold": threshold, "verdict": _verdict(value, threshold, unjudged, why)})

    def why_not(part: str, what: str) -> str:
        s = status.get(part, "not run")
        return f"{part} {s}" if s != "ok" else f"no {what}"

    unjudged = DRY_REASON if dry and dry_reason == DRY_REASON else (f"{dry_reason}; dry run on cpu" if dry else None)
    # --- pytest -m cuda
    if tests is not None and tests["tests"]:
        bad = tests["failures"] + tests["errors"]
        text = f"{tests['passed']} passed, {tests['failures']} failed, {tests['errors']} errors, {tests['skipped']} skipped"
        if unjudged:
            verdict = f"not measured ({unjudged})"
        elif status.get("pytest") == "timed out" and not bad:   # interrupted: not all of them ran
            verdict = f"not measured (pytest timed out after {tests['passed']} passed)"
        else:
            verdict = "met" if not bad and tests["passed"] > 0 else "not met"
        targets.append({"target": "pytest -m cuda passes (≥ 1 passed, no failure or error)", "measured_by": "pytest",
                        "value": tests["passed"], "value_text": text, "threshold": None, "verdict": verdict})
    else:
        targets.append({"target": "pytest -m cuda passes (≥ 1 passed, no failure or error)", "measured_by": "pytest",
                        "value": None, "value_text": "-", "threshold": None,
                        "verdict": f"not measured ({unjudged or why_not('pytest', 'tests run')})"})
    # --- the benchmark (extrapolated epochs, random data)
    bench_unjudged = unjudged or (None if meta.get("device_type") == "cuda" and meta.get("channels") == 16
                                  else ("benchmark not on CUDA at paper size" if meta else None))
    solo, p5 = v1.get(("solo-eager", 1)), v1.get(("packed", 5))
    ratio = text = None
    if solo and p5 and finite(solo.get("epoch_s")) and finite(p5.get("epoch_s")):
        ratio = p5["epoch_s"] / solo["epoch_s"]
        text = f"{ratio:.2f}x ({p5['epoch_s']:.1f} / {solo['epoch_s']:.1f} s)"
    add(f"5 packed seeds ≤ {TARGET_PACK:g}x the epoch of one (darts-v1)",
        "gpu_epoch: packed 5 / solo eager, extrapolated paper epoch", ratio, text or "-", TARGET_PACK,
        bench_unjudged, why_not("gpu_epoch", "packed-5 and solo-eager darts-v1 rows"))
    best = min((r for r in v1.values() if finite(r.get("seed_epoch_s"))), key=lambda r: r["seed_epoch_s"], default=None)
    best_v = finite(best["seed_epoch_s"]) if best else None
    best_t = f"{best_v:.1f} s ({best.get('label')})" if best else "-"
    # --- the real run (CIFAR-10, first epoch, warm-up and captures included)
    runs = real.get("runs") or {}
    packed, one = runs.get("packed") or {}, runs.get("solo") or {}
    ran_on = {s.get("device") for r in (packed, one) for s in r.get("seed_runs", [])}
    presets = {s.get("preset") for r in (packed, one) for s in r.get("seed_runs", [])}
    real_unjudged = unjudged or (None if ran_on and all(str(d).startswith("cuda") for d in ran_on)
                                 and presets == {"paper"} else ("run not on CUDA at the paper preset" if ran_on else None))
    k = packed.get("pack_size")
    r_ratio = r_text = None
    if finite(packed.get("epoch_wall_s")) and finite(one.get("epoch_wall_s")):
        r_ratio = packed["epoch_wall_s"] / one["epoch_wall_s"]
        r_text = f"{r_ratio:.2f}x ({packed['epoch_wall_s']:.1f} / {one['epoch_wall_s']:.1f} s, K={k})"
    pack_unjudged = real_unjudged or (None if k in (None, 5) else f"K={k}, not 5")
    add(f"5 packed seeds ≤ {TARGET_PACK:g}x the epoch of one (darts-v1)",
        "nbs run on CIFAR-10: --seeds 5 packed / --seeds 1, first epoch", r_ratio, r_text or "-", TARGET_PACK,
        pack_unjudged, why_not("nbs_run", "first epoch of both runs"))
    seed_v = finite(packed.get("seed_epoch_s"))
    seed_t = f"{seed_v:.1f} s (K={k}, first epoch)" if seed_v is not None else "-"
    for threshold, label in ((TARGET_EPOCH, ""), (TARGET_STRETCH, "stretch: ")):
        add(f"{label}≤ {threshold:g} s per seed-epoch, darts-v1, paper preset",
            "gpu_epoch: best amortised row, extrapolated", best_v, best_t, threshold, bench_unjudged,
            why_not("gpu_epoch", "darts-v1 rows"))
        add(f"{label}≤ {threshold:g} s per seed-epoch, darts-v1, paper preset",
            "nbs run on CIFAR-10: packed epoch / K", seed_v, seed_t, threshold, pack_unjudged,
            why_not("nbs_run", "packed first epoch"))
    missing = list(env.get("missing", []))
    if dry and dry_reason != DRY_REASON and not any(m.startswith("no CUDA") for m in missing):
        missing.insert(0, f"{dry_reason}: ran the dry mode instead")
    return {
        "mode": "dry" if dry else "gpu", "dry_reason": dry_reason, "date": now(), "total_s": round(total_s, 1),
        "out_dir": str(out), "work_dir": str(work),
        "device": env.get("device") or ("cpu" if env.get("cuda_available") is False else "unknown"),
        "torch": env.get("torch"),
        "cuda": env.get("torch_cuda"), "driver": env.get("nvidia_smi"), "git_commit": env.get("git_commit"),
        "missing": missing, "parts": [asdict(r) for r in results], "pytest": tests,
        "gpu_epoch_ratios": bench.get("ratios", []), "real_run_lines": real.get("lines", []),
        "extrapolation": real.get("extrapolation", []), "targets": targets,
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def summary_markdown(s: dict[str, Any]) -> str:
    mode = "GPU" if s["mode"] == "gpu" else f"DRY ({s['dry_reason']})"
    lines = [f"# GPU check (issue 25): {mode}", "",
             f"{s['date']}; device {s['device']}; torch {s['torch']}, CUDA {s['cuda']}; driver "
             f"{s['driver'] or '-'}; commit {s['git_commit'] or 'unknown'}; wall {s['total_s']:.0f} s", ""]
    lines += [f"missing: {m}" for m in s["missing"]] or ["missing: nothing"]
    lines += ["", "## Parts", ""]
    lines += _table(["part", "budget s", "wall s", "status", "output", "note"],
                    [[p["name"], f"{p['budget_s']:g}" if p["budget_s"] is not None else "-",
                      "-" if p["wall_s"] is None else f"{p['wall_s']:.1f}", p["status"], p["output"], p["note"] or ""]
                     for p in s["parts"]])
    if s["pytest"] and s["pytest"].get("not_passed"):
        lines += ["", "not passed: " + ", ".join(s["pytest"]["not_passed"])]
    if s["gpu_epoch_ratios"]:
        lines += ["", "gpu_epoch:"] + [f"- {r}" for r in s["gpu_epoch_ratios"]]
    if s["real_run_lines"]:
        lines += ["", "nbs run on CIFAR-10:"] + [f"- {r}" for r in s["real_run_lines"]]
    lines += ["", "## Targets", ""]
    lines += _table(["target", "measured by", "value", "verdict"],
                    [[t["target"], t["measured_by"], t["value_text"], t["verdict"]] for t in s["targets"]])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# --prepare: what the GPU machine needs from here, in one git-ignored folder to carry
# ---------------------------------------------------------------------------------------------
def prepare() -> int:
    shared = Path(os.environ["NBS_SHARED"]) if os.environ.get("NBS_SHARED") else REPO.parent / "shared"
    CARRY.mkdir(exist_ok=True)
    copied = []
    for sub in ("datasets", "nb201"):
        src, dst = shared / sub, CARRY / "shared" / sub
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, copy_function=shutil.copyfile)   # plain writable copies, no links
            copied.append(str(dst.relative_to(REPO)))
        else:
            print(f"missing: {src} (the GPU machine will miss it too)")
    spec = importlib.util.find_spec("xautodl")
    if spec is not None and spec.submodule_search_locations:
        src = Path(list(spec.submodule_search_locations)[0])
        dst = CARRY / "site" / "xautodl"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), copy_function=shutil.copyfile)
        for info in src.parent.glob("xautodl-*.dist-info"):
            shutil.rmtree(CARRY / "site" / info.name, ignore_errors=True)
            shutil.copytree(info, CARRY / "site" / info.name, copy_function=shutil.copyfile)
        copied.append(str(dst.relative_to(REPO)))
    else:
        print("missing: xautodl is not importable here (make venv installs it): the GPU check will skip its rows")
    commit = _git_commit()
    if commit and "--prepare" not in commit:
        (CARRY / "commit.txt").write_text(commit + "\n")
    carry_mb = _size(CARRY) / 2**20
    tree_mb = _tree_size() / 2**20
    print(f"prepared {', '.join(copied) or 'nothing'}: .gpu-check is {carry_mb:.1f} MB; with the working tree "
          f"({tree_mb:.1f} MB) {carry_mb + tree_mb:.1f} MB of the device tool's {DEVICE_TREE_LIMIT_MB} MiB")
    try:
        ignored = subprocess.run(["git", "check-ignore", "-q", ".gpu-check/"], cwd=REPO).returncode == 0
    except OSError:
        ignored = True
    if not ignored:
        print("warning: .gpu-check/ is not git-ignored: the device tool carries only ignored paths")
    print('then, with the device tool: run(command="bash benchmarks/gpu_check.sh $OUT/gpu-check", '
          'carry=[".gpu-check"], timeout_s=560)')
    return 0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tree_size() -> int:
    """Tracked and untracked-not-ignored files: what the device tool sends besides carried paths."""
    try:
        names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                               capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((REPO / n.decode()).stat().st_size for n in names if n and (REPO / n.decode()).is_file())


# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("out_dir", nargs="?", type=Path, help="where every file goes (7 files, no folders)")
    parser.add_argument("--dry", action="store_true", default=os.environ.get("DRY", "") not in ("", "0"),
                        help="CPU, smoke sizes (DRY=1 too): every part in about a minute; no target is judged")
    parser.add_argument("--prepare", action="store_true", help="copy the reference data and xautodl into the "
                        "git-ignored .gpu-check/ to carry to the GPU machine, and say its size")
    parser.add_argument("--work", type=Path, help="scratch folder for runs, caches and pytest's files "
                        "(default: a new temporary folder)")
    parser.add_argument("--budget", action="append", default=[], metavar="PART=SECONDS",
                        help=f"one part's budget (parts: {', '.join(PARTS)}; GPU defaults "
                        + ", ".join(f"{k} {v:g}" for k, v in GPU_BUDGETS.items()) + ")")
    parser.add_argument("--only", default="", help="comma-separated parts to run (the others are reported skipped)")
    parser.add_argument("--skip", default="", help="comma-separated parts not to run")
    parser.add_argument("--gpu-epoch-methods", default=METHODS, help=f"gpu_epoch's --methods (default {METHODS})")
    parser.add_argument("--nbs-method", default="darts-v1", help="the real run's method (default darts-v1)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the packed real run (default 5; dry: 2)")
    parser.add_argument("--part", choices=("env", "nbs_run"), help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=120.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    budgets = {}
    for item in args.budget:
        name, _, value = item.partition("=")
        if name not in PARTS or finite(value) is None or float(value) <= 0:
            parser.error(f"--budget takes PART=SECONDS with PART one of {', '.join(PARTS)}: {item!r}")
        budgets[name] = float(value)
    args.budget = budgets
    for opt in ("only", "skip"):
        names = [p.strip() for p in getattr(args, opt).split(",") if p.strip()]
        if unknown := [p for p in names if p not in PARTS]:
            parser.error(f"--{opt}: unknown part(s) {', '.join(unknown)} (parts: {', '.join(PARTS)})")
        setattr(args, opt, names)
    if not args.prepare and args.out_dir is None:
        parser.error("OUT_DIR is required (or --prepare)")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        return prepare()
    if args.part == "env":
        return part_env(args.out_dir)
    if args.part == "nbs_run":
        return part_nbs_run(args.out_dir, args.work, args.deadline, args.dry, args.nbs_method, args.seeds)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
