"""An image folder with a labels CSV, written pixel for pixel from a dataset in the common schema
(the layout ``folder:ROOT?...`` dataset specs read)."""

from __future__ import annotations

import csv
from pathlib import Path

from lanic_hub.constants import CHEXPERT_LABELS
from lanic_hub.data import load_image


def write_image_folder(ds, root: Path, csv_name: str = "labels.csv") -> Path:
    """PNGs under ``root/png`` and ``root/<csv_name>`` with columns path, patient, split, report
    and the 14 CheXpert observations (1 / 0 / -1 / blank). Returns ``root``."""
    (root / "png").mkdir(parents=True, exist_ok=True)
    with (root / csv_name).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient", "split", "report", *CHEXPERT_LABELS])
        for k, r in enumerate(ds):
            load_image(r["image"]).save(root / "png" / f"{k:04d}.png")
            cells = ["" if r[c] is None else int(r[c]) for c in CHEXPERT_LABELS]
            w.writerow([f"png/{k:04d}.png", r["patient_id"], r["split"], r["report"], *cells])
    return root
