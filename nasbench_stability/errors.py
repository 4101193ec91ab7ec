"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""

from __future__ import annotations


class NbsError(Exception):
    """An expected mistake in the user's input or environment (bad arch string, missing file, ...)."""


class ArchStringError(NbsError, ValueError):
    """A malformed NB201 arch string, index or NASLib tuple."""


class MissingFileError(NbsError, FileNotFoundError):
    """A benchmark table, dataset or checkpoint that should exist does not."""


class ConfigError(NbsError, ValueError):
    """An unknown method/dataset/preset, a bad `--set` override, or an incompatible resume."""


class CheckpointError(NbsError):
    """A checkpoint that cannot be read (truncated, corrupted) or does not match its run."""


class DivergenceError(NbsError):
    """The search produced a non-finite loss; the run stops cleanly and records it."""


class DamagedFileError(NbsError):
    """A run's bookkeeping file (record, status) that is damaged and cannot be repaired from the checkpoint."""


QUOTE_LIMIT = 60


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of user input for an error message, cut to about ``limit`` characters: a pasted
    10,000-character argument would otherwise bury the one line that says what is wrong."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit * 2 else f"{text[:limit]}… ({len(text):,} characters)"
