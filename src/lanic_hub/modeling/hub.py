"""Publishing a model folder: what in it may not be re-published (images, report text of data
whose licence forbids it), the exact list of files an upload sends, and the upload itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import LicenceError
from .folder import SIDECAR, ModelFolderError, check_model_folder


def restricted_content(folder: str | os.PathLike) -> list[str]:
    """What in a model folder may not be re-published, one ``"file: why"`` line each: nothing
    when its data's licence allows re-publishing (``patterns.json``'s ``meta.data_source``; a
    folder that does not say counts as restricted). Otherwise gallery thumbnails, example images
    and report text: the typical sentences of ``patterns.json``, and any of them quoted in another
    text file."""
    folder = Path(folder)
    doc = json.loads((folder / SIDECAR).read_text())
    src = doc.get("meta", {}).get("data_source") or {}
    if src.get("redistributable", False):
        return []
    name = src.get("name", "unrecorded data")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    out = []
    for sub, what in (("thumbnails", "gallery images"), ("examples", "example images")):
        images = [p for p in files if p.relative_to(folder).parts[0] == sub]
        if images:
            out.append(f"{sub}/: {len(images)} {what} of {name}")
    sentences = sorted({t for p in doc.get("patterns", []) for t in p.get("typical_sentences") or []})
    if sentences:
        n = sum(bool(p.get("typical_sentences")) for p in doc.get("patterns", []))
        out.append(
            f"{SIDECAR}: {len(sentences)} report sentences of {name} (typical_sentences of {n} patterns)"
        )
    for p in files:
        if p.suffix in (".md", ".json", ".txt", ".py", ".html") and p.name != SIDECAR and sentences:
            text = p.read_text(errors="replace")
            quoted = [t for t in sentences if t in text]
            if quoted:
                out.append(f"{p.relative_to(folder)}: quotes {len(quoted)} report sentences of {name}")
    return out


def upload_plan(folder: str | os.PathLike) -> list[str]:
    """The files :meth:`LanICModel.push_to_hub` would upload from ``folder`` (relative paths), after
    checking that it is an intact LanIC model with a card, and that it re-publishes no images or
    report text of a dataset whose licence forbids it (:func:`restricted_content`)."""
    folder = Path(folder)
    check_model_folder(folder)
    if not (folder / "README.md").is_file():
        raise ModelFolderError(f"{folder}: no README.md model card; write one with `lanic-hub export`")
    bad = restricted_content(folder)
    if bad:
        raise LicenceError(
            f"{folder}: its data may not be re-published, but the folder holds: "
            + "; ".join(bad)
            + ". Rebuild the bank (typical sentences are withheld for such data) or delete those "
            "files before publishing"
        )
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return [f for f in files if not f.endswith((".bin", ".pt", ".pkl", ".pth"))]


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str = "Upload LanIC model",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
):
    """Upload exactly :func:`upload_plan`'s files of a model folder to the Hub (needs network);
    the licence check runs first, so nothing is sent when it refuses."""
    files = upload_plan(folder)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    return api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        allow_patterns=files,
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
    )
