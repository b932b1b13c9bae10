"""MIMIC-CXR-JPG: study-level labels joined to frontal images, with the official split.

Layout (PhysioNet): ``files/pXX/p<subject>/s<study>/<dicom_id>.jpg`` plus
``mimic-cxr-2.0.0-{chexpert,negbio,split,metadata}.csv.gz``; reports from mimic-cxr-reports as
``files/pXX/p<subject>/s<study>.txt``.
"""

from __future__ import annotations

from pathlib import Path

from ..constants import CHEXPERT_LABELS
from ..errors import DataError
from .schema import MIMIC_CXR, DataSource, build_dataset
from .tables import parse_label, patient_split, read_table, records

FRONTAL_VIEWS = ("PA", "AP")
PREFIX = "mimic-cxr-2.0.0"


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{PREFIX}-{stem}.csv.gz", f"{PREFIX}-{stem}.csv"):
        if (root / name).is_file():
            return root / name
    return None


def _images_root(root: Path) -> Path:
    if (root / "files").is_dir():
        return root
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and (sub / "files").is_dir():
            return sub
    raise DataError(f"{root}: no 'files/' image tree found here or one level below")


def study_dir(subject_id: str, study_id: str) -> Path:
    """``files/pXX/p<subject>/s<study>``, with ids as they appear in the CSVs."""
    s = str(subject_id)
    return Path("files") / f"p{s[:2]}" / f"p{s}" / f"s{study_id}"


def load_mimic_cxr(
    root: str | Path,
    *,
    labeler: str = "chexpert",
    images_dir: str | Path | None = None,
    reports_dir: str | Path | None = None,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    source: DataSource = MIMIC_CXR,
):
    """Load MIMIC-CXR-JPG (or anything in its layout) as a ``datasets.Dataset``.

    ``labeler`` picks the chexpert or negbio CSV; if that one is absent the other is used.
    Without a split CSV a deterministic patient-level split is made from the subject id.
    """
    root = Path(root)
    if labeler not in ("chexpert", "negbio"):
        raise DataError(f"labeler must be 'chexpert' or 'negbio', got {labeler!r}")
    lab_path = _find(root, labeler) or _find(root, "negbio" if labeler == "chexpert" else "chexpert")
    if lab_path is None:
        raise DataError(f"{root}: no {PREFIX}-chexpert.csv(.gz) or -negbio.csv(.gz) label file")
    meta_path = _find(root, "metadata")
    if meta_path is None:
        raise DataError(f"{root}: {PREFIX}-metadata.csv(.gz) is required to find frontal views")
    labels = read_table(lab_path, ["subject_id", "study_id"])
    label_cols = [c for c in CHEXPERT_LABELS if c in labels.columns]
    if not label_cols:
        raise DataError(f"{lab_path}: none of the CheXpert label columns {CHEXPERT_LABELS} present")
    by_study: dict[tuple[str, str], dict[str, float | None]] = {}
    for row_no, r in records(labels, "MIMIC labels"):
        row = {c: parse_label(r[c], lab_path, row_no, c) for c in label_cols}
        by_study[(r["subject_id"], r["study_id"])] = row
    meta = read_table(meta_path, ["dicom_id", "subject_id", "study_id", "ViewPosition"])
    split_path = _find(root, "split")
    splits: dict[str, str] = {}
    if split_path is not None:
        sp = read_table(split_path, ["dicom_id", "split"])
        splits = dict(zip(sp["dicom_id"], sp["split"], strict=True))
    img_root = Path(images_dir) if images_dir else _images_root(root)
    rep_root = Path(reports_dir) if reports_dir else None
    rows = []
    for _, r in records(meta, "MIMIC images"):
        if r["ViewPosition"] not in views:
            continue
        key = (r["subject_id"], r["study_id"])
        if key not in by_study:
            continue  # MIMIC has images of studies without labels; they are not usable here
        sdir = study_dir(*key)
        report = ""
        if rep_root is not None:
            txt = rep_root / sdir.with_suffix(".txt")
            report = txt.read_text() if txt.is_file() else ""
        rows.append(
            {
                "image": {"path": str(img_root / sdir / f"{r['dicom_id']}.jpg"), "bytes": None},
                "image_id": r["dicom_id"],
                "patient_id": r["subject_id"],
                "study_id": r["study_id"],
                "view": r["ViewPosition"],
                "split": splits.get(r["dicom_id"]) or patient_split(r["subject_id"]),
                "report": report,
                **by_study[key],
            }
        )
    return build_dataset(rows, source)
