"""Gallery thumbnails: written only where the dataset's licence allows re-publishing images."""

from __future__ import annotations

from pathlib import Path

from ..data.images import load_image
from ..data.schema import require_redistributable
from ..utils.progress import tqdm
from .bank import PatternBank


def thumbnail_strip(folder: str | Path | None, pattern_id: int) -> Path | None:
    """The file of a pattern's gallery strip in a model folder, or None when it has none."""
    if folder is None:
        return None
    f = Path(folder) / "thumbnails" / f"p{pattern_id:05d}.png"
    return f if f.is_file() else None


def export_thumbnails(
    bank: PatternBank,
    ds,
    folder: str | Path,
    size: int = 128,
    per_pattern: int | None = None,
    progress: bool = True,
) -> int:
    """Write ``thumbnails/p{pattern:05d}.png`` into ``folder``: one strip per pattern, its gallery's
    first images side by side, best first, each in a ``size`` x ``size`` tile (grayscale, aspect
    kept, centred). One file per pattern keeps a paper-scale bank (thousands of patterns) far below
    the Hub's 10,000 files per folder.

    Raises :class:`~lanic_hub.errors.LicenceError` *before writing anything* when the dataset's
    licence forbids re-publishing its images (MIMIC-CXR, CheXpert): use the row references in
    ``patterns.json`` instead. Returns the number of thumbnails (tiles) written.
    """
    from PIL import Image

    require_redistributable(ds, "export gallery thumbnails")
    out = Path(folder) / "thumbnails"
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    images = ds.select_columns(["image"])
    for p in tqdm(bank.patterns, desc="thumbnails", disable=not progress):
        gallery = p.gallery[:per_pattern]
        if not gallery:
            continue
        strip = Image.new("L", (size * len(gallery), size))
        for rank, g in enumerate(gallery):
            im = load_image(images[g["row"]]["image"]).convert("L")
            im.thumbnail((size, size))
            strip.paste(im, (rank * size + (size - im.width) // 2, (size - im.height) // 2))
        tmp = out / f".p{p.id:05d}.png.tmp"
        strip.save(tmp, format="PNG")
        tmp.replace(out / f"p{p.id:05d}.png")
        n += len(gallery)
    return n
