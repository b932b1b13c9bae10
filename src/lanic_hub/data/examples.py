"""Picking a few example images to show: the README's, the demo's and those a model folder carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Example:
    row: int  # index in the dataset
    caption: str  # "<source>; ground truth: ..." (a phantom) or "<source>; report labels: ..."


def pick_examples(ds, source: str, n: int = 4, scan: int | None = None) -> list[Example]:
    """Up to ``n`` test-split rows of ``ds``: one per leading positive finding, then one with none.

    A phantom world (``gt_*`` columns) is judged by its ground truth and captioned with the factors
    an image carries (not the numeric truth: ctr, anatomy, ...); other data by its report labels.
    ``scan``: look at only the first so many test rows. Reads no image."""
    from ..constants import FINDINGS
    from .phantom import ALL_FACTORS, truth
    from .phantom.case import FINDING_FACTORS

    if "split" not in ds.column_names:
        return []
    gt = [f for f in ALL_FACTORS if truth.column(f) in ds.column_names]
    cols = ["split"] + (
        [truth.column(f) for f in gt] if gt else [f for f in FINDINGS if f in ds.column_names]
    )
    table = ds.select_columns(cols).to_dict()
    test = [i for i, s in enumerate(table["split"]) if s == "test"][:scan]
    picked: list[Example] = []
    seen: set[str] = set()
    for i in test:
        if gt:
            present = [f for f in gt if table[truth.column(f)][i]]  # 0/1 (or bool) columns
            leading = [f for f in present if f in FINDING_FACTORS]
            key = leading[0] if leading else "normal"
            if key == "normal" and present:  # "normal" means no factor at all
                continue
            caption = f"{source}; ground truth: {', '.join(present) or 'normal'}"
        else:
            pos = [f for f in FINDINGS if table.get(f, [None] * (i + 1))[i] == 1.0]
            key = pos[0] if pos else "normal"
            caption = f"{source}; report labels: {', '.join(pos) or 'none of the five findings'}"
        if key in seen:
            continue
        seen.add(key)
        picked.append(Example(i, caption))
        if len(picked) >= n:
            break
    return picked


def phantom_examples(folder: Path, n: int = 4) -> list[tuple[str, str]]:
    """PNG copies of a few test phantoms of a run folder (``folder/phantoms/hf``) in
    ``folder/demo-examples``, with their ground truth as captions: the images the README and the
    demo point at (one per leading finding, and one normal)."""
    from .images import load_image
    from .open import open_dataset

    hf = folder / "phantoms" / "hf"
    if not hf.is_dir():
        return []
    ds = open_dataset(f"hf:{hf.resolve()}")
    out_dir = folder / "demo-examples"
    out_dir.mkdir(exist_ok=True)
    res = []
    for ex in pick_examples(ds, "phantom", n):  # one per leading finding, one normal
        path = out_dir / f"phantom_{ex.row:05d}.png"
        if not path.exists():
            load_image(ds[ex.row]["image"]).save(path)
        res.append((str(path), ex.caption))
    return res
