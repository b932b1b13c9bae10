"""Gallery thumbnails: written only where the dataset's licence allows re-publishing images."""

from __future__ import annotations

from pathlib import Path

from ..data.images import load_image
from ..data.schema import require_redistributable
from ..utils.progress import tqdm
from .bank import PatternBank


def export_thumbnails(
    bank: PatternBank,
    ds,
    folder: str | Path,
    size: int = 128,
    per_pattern: int | None = None,
    progress: bool = True,
) -> int:
    """Write ``thumbnails/p{pattern:05d}_{rank:02d}.png`` for each pattern's gallery into ``folder``.

    Raises :class:`~lanic_hub.errors.LicenceError` *before writing anything* when the dataset's
    licence forbids re-publishing its images (MIMIC-CXR, CheXpert): use the row references in
    ``patterns.json`` instead. Returns the number of thumbnails written.
    """
    require_redistributable(ds, "export gallery thumbnails")
    out = Path(folder) / "thumbnails"
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    images = ds.select_columns(["image"])
    for p in tqdm(bank.patterns, desc="thumbnails", disable=not progress):
        for rank, g in enumerate(p.gallery[:per_pattern]):
            im = load_image(images[g["row"]]["image"]).convert("L")
            im.thumbnail((size, size))
            im.save(out / f"p{p.id:05d}_{rank:02d}.png")
            n += 1
    return n
