"""LanICModel: the transformers round trip, offline Hub loading, the upload folder, bad folders."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from transformers import AutoConfig, AutoModel

from lanic_hub import LanICConfig, LanICModel
from lanic_hub.backbone.embed import load_embeddings
from lanic_hub.errors import LicenceError
from lanic_hub.modeling import ModelFolderError, restricted_content, upload_plan
from lanic_hub.utils.hfcache import put_in_hf_cache


def test_round_trip_is_bit_exact_with_a_clean_loading_report(tiny_model, tiny_lanic_model):
    built = LanICModel.from_training_folder(tiny_model)
    loaded, info = LanICModel.from_pretrained(tiny_lanic_model, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and not info["mismatched_keys"]
    a, b = built.state_dict(), loaded.state_dict()
    # the export adds the typicality reference (fitted on the training split) to the trained weights
    assert set(b) - set(a) == {"typicality_mean", "typicality_precision"} and set(a) <= set(b) and len(a) >= 9
    assert loaded.config.typicality and loaded.typicality().threshold > 0
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert loaded.patterns == json.loads(json.dumps([p.to_dict() for p in built.patterns]))
    assert isinstance(AutoModel.from_pretrained(tiny_lanic_model), LanICModel)
    assert isinstance(AutoConfig.from_pretrained(tiny_lanic_model), LanICConfig)
    assert (tiny_lanic_model / "backbone" / "open_clip_config.json").is_file()  # the phantom CLIP is bundled
    assert sorted(os.listdir(tiny_lanic_model))[:9] == [
        "README.md",
        "backbone",
        "concepts.json",
        "concepts.safetensors",
        "config.json",
        "examples",
        "lanic_remote.py",
        "model.safetensors",
        "patterns.json",
    ]
    # the concept directions travel with the model, bit for bit
    assert built.concepts is not None and loaded.concepts.keys == built.concepts.keys
    for name in ("mean", "directions", "readout"):
        assert torch.equal(getattr(loaded.concepts, name), getattr(built.concepts, name)), name
    assert loaded.concepts.support == built.concepts.support


def test_forward_and_explanations_agree_with_the_classifier(tiny_lanic_model, tiny_embedded):
    model = LanICModel.from_pretrained(tiny_lanic_model)
    e = load_embeddings(tiny_embedded / "emb").image.float()[:6]
    with torch.no_grad():
        out = model(embeddings=e)
    assert torch.allclose(out.probabilities, torch.sigmoid(model.classifier(e)))
    assert out.pattern_activations.shape == (6, model.config.n_patterns)
    for b, ex in enumerate(model.explain_embeddings(e)):
        for c, f in enumerate(ex.findings):
            assert f.total == pytest.approx(float(out.logits[b, c]), abs=1e-4)
            acts = {p.pattern: p.activation for p in f.patterns}
            for p, a in acts.items():
                assert a == pytest.approx(float(out.pattern_activations[b, p]), rel=1e-5)
    one = model.explain_embedding(e[0])
    assert one.to_dict() == model.explain_embeddings(e[:1])[0].to_dict()
    with pytest.raises(ValueError, match="exactly one"):
        model()


def test_model_card_renders_and_its_yaml_parses_back(tiny_lanic_model, tiny_model):
    from huggingface_hub import ModelCard

    card = ModelCard((tiny_lanic_model / "README.md").read_text())
    idx = card.data.to_dict()["model-index"][0]
    metrics = {m["name"]: m["value"] for m in idx["results"][0]["metrics"]}
    assert "AUROC macro" in metrics and all(0 <= v <= 1 for k, v in metrics.items() if "AUROC" in k)
    # the explanation's fidelity reaches the model-index too, beside the classifier's accuracy
    rep = json.loads((tiny_model / "fidelity.json").read_text())
    fid = [k for k in metrics if k.startswith("transcoder FVU")]
    assert len(fid) == 1 and metrics[fid[0]] == pytest.approx(rep["fidelity"]["fvu_mean"]["256"], abs=1e-4)
    path = [k for k in metrics if k.startswith("ensemble-path macro AUROC")]
    assert metrics[path[0]] == pytest.approx(rep["auroc"]["ensemble_path"]["macro"], abs=1e-4)
    assert "arxiv:2510.21464" in card.data.tags and card.data.base_model is None  # a local backbone
    assert (
        idx["results"][0]["dataset"]["name"] == "phantom" and idx["results"][0]["dataset"]["split"] == "test"
    )
    assert card.data.license == "apache-2.0" and card.data.library_name == "lanic-hub"
    text = card.text
    for needle in (
        "not a medical device",
        "arXiv:2510.21464",
        "BiomedCLIP",
        'LanICModel.from_pretrained("lanic-test/tiny-lanic")',
    ):
        assert needle in text, needle
    # the transcoders' training stream, from the training report (the tiny world has no text)
    steps = json.loads((tiny_model / "fidelity.json").read_text())["ensemble"]["steps"]
    assert "Transcoders: 8 members, L = 256, k = 8, topk" in text and f": {steps} optimiser steps" in text
    assert "training images:" in text and "report and sentence texts" not in text


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


def test_bad_folders_get_clear_errors(tiny_lanic_model, tiny_model, tmp_path):
    with pytest.raises(ModelFolderError, match="no config.json"):
        LanICModel.from_pretrained(tmp_path)
    with pytest.raises(ModelFolderError, match="lanic-hub export"):
        LanICModel.from_pretrained(tiny_model)  # a training folder, not a model
    old = tmp_path / "old"
    shutil.copytree(tiny_lanic_model, old)
    cfg = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**cfg, "lanic_format": 0}))
    with pytest.raises(ModelFolderError, match="format 0"):
        LanICModel.from_pretrained(old)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_lanic_model, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFolderError, match="model.safetensors"):
        LanICModel.from_pretrained(broken)
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_lanic_model, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ModelFolderError, match="never loaded from pickles"):
        LanICModel.from_pretrained(pickled)
    nobb = tmp_path / "nobb"
    shutil.copytree(tiny_lanic_model, nobb)
    shutil.rmtree(nobb / "backbone", ignore_errors=True)
    cfg = json.loads((nobb / "config.json").read_text())
    cfg.update(
        bundled_backbone=False, backbone={"spec": f"local-dir:{tmp_path / 'nowhere'}", "revision": None}
    )
    (nobb / "config.json").write_text(json.dumps(cfg))
    from lanic_hub.backbone import BackboneError

    with pytest.raises(BackboneError, match="nowhere"):
        LanICModel.from_pretrained(nobb).predict(torch.zeros(64, 64).numpy())
    with pytest.raises(ModelFolderError, match="not in the Hugging Face cache .* could not be reached"):
        LanICModel.from_pretrained("lanic-test/definitely-not-cached", cache_dir=str(tmp_path / "hub"))


def test_repo_id_from_an_offline_hf_cache_with_revisions_in_a_new_process(tiny_lanic_model, tmp_path):
    from lanic_hub.data.phantom import export

    hub = tmp_path / "hf" / "hub"
    put_in_hf_cache(tiny_lanic_model, "lanic-test/tiny-lanic", hub, revision="main")
    v1 = tmp_path / "v1"
    shutil.copytree(tiny_lanic_model, v1)
    doc = json.loads((v1 / "patterns.json").read_text())
    doc["patterns"][0]["name"] = "renamed in v1"
    (v1 / "patterns.json").write_text(json.dumps(doc))
    put_in_hf_cache(v1, "lanic-test/tiny-lanic", hub, revision="v1")
    img = tmp_path / "img.png"
    from lanic_hub.data.images import load_image
    from lanic_hub.data.open import open_dataset

    ph = export(tmp_path / "ph", 2, seed=11, mimic=False, progress=False)["hf"]
    load_image(open_dataset(f"hf:{ph}")[0]["image"]).save(img)
    code = (
        "import json, lanic_hub\n"
        "from transformers import AutoModel\n"
        "lanic_hub.register()  # import lanic_hub is light: the model classes register on first use\n"
        "m = AutoModel.from_pretrained('lanic-test/tiny-lanic')\n"
        "v1 = lanic_hub.LanICModel.from_pretrained('lanic-test/tiny-lanic', revision='v1')\n"
        f"e = m.explain({str(img)!r})\n"
        "f = e.findings[0]\n"
        "print(json.dumps({'main': m.patterns[0]['name'], 'v1': v1.patterns[0]['name'],"
        " 'gap': abs(f.total - f.logit), 'n': len(e.findings)}))\n"
    )
    from .hub_env import offline_hub_env, run_json

    out = run_json(code, offline_hub_env(tmp_path / "hf", tmp_path))
    assert out["v1"] == "renamed in v1" and out["main"] != "renamed in v1"
    assert out["gap"] < 1e-4 and out["n"] == 5


def test_predict_takes_paths_pil_arrays_and_dicom_and_pixels_match_embeddings(
    tiny_lanic_model, shared_data, tmp_path
):
    import numpy as np
    from PIL import Image

    from lanic_hub.data.images import load_image

    model = LanICModel.from_pretrained(tiny_lanic_model)
    dcm = next((shared_data / "cxr_real" / "dicom").glob("*.dcm"))
    png = next((shared_data / "cxr_real").rglob("*.png"))
    pil = Image.open(png)
    arr = np.asarray(load_image(png).convert("L"))
    preds = model.predict_batch([str(png), pil, arr, dcm])
    assert all(set(p) == set(model.config.findings) for p in preds)
    assert preds[0] == pytest.approx(preds[1], abs=1e-6) and preds[0] == pytest.approx(preds[2], abs=1e-5)
    assert all(0 < v < 1 for p in preds for v in p.values())
    bb = model.backbone
    x = torch.stack([bb.preprocess(load_image(png))])
    with torch.no_grad():
        a = model(pixel_values=x)
        b = model(embeddings=bb.encode_image(x))
    assert torch.equal(a.logits, b.logits) and torch.equal(a.pattern_activations, b.pattern_activations)
    ex = model.explain(dcm)
    assert ex.source == str(dcm) and all(abs(f.total - f.logit) < 1e-4 for f in ex.findings)


def test_non_finite_embeddings_are_refused_naming_the_rows(tiny_lanic_model):
    from lanic_hub.errors import DataError

    model = LanICModel.from_pretrained(tiny_lanic_model)
    e = torch.nn.functional.normalize(torch.randn(5, model.config.d_in), dim=1)
    e[3, 7] = float("nan")
    e[4, 0] = float("inf")
    with pytest.raises(DataError, match=r"rows \[3, 4\]"):
        model.explain_embeddings(e)
    with pytest.raises(DataError, match="NaN or inf"):
        model(embeddings=e)


def test_overflowing_activations_are_refused_naming_the_rows(tiny_lanic_model):
    """Finite inputs whose activations overflow (a damaged weight, float32 range) are named too,
    never turned into an explanation of inf."""
    from lanic_hub.errors import DataError

    model = LanICModel.from_pretrained(tiny_lanic_model)
    e = torch.nn.functional.normalize(torch.randn(4, model.config.d_in), dim=1)
    e[2, 0] = 10.0  # finite, but hidden unit 0 of row 2 becomes 1e39 > float32 max
    with torch.no_grad():
        model.classifier.fc1.weight.zero_()
        model.classifier.fc1.weight[0, 0] = 1e38
    with pytest.raises(DataError, match=r"classifier's logits .*rows \[2\]"):
        model(embeddings=e)
    with pytest.raises(DataError, match=r"activations overflowed.*rows \[2\]"):
        model.explain_embeddings(e)


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
    report = json.loads((tiny_model / "fidelity.json").read_text())
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


def test_card_metadata_for_restricted_data_and_a_hub_backbone(tiny_lanic_model):
    """license: other comes with the data licence's name and link; an hf-hub: backbone is the
    card's base_model."""
    from lanic_hub.card import render_model_card
    from lanic_hub.data.schema import MIMIC_CXR

    m = LanICModel.from_pretrained(tiny_lanic_model)
    m.config.backbone = {"spec": "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"}
    report = {"auroc": {"classifier": {"macro": 0.8}}, "measured_on": "somewhere"}
    card = render_model_card(m, repo_id="someone/x", dataset=MIMIC_CXR, report=report)
    d = card.data.to_dict()
    assert d["license"] == "other" and d["license_link"] == "https://physionet.org/content/mimic-cxr-jpg/"
    assert d["license_name"] == "physionet-credentialed-health-data-license-1-5-0"
    assert d["base_model"] == "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    assert d["model-index"][0]["results"][0]["dataset"]["name"] == "mimic-cxr-jpg"


