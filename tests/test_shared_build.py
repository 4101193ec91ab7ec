"""built_once (tests/shared_build.py): what the suite's pytest-xdist workers share is built once, by the
first worker to ask, and a failed build is redone. Workers are real processes here, as under xdist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# one worker (PYTEST_XDIST_WORKER names it, as xdist does) asks for "thing"; the build takes a moment,
# so that workers started together overlap, and logs who ran it
WORKER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from shared_build import built_once

root, mode = Path(sys.argv[2]), sys.argv[3]
name = os.environ.get("PYTEST_XDIST_WORKER", "serial")

class Factory:  # the part of pytest's tmp_path_factory that built_once uses
    @staticmethod
    def getbasetemp():  # pytest makes it
        (root / name).mkdir(exist_ok=True)
        return root / name

def build(folder):
    with open(root / "builds.log", "a") as log:
        log.write(name + "\\n")
    (folder / "built-by").write_text(name)
    time.sleep(0.5)
    if mode == "fail":
        raise RuntimeError("build failed")

print(built_once(Factory, "thing", build))
"""


def ask(root: Path, *workers: str | None, mode: str = "ok") -> list[subprocess.CompletedProcess]:
    """Start one process per worker name at once (None: no xdist), wait for all."""
    base = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(TESTS), str(root), mode],
                              env=base if w is None else {**base, "PYTEST_XDIST_WORKER": w},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in workers]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def builds(root: Path) -> list[str]:
    return (root / "builds.log").read_text().split()


def test_workers_asking_at_once_share_one_build(tmp_path):
    results = ask(tmp_path, "gw0", "gw1", "gw2")
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    folders = {r.stdout.strip() for r in results}
    assert folders == {str(tmp_path / "thing")}           # the workers' common parent, not each its own
    assert len(builds(tmp_path)) == 1
    assert (tmp_path / "thing" / "built-by").read_text() == builds(tmp_path)[0]
    ask(tmp_path, "gw3")                                    # a worker that comes later reuses it
    assert len(builds(tmp_path)) == 1


def test_a_failed_build_is_redone_by_the_next_worker(tmp_path):
    failed, = ask(tmp_path, "gw0", mode="fail")
    assert failed.returncode != 0 and "build failed" in failed.stderr
    again, = ask(tmp_path, "gw1")
    assert again.returncode == 0, again.stderr
    assert builds(tmp_path) == ["gw0", "gw1"]
    assert (tmp_path / "thing" / "built-by").read_text() == "gw1"


def test_without_xdist_the_build_stays_in_the_session_folder(tmp_path):
    result, = ask(tmp_path, None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "serial" / "thing")   # not shared with other sessions
