"""Typed errors. Every message says what was wrong, where (file, row, key) and what to do."""

from __future__ import annotations

from pathlib import Path


class LanicError(Exception):
    """Base class of every error lanic-hub raises on purpose."""


class ConfigError(LanicError, ValueError):
    """A configuration value is invalid."""


class DataError(LanicError, ValueError):
    """A dataset file or row is not what it should be."""


class SchemaError(DataError):
    """A table lacks required columns."""

    def __init__(self, path: str | Path, missing: list[str], present: list[str]) -> None:
        self.path, self.missing = str(path), list(missing)
        super().__init__(
            f"{path}: missing required column(s) {missing}; the file has {present[:20]}"
            f"{' ...' if len(present) > 20 else ''}. Check that this is the right file."
        )


class RecordError(DataError):
    """An entry of a JSON sidecar (a pattern of ``patterns.json``) is not what its schema says."""


class ResultsError(RecordError):
    """A ``lanic-eval`` results file cannot be read (or put on a leaderboard)."""


class LabelValueError(DataError):
    """A label cell holds a value no labelling convention allows."""

    def __init__(self, path: str | Path, row: int, column: str, value: object, allowed: str) -> None:
        self.path, self.row, self.column, self.value = str(path), row, column, value
        super().__init__(
            f"{path}: row {row}, column {column!r}: unknown label value {value!r} (allowed: {allowed})"
        )


class ImageLoadError(DataError):
    """An image file could not be read as a radiograph."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source, self.reason = str(source), reason
        super().__init__(f"{source}: cannot load image: {reason}")


class LicenceError(LanicError, PermissionError):
    """An operation would re-publish images whose licence forbids it."""


class VocabularyError(ConfigError):
    """A vocabulary file has a malformed line, an unknown category or an empty phrase."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path, self.line = str(path), line
        super().__init__(f"{path}: line {line}: {reason}")


class BankMismatchError(LanicError, ValueError):
    """A pattern bank is used with a model (classifier or ensemble) it was not built from."""