def test_card_names_the_hub_dataset_it_was_measured_on(tiny_lanic_model, tmp_path):
    """A model measured on a Hub dataset (hf:OWNER/NAME) lists it in `datasets` and as the
    model-index dataset type; one measured on local data lists none."""
    from lanic_hub.card import render_model_card
    from lanic_hub.data.schema import PHANTOM

    m = LanICModel.from_pretrained(tiny_lanic_model)
    report = {"auroc": {"classifier": {"macro": 0.8}}, "measured_on": "somewhere"}
    local = render_model_card(m, repo_id="someone/x", dataset=PHANTOM, report=report).data.to_dict()
    assert "datasets" not in local and local["model-index"][0]["results"][0]["dataset"]["type"] == "phantom"
    emb = tmp_path / "emb"
    emb.mkdir()
    (emb / "manifest.json").write_text(json.dumps({"data_spec": "hf:someone/lanic-phantom"}))
    m.bank_meta = {**m.bank_meta, "embeddings": str(emb)}
    d = render_model_card(m, repo_id="someone/x", dataset=PHANTOM, report=report).data.to_dict()
    assert d["datasets"] == ["someone/lanic-phantom"]
    assert d["model-index"][0]["results"][0]["dataset"]["type"] == "someone/lanic-phantom"
    ev = {
        "dataset": {"spec": "hf:other/bench", "split": "test", "rows": 10},
        "suite": "data",
        "findings": list(m.config.findings),
        "metrics": {"accuracy": {"classifier": {"auroc": {"macro": 0.7, "per_finding": [0.7] * 5}}}},
    }
    d = render_model_card(
        m, repo_id="someone/x", dataset=PHANTOM, report=report, evaluation=ev
    ).data.to_dict()
    assert d["datasets"] == ["other/bench"]
