"""Publishing: the upload plan is the model folder, and data that may not be re-published stays out."""

from __future__ import annotations

import json
import shutil

import pytest

from lanic_hub.errors import LicenceError
from lanic_hub.modeling import ModelFolderError, restricted_content, upload_plan
from lanic_hub.records import TrainingReport


def test_upload_plan_is_the_model_folder_and_guards_the_licence(tiny_lanic_model, tmp_path, capsys):
    plan = upload_plan(tiny_lanic_model)
    assert {"config.json", "model.safetensors", "patterns.json", "README.md"} <= set(plan)
    assert set(plan) == {
        str(p.relative_to(tiny_lanic_model)) for p in tiny_lanic_model.rglob("*") if p.is_file()
    }
    thumbs = [f for f in plan if f.startswith("thumbnails/")]
    assert thumbs  # phantoms may be re-published
    bad = tmp_path / "m"
    shutil.copytree(tiny_lanic_model, bad)
    doc = json.loads((bad / "patterns.json").read_text())
    doc["meta"]["data_source"] = {"name": "mimic-cxr-jpg", "redistributable": False}
    (bad / "patterns.json").write_text(json.dumps(doc))
    with pytest.raises(LicenceError, match="mimic-cxr-jpg"):
        upload_plan(bad)
    # report text is guarded like images: the typical sentences, and any of them quoted elsewhere
    assert "examples/: 5 example images of mimic-cxr-jpg" in restricted_content(bad)  # 4 PNGs + index
    shutil.rmtree(bad / "thumbnails")
    shutil.rmtree(bad / "examples")
    assert sum(bool(p["typical_sentences"]) for p in doc["patterns"]) > 1  # a phantom bank keeps them
    for p in doc["patterns"]:
        p["typical_sentences"] = []
    doc["patterns"][0]["typical_sentences"] = ["Left chest tube in place."]
    (bad / "patterns.json").write_text(json.dumps(doc))
    (bad / "notes.md").write_text("the gallery says: Left chest tube in place.")
    assert restricted_content(bad) == [
        "patterns.json: 1 report sentences of mimic-cxr-jpg (typical_sentences of 1 patterns)",
        "notes.md: quotes 1 report sentences of mimic-cxr-jpg",
    ]
    with pytest.raises(LicenceError, match="patterns.json: 1 report sentences"):
        upload_plan(bad)
    from lanic_hub.cli import main

    assert main(["push", "--model", str(bad), "--repo", "someone/cxr-lanic", "--dry-run"]) == 4
    assert "notes.md" in capsys.readouterr().err
    assert main(["push", "--model", str(tiny_lanic_model), "--repo", "someone/cxr-lanic", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        "would go to the model repo someone/cxr-lanic" in out
        and "  patterns.json" in out
        and "nothing was uploaded" in out
    )
    # a folder that records no data source counts as restricted
    del doc["meta"]["data_source"]
    (bad / "notes.md").unlink()
    (bad / "patterns.json").write_text(json.dumps(doc))
    assert restricted_content(bad) == [
        "patterns.json: 1 report sentences of unrecorded data (typical_sentences of 1 patterns)"
    ]
    doc["patterns"][0]["typical_sentences"] = []
    (bad / "patterns.json").write_text(json.dumps(doc))
    assert restricted_content(bad) == []  # nothing restricted left in it
    (bad / "README.md").unlink()
    with pytest.raises(ModelFolderError, match="model card"):
        upload_plan(bad)


def test_export_withholds_report_text_of_restricted_data(tiny_model, tmp_path):
    """A bank built before the text guard (or on data relabelled restricted since) loses its
    typical sentences at export when the data may not be re-published, and only then."""
    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.schema import DataSource, attach_source
    from lanic_hub.pipeline import ModelOptions, export_model

    bank = json.loads((tiny_model / "patterns.json").read_text())
    n_sent = sum(len(p["typical_sentences"]) for p in bank["patterns"])
    assert n_sent > 0  # the phantom bank keeps them (its data may be re-published)
    spec = json.loads((tiny_model.parent / "emb" / "manifest.json").read_text())["data_spec"]
    report = TrainingReport.read(tiny_model)
    mimic = attach_source(
        open_dataset(spec),
        DataSource("mimic-cxr-jpg", "PhysioNet Credentialed Health Data License 1.5.0", False),
    )
    out = tmp_path / "model"
    export_model(tiny_model, out, mimic, ModelOptions(), report)
    doc = json.loads((out / "patterns.json").read_text())
    assert not any(p["typical_sentences"] for p in doc["patterns"])
    assert doc["meta"]["report_text"].startswith("typical sentences withheld at export")
    assert not (out / "thumbnails").exists() and restricted_content(out) == []
    assert [p["name"] for p in doc["patterns"]] == [p["name"] for p in bank["patterns"]]  # names stay
    assert json.loads((tiny_model / "patterns.json").read_text()) == bank  # the training folder is untouched


def test_lanic_hub_export_writes_the_model_stage_s_folder(tiny_model, tiny_lanic_model, tmp_path, capsys):
    """`lanic-hub export` is the model stage on a training folder: the same weights and patterns
    as the pipeline's export, a card with its health checks, and it loads."""
    from lanic_hub import LanICModel
    from lanic_hub.cli import main

    out = tmp_path / "exported"
    assert main(["export", "--model", str(tiny_model), "--out", str(out)]) == 0
    assert f"LanIC model written to {out}" in capsys.readouterr().out
    assert (out / "model.safetensors").read_bytes() == (tiny_lanic_model / "model.safetensors").read_bytes()
    assert (
        json.loads((out / "patterns.json").read_text())["patterns"]
        == json.loads((tiny_lanic_model / "patterns.json").read_text())["patterns"]
    )
    assert "## Health checks" in (out / "README.md").read_text()
    m = LanICModel.from_pretrained(out)
    assert len(m.patterns) == m.config.n_patterns
