"""Destinations nbs cannot write, through the real CLI: one line, exit 2, nothing written or changed.

Read-only cases use permission bits, or as root (where bits do not stop writes) a read-only bind
mount in a private mount namespace; they are skipped, saying why, where neither is possible. A
file where a folder belongs fails for root too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from files_helpers import RUN_ARGS, RUN_NAME, copy_run, nbs_call, read_only
from test_engine_runs import assert_one_line_error


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.name != ".lock"}


def _command(command: str, dest: Path, runs: Path) -> list:
    return {
        "run": [*RUN_ARGS, "--out", dest],
        "report": ["report", runs, "--out", dest, "--format", "png"],
        "plot": ["plot", "collapse", runs, "--out", dest],
        "bench": ["bench", "build", "--out", dest],
    }[command]


# (command, how the destination is broken, what the one line must say)
CASES = [
    ("run", "file", "is a file, not a folder"), ("run", "under-file", "which is a file"), ("run", "read-only", ""),
    ("report", "file", "is a file, not a folder"), ("report", "under-file", "which is a file"),
    ("report", "read-only", ""), ("report", "figures-is-a-file", "is a file, not a folder"),
    # a figure or table is a file: under a file, its folder is the file
    ("plot", "under-file", "is a file, not a folder"), ("plot", "read-only", ""), ("plot", "folder", "is a folder"),
    ("bench", "under-file", "is a file, not a folder"), ("bench", "read-only", ""), ("bench", "folder", "is a folder"),
]


@pytest.mark.parametrize("command,broken,says", CASES, ids=[f"{c}-{b}" for c, b, _ in CASES])
def test_unwritable_destination_is_one_line_and_writes_nothing(nbs_env, reference_run, tmp_path, command, broken,
                                                               says):
    runs = copy_run(reference_run, tmp_path / "runs")
    blocker = tmp_path / "blocker"
    blocker.write_text("a user's file\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    name = {"plot": "c.png", "bench": "t.parquet"}.get(command, "out")
    dest = {"file": blocker, "under-file": blocker / name, "read-only": ro / name, "folder": tmp_path / name,
            "figures-is-a-file": tmp_path / name}[broken]
    if broken == "folder":
        dest.mkdir()
    if broken == "figures-is-a-file":
        dest.mkdir()
        (dest / "figures").write_text("not a folder\n")
    before = tree(tmp_path)
    if broken == "read-only":
        with read_only(ro) as prefix:
            proc = nbs_call(nbs_env, *_command(command, dest, runs), prefix=prefix)
        assert_one_line_error(proc, str(ro))
        assert "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr, proc.stderr
    else:
        proc = nbs_call(nbs_env, *_command(command, dest, runs))
        named = {"file": blocker, "under-file": blocker, "folder": dest, "figures-is-a-file": dest / "figures"}
        assert_one_line_error(proc, says, str(named[broken]))
    assert tree(tmp_path) == before


def test_finished_run_on_read_only_storage_is_reported_finished(nbs_env, reference_run, tmp_path):
    out = copy_run(reference_run, tmp_path / "runs")
    before = tree(out)
    with read_only(out) as prefix:
        proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out, prefix=prefix)
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert f"{out / RUN_NAME} already finished; not re-run" in proc.stdout
    assert tree(out) == before


def test_unfinished_run_on_read_only_storage_is_one_line(nbs_env, interrupted_run, tmp_path):
    out = copy_run(interrupted_run, tmp_path / "runs")
    before = tree(out)
    with read_only(out) as prefix:
        proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out, prefix=prefix)
    assert_one_line_error(proc, str(out / RUN_NAME / ".lock"), "needs a writable run directory")
    assert tree(out) == before


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "interrupted"])
def test_a_lock_that_cannot_be_opened_only_matters_to_an_unfinished_run(nbs_env, reference_run, interrupted_run,
                                                                        tmp_path, finished):
    """A folder where the lock file belongs stops writes to it for root too: the same path as read-only storage."""
    out = copy_run(reference_run if finished else interrupted_run, tmp_path / "runs")
    (out / RUN_NAME / ".lock").mkdir()
    before = tree(out)
    proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out)
    if finished:
        assert proc.returncode == 0 and "already finished" in proc.stdout, proc.stdout + proc.stderr
    else:
        assert_one_line_error(proc, ".lock", "needs a writable run directory")
    assert tree(out) == before
