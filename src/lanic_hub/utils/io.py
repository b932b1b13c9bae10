"""Atomic writes: an output is either the old complete one or the new complete one, never half."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``tmp`` to ``final``, replacing what was there.

    The old folder is first renamed to ``final.old``; a kill between the two renames leaves it
    there complete, and the next call (or :func:`recover_dir`) puts it back before anything else.
    """
    tmp, final = Path(tmp), Path(final)
    old = recover_dir(final)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def recover_dir(final: str | Path) -> Path:
    """Undo a swap that :func:`replace_dir` did not finish; returns the ``.old`` path."""
    final = Path(final)
    old = final.with_name(final.name + ".old")
    if old.is_dir() and not final.exists():
        old.rename(final)
    return old


def link_missing(src: str | Path, dst: str | Path) -> None:
    """Hard-link (or copy) into ``dst`` every file of ``src`` that ``dst`` does not have."""
    src, dst = Path(src), Path(dst)
    for f in sorted(src.rglob("*")):
        target = dst / f.relative_to(src)
        if f.is_dir() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slug(name: str) -> str:
    """``name`` as a file name: runs of other characters than letters, digits, ``_.-`` become
    ``_``; at most 120 characters ('model' when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:120] or "model"
