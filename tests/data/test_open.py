"""Dataset specs: every form opens the data it names, with clear errors for bad specs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lanic_hub.constants import CHEXPERT_LABELS
from lanic_hub.data import load_folder, load_image
from lanic_hub.data.open import absolute_spec, open_dataset, parse_spec
from lanic_hub.errors import DataError

NIH_TO_CHEXPERT = "Atelectasis:Atelectasis,Cardiomegaly:Cardiomegaly,Effusion:Pleural Effusion,Edema:Edema"


def test_folder_spec_opens_the_real_nih_fixture_like_load_folder(shared_data):
    root = shared_data / "cxr_real"
    spec = f"folder:{root}?image=file&patient=patient_id&labels={NIH_TO_CHEXPERT}"
    ds = open_dataset(spec)
    direct = load_folder(
        root,
        root / "labels.csv",
        image_column="file",
        patient_column="patient_id",
        label_columns=dict(p.split(":") for p in NIH_TO_CHEXPERT.split(",")),
    )
    assert len(ds) == len(direct) == 93 and ds._fingerprint == direct._fingerprint
    rows = list(csv.DictReader((root / "labels.csv").open()))
    assert ds["Pleural Effusion"] == [float(r["Effusion"]) for r in rows]
    assert ds["Cardiomegaly"] == [float(r["Cardiomegaly"]) for r in rows]
    # a column already named as an observation is kept beside the mapped ones
    assert ds["Consolidation"] == [float(r["Consolidation"]) for r in rows]
    assert ds["Lung Opacity"] == [None] * 93  # no column for it: unknown, not negative
    assert ds["patient_id"] == [r["patient_id"] for r in rows]
    assert load_image(ds[0]["image"]).size == (int(rows[0]["width"]), int(rows[0]["height"]))
    # the CSV's default name and an explicit relative one are the same file
    assert open_dataset(spec + "&csv=labels.csv")._fingerprint == ds._fingerprint


def test_folder_labels_default_to_chexpert_named_columns(tmp_path, phantom_export):
    from datasets import load_from_disk

    from ..image_folders import write_image_folder

    hf = load_from_disk(str(phantom_export["hf"])).select(range(6))
    write_image_folder(hf, tmp_path, csv_name="my.csv")
    ds = open_dataset(f"folder:{tmp_path}?csv=my.csv&split=split&report=report")
    for c in (*CHEXPERT_LABELS, "split", "report"):
        assert ds[c] == hf[c]
    assert np.array_equal(np.asarray(load_image(ds[5]["image"])), np.asarray(load_image(hf[5]["image"])))


def test_bad_specs_are_clear_errors(tmp_path, shared_data):
    root = shared_data / "cxr_real"
    with pytest.raises(DataError, match=r"unknown option\(s\) \['imgae'\] for folder.*allowed: csv, image"):
        open_dataset(f"folder:{root}?imgae=file")
    with pytest.raises(DataError, match="unknown option.*for hf.*allowed: none"):
        parse_spec(f"hf:{tmp_path}?reports=x")
    with pytest.raises(DataError, match="COLUMN:OBSERVATION.*'Effusion'"):
        open_dataset(f"folder:{root}?image=file&labels=Effusion")
    with pytest.raises(DataError, match="unknown observations"):
        open_dataset(f"folder:{root}?image=file&labels=Effusion:Effusion")
    with pytest.raises(DataError, match="not KEY=VALUE"):
        open_dataset(f"folder:{root}?image")
    with pytest.raises(DataError, match=r"nope\.csv: labels CSV not found"):
        open_dataset(f"folder:{root}?csv=nope.csv")
    with pytest.raises(DataError, match="dataset path not found"):
        open_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="cannot tell which dataset.*folder:"):
        open_dataset(str(tmp_path))


def test_absolute_spec_makes_paths_absolute_and_the_kind_explicit(tmp_path, monkeypatch, phantom_export):
    (tmp_path / "data" / "reports").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert (
        absolute_spec("folder:data?csv=l.csv&image=file")
        == f"folder:{tmp_path / 'data'}?csv=l.csv&image=file"
    )
    assert absolute_spec("mimic:data?reports=data/reports").endswith(
        f"?reports={tmp_path / 'data' / 'reports'}"
    )
    assert absolute_spec(str(phantom_export["hf"])) == f"hf:{phantom_export['hf'].resolve()}"


def test_labels_add_to_the_default_columns(shared_data):
    """The README's `labels=Effusion:Pleural Effusion` keeps the CSV's CheXpert-named columns
    (Atelectasis, Cardiomegaly, Consolidation, Edema) and adds Effusion as Pleural Effusion."""
    root = shared_data / "cxr_real"
    ds = open_dataset(f"folder:{root}?image=file&patient=patient_id&labels=Effusion:Pleural Effusion")
    rows = list(csv.DictReader((root / "labels.csv").open()))
    for obs, col in [("Atelectasis", "Atelectasis"), ("Edema", "Edema"), ("Pleural Effusion", "Effusion")]:
        assert ds[obs] == [float(r[col]) for r in rows]
    assert sum(ds["Pleural Effusion"]) > 0 and sum(ds["Atelectasis"]) > 0


def test_split_fractions_of_a_folder(shared_data):
    root = shared_data / "cxr_real"
    base = f"folder:{root}?image=file&patient=patient_id"
    default = open_dataset(base)["split"]
    wide = open_dataset(base + "&fractions=0.5,0.25,0.25")["split"]
    assert default.count("validate") < wide.count("validate") and default.count("train") > wide.count("train")
    with pytest.raises(DataError, match="three numbers TRAIN,VALIDATE,TEST"):
        open_dataset(base + "&fractions=0.5,0.5")
    with pytest.raises(DataError, match="summing to 1"):
        open_dataset(base + "&fractions=0.5,0.5,0.5")
