"""The base of every record: validation with errors naming the file and the key, schema versions,
atomic writing (:class:`Record`), and nested parts that keep unknown keys (:class:`Part`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from ..errors import LanicError, RecordError
from ..utils.io import write_text_atomic

R = TypeVar("R", bound="Record")
P = TypeVar("P", bound="Part")


class Part(BaseModel):
    """A nested part of a record: typed fields, unknown keys kept."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, ser_json_inf_nan="constants")

    @classmethod
    def parse(cls: type[P], d: Any, where: str | Path, error: type[LanicError] = RecordError) -> P:
        """Validate a decoded JSON object; an ``error`` naming ``where`` and the key when it is not
        what the fields say."""
        if not isinstance(d, dict):
            raise error(f"{where}: expected a JSON object, found {type(d).__name__}")
        try:
            return cls.model_validate(d)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise error(f"{where}: key {key!r}: {err['msg']}{more}") from exc


class Record(Part):
    """Base of every file record: read, validate, check, write."""

    FILE: ClassVar[str]
    """The file's name inside its folder."""
    SCHEMA: ClassVar[int] = 1
    """The newest schema version this code reads and writes."""
    VERSION_KEY: ClassVar[str | None] = None
    """The key that holds the file's schema version (None: the file has none; it is version 1)."""
    VERSION_IF_MISSING: ClassVar[int | None] = None
    """The version of a file without ``VERSION_KEY`` (written before it had one); None: required."""
    ERROR: ClassVar[type[LanicError]] = RecordError
    """The error raised for a file that cannot be read as this record."""

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this record was read from (None: made in memory)."""
        return self._source

    @classmethod
    def path_in(cls, folder_or_file: str | Path) -> Path:
        """The record's file: ``folder_or_file`` itself when it names a file, else ``folder / FILE``."""
        p = Path(folder_or_file)
        return p if p.suffix == ".json" else p / cls.FILE

    @classmethod
    def from_dict(cls: type[R], d: Any, where: str | Path = "record") -> R:
        """Validate a decoded document; the error names ``where`` and the key."""
        if not isinstance(d, dict):
            raise cls.ERROR(f"{where}: expected a JSON object, found {type(d).__name__}")
        if cls.VERSION_KEY is not None:
            v = d.get(cls.VERSION_KEY, cls.VERSION_IF_MISSING)
            if type(v) is not int:
                raise cls.ERROR(
                    f"{where}: key {cls.VERSION_KEY!r}: the schema version must be an integer, found {v!r}"
                )
            if v > cls.SCHEMA:
                raise cls.ERROR(
                    f"{where}: schema version {v} is newer than this lanic-hub reads ({cls.SCHEMA}); "
                    "upgrade lanic-hub"
                )
        return cls.parse(d, where, cls.ERROR)

    @classmethod
    def read(cls: type[R], folder_or_file: str | Path, *, check: bool = True) -> R:
        """The record in ``folder_or_file`` (a folder holding ``FILE``, or the file itself).
        ``check``: also refuse a record whose own figures disagree (:meth:`problems`)."""
        path = cls.path_in(folder_or_file)
        if not path.is_file():
            raise cls.ERROR(f"{path}: missing")
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise cls.ERROR(f"{path}: not valid JSON ({exc})") from exc
        rec = cls.from_dict(doc, path)
        rec._source = path
        if check and (bad := rec.problems()):
            raise cls.ERROR(f"{path}: " + "; ".join(bad))
        return rec

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: the fields in their order, then the keys this version does not know.
        A field that was neither read nor set is left out (its default is what a reader gets), so a
        file read and written again has the same keys."""
        return self.model_dump(mode="json", exclude_unset=True)

    def write(self, folder_or_file: str | Path) -> Path:
        """Write atomically (a reader never sees half a file); returns the path."""
        path = self.path_in(folder_or_file)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    def problems(self) -> list[str]:
        """What in the record contradicts itself (empty: consistent). Subclasses add their rules."""
        return []
