"""Every adapter on small real fixtures, the MIMIC-layout round trip, and typed errors."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from lanic_hub.constants import CHEXPERT_LABELS, FINDINGS
from lanic_hub.data import (
    label_matrix,
    load_chexpert,
    load_folder,
    load_gray,
    load_mimic_cxr,
    load_nih,
    require_redistributable,
    source_of,
)
from lanic_hub.data.phantom import load_phantom_dataset
from lanic_hub.errors import DataError, LabelValueError, LicenceError, SchemaError


def test_mimic_layout_round_trip(phantom_export):
    hf = load_phantom_dataset(phantom_export["hf"])
    mimic = load_mimic_cxr(phantom_export["mimic"], reports_dir=phantom_export["mimic"])
    assert len(mimic) == len(hf) == 40
    a = hf.to_pandas().set_index("image_id")
    b = mimic.to_pandas().set_index("image_id").loc[a.index]
    for c in CHEXPERT_LABELS:
        assert np.array_equal(a[c].fillna(9).to_numpy(), b[c].fillna(9).to_numpy()), c
    assert (a["split"] == b["split"]).all() and (a["report"].str.strip() == b["report"].str.strip()).all()
    assert (a["patient_id"] == b["patient_id"]).all() and (a["study_id"] == b["study_id"]).all()
    # the JPEG in the tree is the same picture as the PNG in the HF dataset (up to JPEG loss)
    png, jpg = (
        load_gray(hf[0]["image"]),
        load_gray(mimic.filter(lambda r: r["image_id"] == hf[0]["image_id"])[0]["image"]),
    )
    assert np.abs(png.astype(int) - jpg.astype(int)).mean() < 3
    assert source_of(hf).redistributable and not source_of(mimic).redistributable


def test_mimic_without_split_is_patient_level_and_deterministic(phantom_export, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(phantom_export["mimic"], root)
    (root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    a, b = load_mimic_cxr(root), load_mimic_cxr(root)
    assert a["split"] == b["split"]
    by_patient = pd.DataFrame({"p": a["patient_id"], "s": a["split"]}).groupby("p")["s"].nunique()
    assert (by_patient == 1).all()


def test_mimic_reads_xrv_fixture_with_hex_ids(shared_data):
    root = shared_data / "mimic_layout_xrv"
    ds = load_mimic_cxr(root)  # only negbio labels, no split CSV, images under images-224/
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", dtype=str)
    frontal = meta[meta.ViewPosition.isin(["PA", "AP"])]
    assert sorted(ds["image_id"]) == sorted(frontal.dicom_id)
    neg = pd.read_csv(root / "mimic-cxr-2.0.0-negbio.csv", dtype=str).set_index("study_id")
    for row in ds:
        for c in CHEXPERT_LABELS:
            raw = neg.loc[row["study_id"], c]
            assert (row[c] is None) if pd.isna(raw) else row[c] == float(raw)
        assert load_gray(row["image"]).shape == (224, 224)


def test_nih_fixture(shared_data):
    root = shared_data / "cxr_real"
    ds = load_nih(
        root,
        csv=root / "labels.csv",
        image_column="file",
        labels_column="finding_labels",
        patient_column="patient_id",
        view_column="view",
    )
    df = pd.read_csv(root / "labels.csv", dtype=str)
    assert len(ds) == len(df) == 93
    for row, (_, ref) in zip(ds, df.iterrows(), strict=True):
        assert row["Cardiomegaly"] == float(ref["Cardiomegaly"])
        assert row["Pleural Effusion"] == float(ref["Effusion"])
        assert row["No Finding"] == float(ref["No Finding"])
    assert source_of(ds).redistributable
    assert load_gray(ds[0]["image"]).ndim == 2
    split = dict(zip(ds["patient_id"], ds["split"], strict=True))
    assert all(split[p] == s for p, s in zip(ds["patient_id"], ds["split"], strict=True))


def test_chexpert_and_folder(tmp_path, phantom_export):
    hf = load_phantom_dataset(phantom_export["hf"])
    root = tmp_path / "CheXpert-v1.0-small"
    rows = []
    for k in range(4):
        rel = f"CheXpert-v1.0-small/train/patient0000{k}/study1/view1_frontal.jpg"
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_bytes(hf[k]["image"]["bytes"])
        rows.append(
            {
                "Path": rel,
                "Sex": "F",
                "Age": "50",
                "Frontal/Lateral": "Frontal",
                "AP/PA": "PA",
                **{c: ("" if hf[k][c] is None else str(hf[k][c])) for c in CHEXPERT_LABELS},
            }
        )
    rows.append(
        {
            **rows[0],
            "Path": rows[0]["Path"].replace("view1_frontal", "view2_lateral"),
            "Frontal/Lateral": "Lateral",
        }
    )
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    ds = load_chexpert(root)
    assert len(ds) == 4 and not source_of(ds).redistributable
    for k in range(4):
        assert [ds[k][c] for c in FINDINGS] == [hf[k][c] for c in FINDINGS]
        assert load_gray(ds[k]["image"]).shape == (224, 224)
    with pytest.raises(LicenceError, match="chexpert"):
        require_redistributable(ds, "export gallery thumbnails")

    pd.DataFrame({"file": [r["Path"] for r in rows[:4]], "Edema": ["1", "0", "-1", ""]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    fd = load_folder(tmp_path, tmp_path / "labels.csv", image_column="file")
    assert fd["Edema"] == [1.0, 0.0, -1.0, None]


def test_uncertainty_policies(tmp_path):
    from datasets import Dataset

    ds = Dataset.from_dict({c: [1.0, 0.0, -1.0, None] for c in FINDINGS})
    y, m = label_matrix(ds, "U-Ones")
    assert y[:, 0].tolist() == [1, 0, 1, 0] and m.all()
    y, m = label_matrix(ds, "U-Zeros")
    assert y[:, 0].tolist() == [1, 0, 0, 0] and m.all()
    y, m = label_matrix(ds, "U-Ignore")
    assert m[:, 0].tolist() == [True, True, False, True]
    y, m = label_matrix(ds, "U-Ignore", blank="ignore")
    assert m[:, 0].tolist() == [True, True, False, False]


def test_bad_tables_name_file_row_and_column(tmp_path, phantom_export):
    root = tmp_path / "m"
    shutil.copytree(phantom_export["mimic"], root)
    path = root / "mimic-cxr-2.0.0-chexpert.csv.gz"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[2, "Edema"] = "maybe"
    with gzip.open(path, "wt") as f:
        df.to_csv(f, index=False)
    with pytest.raises(LabelValueError, match=r"row 4, column 'Edema'.*'maybe'"):
        load_mimic_cxr(root)
    df.drop(columns=["study_id"]).to_csv(gzip.open(path, "wt"), index=False)
    with pytest.raises(SchemaError, match=r"chexpert\.csv\.gz.*missing required column\(s\) \['study_id'\]"):
        load_mimic_cxr(root)
    (tmp_path / "bad.csv").write_text("file,finding_labels,patient_id\na.png,Dragons,1\n")
    with pytest.raises(DataError, match=r"bad.csv: row 2.*Dragons"):
        load_nih(
            tmp_path,
            csv=tmp_path / "bad.csv",
            image_column="file",
            labels_column="finding_labels",
            patient_column="patient_id",
        )
    with pytest.raises(DataError, match="no Data_Entry"):
        load_nih(tmp_path / "nowhere")
