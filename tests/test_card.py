"""The model card: it renders, its YAML parses back, its metadata names the data it was measured on."""

from __future__ import annotations

import json

import pytest

from lanic_hub import LanICModel
from lanic_hub.records import EmbeddingsManifest, EvalResults, TrainingReport


def _minimal_report() -> TrainingReport:
    """A training report with only what a record requires (no transcoder or baseline figures)."""
    return TrainingReport.from_dict(
        {
            "measured_on": "somewhere",
            "auroc": {"classifier": {"macro": 0.8}},
            "ensemble": {"steps": 0, "config": {}},
            "fidelity": {"fvu_mean": {}},
        }
    )


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


def test_card_metadata_for_restricted_data_and_a_hub_backbone(tiny_lanic_model):
    """license: other comes with the data licence's name and link; an hf-hub: backbone is the
    card's base_model."""
    from lanic_hub.card import render_model_card
    from lanic_hub.data.schema import MIMIC_CXR

    m = LanICModel.from_pretrained(tiny_lanic_model)
    m.config.backbone = {"spec": "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"}
    report = _minimal_report()
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
    report = _minimal_report()
    local = render_model_card(m, repo_id="someone/x", dataset=PHANTOM, report=report).data.to_dict()
    assert "datasets" not in local and local["model-index"][0]["results"][0]["dataset"]["type"] == "phantom"
    emb = tmp_path / "emb"
    emb.mkdir()
    manifest = EmbeddingsManifest.read(m.bank_meta.embeddings)  # the tiny model's own, on a Hub id
    manifest.model_copy(update={"data_spec": "hf:someone/lanic-phantom"}).write(emb)
    m.bank_meta = m.bank_meta.model_copy(update={"embeddings": str(emb)})
    d = render_model_card(m, repo_id="someone/x", dataset=PHANTOM, report=report).data.to_dict()
    assert d["datasets"] == ["someone/lanic-phantom"]
    assert d["model-index"][0]["results"][0]["dataset"]["type"] == "someone/lanic-phantom"
    ev = EvalResults.from_dict(
        {
            "schema": 1,
            "model": {"id": str(tiny_lanic_model), "kind": "lanic"},
            "dataset": {"spec": "hf:other/bench", "fingerprint": "f", "split": "test", "rows": 10},
            "suite": "data",
            "findings": list(m.config.findings),
            "lanic_hub": "0",
            "seed": 0,
            "seconds": 1.0,
            "metrics": {"accuracy": {"classifier": {"auroc": {"macro": 0.7, "per_finding": [0.7] * 5}}}},
        }
    )
    d = render_model_card(
        m, repo_id="someone/x", dataset=PHANTOM, report=report, evaluation=ev
    ).data.to_dict()
    assert d["datasets"] == ["other/bench"]
