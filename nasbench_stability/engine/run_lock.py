"""A run directory's lock (``.lock``, fcntl.flock): one process runs a run directory at a time.

The lock is what tells a live run from a killed one: ``status.json`` says "running" in both, but
only a live run holds the lock (the kernel drops it when the process dies, however it dies).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..destinations import WriteError, reason
from ..errors import ConfigError

LOCK_FILE = ".lock"


@contextmanager
def hold_run_lock(run_dir: Path) -> Iterator[None]:
    """One process per run directory: a second `nbs run` on the same run fails fast."""
    try:
        lock = open(run_dir / LOCK_FILE, "w")
    except OSError as err:
        raise WriteError(f"cannot write {run_dir / LOCK_FILE}: {reason(err)}; a run that is not finished needs "
                         f"a writable run directory") from None
    with lock as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{run_dir} is being run by another process") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_lock_held(run_dir: Path) -> bool | None:
    """Whether a process holds ``run_dir``'s lock now; None if that cannot be told (an unreadable lock file).

    Read-only and never waiting: the file is opened without creating or truncating it, and probed with a
    non-blocking *shared* lock, which a live run's exclusive lock refuses at once. The probe is released
    immediately; only a run starting in that instant could see it (and would stop with "being run by another
    process", writing nothing).
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False   # never locked here (or a copied directory): nothing holds it
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
