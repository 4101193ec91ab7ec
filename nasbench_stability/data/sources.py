"""Read files uniformly from an extracted folder or a tar archive (``.tar``, ``.tar.gz``, ...).

Every dataset ships both ways (``cifar-10-python.tar.gz`` vs ``cifar-10-batches-py/``), so the
readers only see relative posix names and bytes. Tar access is strictly sequential: random access
into a gzip stream re-decompresses from the start, so readers ask for everything they need in
one pass (``iter_files`` with a predicate) instead of opening members by name.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import MissingFileError, NbsError

NamePredicate = Callable[[str], bool]

# What a damaged or non-tar file raises while being read, across Python versions.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


class FileSource:
    """Files under a folder or inside an archive, addressed by relative posix names."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def iter_names(self) -> Iterator[str]:
        """Names of all regular files, lazily (callers may stop early to sniff the format)."""
        raise NotImplementedError

    def iter_files(self, wanted: NamePredicate) -> Iterator[tuple[str, bytes]]:
        """(name, content) of every regular file whose name satisfies ``wanted``, in storage order."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short hash of path, sizes and mtimes: changes when the data on disk changes."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class DirSource(FileSource):
    """An extracted dataset folder."""

    def iter_names(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.path)
            for f in sorted(filenames):
                yield (rel / f).as_posix()

    def iter_files(self, wanted: NamePredicate) -> Iterator[tuple[str, bytes]]:
        for name in self.iter_names():
            if wanted(name):
                yield name, (self.path / name).read_bytes()

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.path.resolve()).encode())
        for name in self.iter_names():
            st = (self.path / name).stat()
            h.update(f"\0{name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


class TarSource(FileSource):
    """A (possibly compressed) tar archive, read in one sequential pass per call."""

    def _members(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        try:
            with tarfile.open(self.path, "r:*") as tf:
                for m in tf:
                    if m.isfile():
                        yield tf, m
        except _ARCHIVE_ERRORS as e:
            raise NbsError(f"cannot read archive {self.path}: {e}") from e

    @staticmethod
    def _clean(name: str) -> str:
        return PurePosixPath(name).as_posix().removeprefix("./")

    def iter_names(self) -> Iterator[str]:
        for _, m in self._members():
            yield self._clean(m.name)

    def iter_files(self, wanted: NamePredicate) -> Iterator[tuple[str, bytes]]:
        for tf, m in self._members():
            name = self._clean(m.name)
            if wanted(name):
                f = tf.extractfile(m)
                assert f is not None  # regular files always have a payload
                try:
                    data = f.read()
                except _ARCHIVE_ERRORS as e:
                    raise NbsError(f"cannot read archive {self.path}: {e}") from e
                yield name, data

    def fingerprint(self) -> str:
        st = self.path.stat()
        key = f"{self.path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def open_source(path: Path) -> FileSource:
    """A FileSource for a folder or an archive; a one-line user error if it is neither."""
    path = Path(path).expanduser()
    if path.is_dir():
        return DirSource(path)
    if not path.exists():
        raise MissingFileError(f"dataset path does not exist: {path}")
    if not tarfile.is_tarfile(path):
        raise NbsError(f"cannot read archive {path}: not a tar archive")
    return TarSource(path)
