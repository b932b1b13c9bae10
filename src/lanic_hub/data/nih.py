"""NIH ChestX-ray14 (``Data_Entry_2017.csv``) in the common schema.

NIH labels are pipe-separated ``Finding Labels`` ('Effusion|Atelectasis', 'No Finding'); they map
onto the CheXpert names where the observation is the same. NIH labels are binary: mentioned is 1,
not mentioned is 0. The official ``train_val_list.txt`` / ``test_list.txt`` give the split when
present; otherwise a deterministic patient-level split is used.
"""

from __future__ import annotations

from pathlib import Path

from ..constants import CHEXPERT_LABELS
from ..errors import DataError
from .schema import NIH, build_dataset
from .tables import patient_split, read_table, records

#: NIH label -> CheXpert observation (the rest of NIH's 14 have no CheXpert counterpart).
NIH_TO_CHEXPERT = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Effusion": "Pleural Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Mass": "Lung Lesion",
    "Nodule": "Lung Lesion",
    "Pleural_Thickening": "Pleural Other",
    "No Finding": "No Finding",
}
NIH_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
    "No Finding",
)


def load_nih(
    root: str | Path,
    *,
    csv: str | Path | None = None,
    images_dir: str | Path | None = None,
    image_column: str = "Image Index",
    labels_column: str = "Finding Labels",
    patient_column: str = "Patient ID",
    view_column: str = "View Position",
):
    """Load NIH ChestX-ray14. ``csv`` defaults to ``root/Data_Entry_2017*.csv``; images are
    looked up in ``images_dir`` (default ``root/images``), or taken as paths relative to root."""
    root = Path(root)
    if csv is None:
        cands = sorted(root.glob("Data_Entry_2017*.csv*"))
        if not cands:
            raise DataError(f"{root}: no Data_Entry_2017*.csv; pass csv= explicitly")
        csv = cands[0]
    csv = Path(csv)
    df = read_table(csv, [image_column, labels_column, patient_column])
    img_dir = Path(images_dir) if images_dir else root / "images"
    official: dict[str, str] = {}
    for name, split in (("train_val_list.txt", "train"), ("test_list.txt", "test")):
        if (root / name).is_file():
            official.update(dict.fromkeys((root / name).read_text().split(), split))
    rows = []
    for row_no, r in records(df, "NIH rows"):
        names = [n.strip() for n in r[labels_column].split("|") if n.strip()]
        unknown = [n for n in names if n not in NIH_LABELS]
        if unknown:
            raise DataError(
                f"{csv}: row {row_no}, column {labels_column!r}: unknown NIH label(s) "
                f"{unknown}; known: {NIH_LABELS}"
            )
        labels: dict[str, float | None] = dict.fromkeys(CHEXPERT_LABELS)
        for nih, chex in NIH_TO_CHEXPERT.items():
            labels[chex] = max(labels[chex] or 0.0, 1.0 if nih in names else 0.0)
        rel = r[image_column]
        path = img_dir / rel if (img_dir / rel).exists() else root / rel
        pid = str(r[patient_column]).strip()
        rows.append(
            {
                "image": {"path": str(path), "bytes": None},
                "image_id": Path(rel).stem,
                "patient_id": pid,
                "study_id": Path(rel).stem,
                "view": r.get(view_column, "") or "",
                "split": official.get(Path(rel).name) or patient_split(pid),
                "report": "",
                **labels,
            }
        )
    return build_dataset(rows, NIH)
