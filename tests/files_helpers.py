"""Helpers for the file-safety tests: `nbs` with an optional prefix (a read-only mount), a read-only
folder that works as root too, and byte snapshots of what must not change."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import NBS, REPO

# C=8 (smoke), 16+16 images in batches of 8 (2 steps an epoch), one eval batch; 3 epochs
RUN_ARGS = ("run", "--method", "darts-v1", "--seeds", "1", "--epochs", "3", "--preset", "smoke", "--quiet",
            "--set", "data_subset=16", "--set", "batch_size=8", "--set", "eval_batches=1")
RUN_NAME = "darts-v1-cifar10-seed0"


def nbs_call(env: dict[str, str], *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``nbs ARGS...`` in a new process, optionally run through ``prefix`` (e.g. a read-only mount)."""
    return subprocess.run([*prefix, *NBS, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock file, which a run may create) by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and p.name != ".lock"}


def copy_run(template: Path, dest: Path) -> Path:
    """A private copy of a template run directory, as ``dest/<run name>``; returns ``dest``."""
    shutil.copytree(template, dest / template.name, ignore=shutil.ignore_patterns(".lock"))
    return dest


def _can_write(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _ro_mount_prefix(folder: Path) -> tuple[str, ...] | None:
    """A command prefix that runs the command in a private mount namespace where ``folder`` is
    bind-mounted read-only (root can ignore permission bits, not a read-only mount); None if the
    machine does not allow it."""
    if shutil.which("unshare") is None:
        return None
    prefix = ("unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder))
    probe = subprocess.run([*prefix, "sh", "-c", f'touch "{folder}/.probe" 2>/dev/null && exit 3 || exit 0'],
                           capture_output=True)
    (folder / ".probe").unlink(missing_ok=True)
    return prefix if probe.returncode == 0 else None


@contextmanager
def read_only(folder: Path) -> Iterator[tuple[str, ...]]:
    """Make ``folder`` read-only for an `nbs` call; yields the prefix to run the call with.

    Permission bits where they work (not root); as root, a read-only bind mount in a private mount
    namespace; else the test is skipped, saying why.
    """
    folder = Path(folder)
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if not p.is_symlink()}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        if not _can_write(folder):
            yield ()
            return
        for p, mode in modes.items():
            p.chmod(mode)
        prefix = _ro_mount_prefix(folder)
        if prefix is None:
            pytest.skip("running as root (permission bits do not stop writes) without `unshare`/`mount` "
                        "to make a read-only mount")
        yield prefix
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def pids_where(field: int, value: int) -> list[int]:
    """Processes whose /proc/PID/stat field ``field`` (counted after the command name: 1 = parent pid,
    3 = session id) equals ``value``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value:
            pids.append(int(stat.parent.name))
    return pids
