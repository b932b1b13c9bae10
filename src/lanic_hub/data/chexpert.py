"""CheXpert (``train.csv`` / ``valid.csv``) in the common schema.

``Path`` cells look like ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``,
relative to the folder *above* the dataset root; both that and root-relative paths are accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..constants import CHEXPERT_LABELS
from ..errors import DataError
from .schema import CHEXPERT, build_dataset
from .tables import parse_label, patient_split, read_table, records

_PATIENT = re.compile(r"(patient\d+)/(study\d+)/(view\d+)")


def load_chexpert(root: str | Path, *, frontal_only: bool = True, valid_as: str = "validate"):
    """Load CheXpert. ``train.csv`` is split by patient into train/test; ``valid.csv`` becomes
    ``valid_as`` (the official validation set, with radiologist labels)."""
    root = Path(root)
    rows = []
    found = False
    for csv_name, split in (("train.csv", None), ("valid.csv", valid_as)):
        path = root / csv_name
        if not path.is_file():
            continue
        found = True
        df = read_table(path, ["Path", "Frontal/Lateral"])
        label_cols = [c for c in CHEXPERT_LABELS if c in df.columns]
        for row_no, r in records(df, "CheXpert rows"):
            if frontal_only and r["Frontal/Lateral"] != "Frontal":
                continue
            rel = r["Path"]
            m = _PATIENT.search(rel)
            if m is None:
                raise DataError(f"{path}: row {row_no}: Path {rel!r} has no patientNNNNN/studyN/viewN")
            img = root.parent / rel if (root.parent / rel).exists() else root / Path(*Path(rel).parts[1:])
            rows.append(
                {
                    "image": {"path": str(img), "bytes": None},
                    "image_id": f"{m.group(1)}/{m.group(2)}/{m.group(3)}",
                    "patient_id": m.group(1),
                    "study_id": f"{m.group(1)}/{m.group(2)}",
                    "view": r.get("AP/PA", "") or "",
                    "split": split
                    or ("test" if patient_split(m.group(1), (0.9, 0.0, 0.1)) == "test" else "train"),
                    "report": "",
                    **{c: parse_label(r[c], path, row_no, c) for c in label_cols},
                }
            )
    if not found:
        raise DataError(f"{root}: neither train.csv nor valid.csv found (CheXpert layout)")
    return build_dataset(rows, CHEXPERT)
