"""Where nbs writes: check a destination before slow work, and turn OS write failures into one line.

A read-only folder, a file where a folder should be, or a full disk otherwise surfaces as an
``OSError`` traceback from deep inside a writer. Permission bits cannot answer "may I write here?"
(root ignores them; a read-only mount is not in them), so :func:`check_writable` tries a write.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import NbsError


class WriteError(NbsError, OSError):
    """A destination nbs cannot write: read-only, a file in the way, no space left, ... (still an
    ``OSError``, so callers that tolerate failed writes, like the dataset cache, keep doing so)."""


def reason(err: OSError) -> str:
    """The OS's short reason ("Read-only file system", "Not a directory"), without the path."""
    return err.strerror or str(err) or type(err).__name__


def file_in_the_way(folder: Path) -> Path | None:
    """The existing non-folder at ``folder`` or above it that stops ``folder`` from being a folder."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_folder_path(folder: str | os.PathLike, what: str) -> Path:
    """A one-line :class:`WriteError` if ``folder`` is, or lies under, a file; creates nothing."""
    folder = Path(folder)
    blocker = file_in_the_way(folder)
    if blocker == folder:
        raise WriteError(f"{what} {folder} is a file, not a folder")
    if blocker is not None:
        raise WriteError(f"{what} {folder} lies under {blocker}, which is a file, not a folder")
    return folder


def check_writable(folder: str | os.PathLike, what: str) -> Path:
    """Fail now, in one line, if ``folder`` could not be created or written; creates nothing.

    Tries a probe file in ``folder`` or, if it does not exist yet, in its nearest existing parent.
    """
    folder = check_folder_path(folder, what)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    try:
        fd, probe = tempfile.mkstemp(prefix=".nbs-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = folder if existing == folder else f"{folder} (in {existing})"
        raise WriteError(f"cannot write {what} {where}: {reason(err)}") from None
    return folder


def ensure_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` and its parents; a one-line :class:`WriteError` if that is impossible."""
    folder = check_folder_path(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(f"cannot create {what} {folder}: {reason(err)}") from None
    return folder


@contextmanager
def writing(target: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``target`` into a one-line :class:`WriteError`."""
    try:
        yield
    except OSError as err:  # err.filename may be a temporary file beside the target: name the target
        raise WriteError(f"cannot write {what} {target}: {reason(err)}") from None
