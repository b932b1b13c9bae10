"""Put a folder into the Hugging Face cache layout, so that ``hf-hub:<repo>`` resolves offline.

Useful to prepare an air-gapped machine from a copied folder, and for tests: the cache written
here is read by ``huggingface_hub`` itself (``snapshot_download(local_files_only=True)``).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .io import sha256_file as _sha256


def put_in_hf_cache(
    src: str | Path, repo_id: str, cache: str | Path, revision: str = "main", repo_type: str = "model"
) -> Path:
    """Copy ``src``'s files into ``cache`` as snapshot ``revision`` of ``repo_id``; returns the snapshot dir.

    Files are stored once under ``blobs/`` (named by their sha256) and linked from the snapshot,
    as huggingface_hub does.
    """
    src, cache = Path(src), Path(cache)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    commit = hashlib.sha1("".join(f"{p.relative_to(src)}:{_sha256(p)}" for p in files).encode()).hexdigest()
    root = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snap = root / "snapshots" / commit
    for p in files:
        digest = _sha256(p)
        blob = root / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(p, blob)
        dst = snap / p.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        dst.symlink_to(Path("../" * len(p.relative_to(src).parts) + "../blobs") / digest)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    return snap


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for the cache only, read as
    huggingface_hub reads it ("1", "true", "yes", "on"; "0" and empty mean online)."""
    import os

    v = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return v.strip().upper() in ("1", "ON", "YES", "TRUE")


def download_command(repo_id: str) -> str:
    """The command of the installed huggingface_hub that downloads ``repo_id`` once: ``hf
    download`` (huggingface_hub >= 1.0), else the older ``huggingface-cli download``."""
    import importlib.util

    has_hf = importlib.util.find_spec("huggingface_hub.cli.hf") is not None
    return f"{'hf' if has_hf else 'huggingface-cli'} download {repo_id}"


def not_cached_reason(repo_id: str, exc: BaseException, offline: bool) -> str:
    """Why ``repo_id`` could not be had, as its real cause: offline mode with no cached copy, or a
    Hub that could not be reached (no network) with no cached copy."""
    from huggingface_hub.constants import HF_HUB_CACHE

    where = f"the Hugging Face cache ({HF_HUB_CACHE})"
    if offline:
        return f"{repo_id} is not in {where} and HF_HUB_OFFLINE is set, so the Hub was not asked"
    cause = exc.__cause__ or exc.__context__
    detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
    return f"{repo_id} is not in {where} and the Hub could not be reached (no network?{detail})"
