"""A generic folder of images plus a CSV of labels, in the common schema."""

from __future__ import annotations

from pathlib import Path

from ..constants import CHEXPERT_LABELS
from ..errors import DataError
from .schema import DataSource, build_dataset
from .tables import parse_label, patient_split, read_table, records


def load_folder(
    root: str | Path,
    csv: str | Path,
    *,
    image_column: str = "path",
    label_columns: dict[str, str] | None = None,
    patient_column: str | None = None,
    split_column: str | None = None,
    report_column: str | None = None,
    source: DataSource | None = None,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
):
    """Images under ``root`` listed in ``csv``.

    Label columns: the CSV columns whose names are CheXpert observations, plus ``label_columns``
    (CSV column -> CheXpert observation), which adds columns under other names (e.g. NIH's
    ``Effusion`` -> ``Pleural Effusion``) and, for an observation it names, replaces that
    observation's own column. Cells follow the CheXpert convention 1/0/-1/blank.
    Without ``split_column`` the split is drawn per patient with ``split_fractions``
    (train, validate, test).
    ``source`` defaults to a non-redistributable source: say so explicitly to allow exports.
    """
    root, csv = Path(root), Path(csv)
    required = [image_column] + [c for c in (patient_column, split_column, report_column) if c]
    df = read_table(csv, required)
    if len(split_fractions) != 3 or min(split_fractions) < 0 or abs(sum(split_fractions) - 1) > 1e-6:
        raise DataError(
            f"split fractions {split_fractions} must be three shares (train, validate, test) summing to 1"
        )
    extra = dict(label_columns or {})
    mapping = {c: c for c in df.columns if c in CHEXPERT_LABELS and c not in extra.values()} | extra
    bad = [v for v in mapping.values() if v not in CHEXPERT_LABELS]
    if bad:
        raise DataError(f"label_columns map to unknown observations {bad}; use {CHEXPERT_LABELS}")
    missing = [c for c in mapping if c not in df.columns]
    if missing:
        from ..errors import SchemaError

        raise SchemaError(csv, missing, list(df.columns))
    source = source or DataSource(f"folder:{root.name}", "unknown (assumed not redistributable)", False)
    rows = []
    for row_no, r in records(df, "folder rows"):
        rel = r[image_column]
        pid = r[patient_column] if patient_column else Path(rel).stem
        labels = dict.fromkeys(CHEXPERT_LABELS)
        for col, obs in mapping.items():
            labels[obs] = parse_label(r[col], csv, row_no, col)
        rows.append(
            {
                "image": {"path": str(root / rel), "bytes": None},
                "image_id": Path(rel).stem,
                "patient_id": pid,
                "study_id": Path(rel).stem,
                "view": "",
                "split": r[split_column] if split_column else patient_split(pid, split_fractions),
                "report": r[report_column] if report_column else "",
                **labels,
            }
        )
    return build_dataset(rows, source)
