"""Session fixtures built once, also when pytest-xdist runs the suite in several worker processes.

Kept apart from conftest.py (and free of torch) so that its test can run it in new processes cheaply."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from filelock import FileLock

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")   # "gw0", "gw1", ... under pytest-xdist; None serially
BUILD_TIMEOUT = 1800   # seconds a worker waits for another to finish a shared build (the study takes minutes)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """``build(folder)`` run once per test session, also under pytest-xdist, where it is the first
    worker to ask that builds (under a file lock) and the others that reuse the folder (the pattern
    xdist documents: the workers' base temp folders share a parent). A build that failed half-way is
    redone by the next worker that asks."""
    root = tmp_path_factory.getbasetemp()
    if XDIST_WORKER is not None:
        root = root.parent
    folder, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock", timeout=BUILD_TIMEOUT):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder
