"""Where the demo's examples and files come from: the model folder's exported examples, the NIH
fixture images, the folders Gradio may serve, and the default model."""

from __future__ import annotations

import os
from pathlib import Path


def model_examples(folder: Path | None) -> list[tuple[str, str]]:
    """The examples a model folder carries (``examples/examples.json``, written at export for
    data that may be re-published): (image path, caption) pairs; none for older folders."""
    import json

    index = folder / "examples" / "examples.json" if folder else None
    if index is None or not index.is_file():
        return []
    return [(str(folder / "examples" / e["file"]), e["caption"]) for e in json.loads(index.read_text())]


def allowed_paths(folder: Path | None) -> list[str] | None:
    """The folders the app may serve files from: the model folder, and where it is a snapshot of
    the Hub cache, the cache's ``blobs/`` (the snapshot's files are links into it, and Gradio
    checks the target)."""
    if folder is None:
        return None
    out = [str(folder)]
    if folder.parent.name == "snapshots" and (folder.parent.parent / "blobs").is_dir():
        out.append(str((folder.parent.parent / "blobs").resolve()))
    return out


def nih_examples(root: Path | None, n: int = 4) -> list[tuple[str, str]]:
    import csv

    if root is None:
        return []
    labels = root / "labels.csv"
    if not labels.is_file():
        return []
    rows = list(csv.DictReader(labels.open()))
    big = [r for r in rows if int(r.get("width", 0) or 0) >= 128][:n]
    return [(str(root / r["file"]), f"NIH ChestX-ray14; NIH labels: {r['finding_labels']}") for r in big]


def nih_examples_dir() -> Path | None:
    """The NIH example images: ``$LANIC_NIH_EXAMPLES``, else ``cxr_real`` in the shared fixtures
    (``$LANIC_SHARED_DATA``, else beside the clone; :mod:`lanic_hub.utils.fixtures`)."""
    from ..utils.fixtures import shared_data_dir

    if os.environ.get("LANIC_NIH_EXAMPLES"):
        return Path(os.environ["LANIC_NIH_EXAMPLES"])
    shared = shared_data_dir()
    return shared / "cxr_real" if shared else None


def default_model_path() -> str:
    return os.environ.get("LANIC_MODEL", "runs/quickstart/model")
