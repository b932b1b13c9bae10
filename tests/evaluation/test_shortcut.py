"""The failure-mode suite at a tiny size: both worlds built, every figure present and in range."""

from __future__ import annotations

import json

import pytest
import torch

from lanic_hub.evaluation.shortcut import run_shortcut_suite, shortcut_figures


def test_shortcut_suite_runs_both_worlds(tiny_phantom_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("LANIC_HUB_SMOKE", "1")  # 30 transcoder steps per world
    r = run_shortcut_suite(
        tmp_path,
        shortcut="chest_tube:Atelectasis:1.0:train+validate",
        n=240,
        backbone=f"local-dir:{tiny_phantom_clip[2]}",
        members=2,
        removal=False,  # the removal table: tests/evaluation/test_removal_suite.py
        progress=False,
        log=lambda *a: None,
    )
    assert json.loads((tmp_path / "shortcut.json").read_text())["coupling"]["factor"] == "chest_tube"
    assert "| shortcut |" in (tmp_path / "shortcut.md").read_text()
    for world in ("shortcut", "control"):
        v = r[world]
        assert 0 <= v["auroc_decoupled_test"] <= 1 and 0 <= v["auroc_coupled_test"] <= 1
        assert v["on_coupled_test"]["images_with_factor"] > 0  # every atelectasis image has the tube
        for block in (v, v["on_coupled_test"]):
            for k in ("share_ground_truth", "share_name", "hit_rate_top5_ground_truth", "hit_rate_top5_name"):
                assert 0.0 <= block.get(k, 0.0) <= 1.0
    # the coupled test images are the decoupled ones with the factor tied to the finding
    from lanic_hub.data.open import open_dataset

    coupled = open_dataset(f"hf:{tmp_path / 'coupled-test' / 'hf'}")
    test = [i for i, s in enumerate(coupled["split"]) if s == "test"]
    tied = [coupled[i]["gt_chest_tube"] == coupled[i]["gt_atelectasis"] for i in test]
    assert all(tied)


def test_shortcut_share_counts_only_the_named_patterns(tiny_lanic_model, tiny_embedded):
    """Against a hand computation from the decomposition."""
    from lanic_hub import LanICModel
    from lanic_hub.backbone.embed import load_embeddings
    from lanic_hub.data.open import open_dataset
    from lanic_hub.explain import decomposition_by_pattern

    model = LanICModel.from_pretrained(tiny_lanic_model)
    emb = load_embeddings(tiny_embedded / "emb")
    rows = open_dataset(emb.manifest.data_spec).select(emb.row_ids.tolist())
    x = emb.image.float()
    factor = "chest_tube"
    for p in model.patterns[:3]:  # declare three patterns 'chest tube' patterns by name ...
        p.concept, p.named, p.dense = factor, True, False
    model.patterns[2].named = False  # ... of which the third does not carry its name
    r = shortcut_figures(model, x, rows, factor, "Pleural Effusion")
    present = torch.tensor(rows[f"gt_{factor}"], dtype=torch.bool)
    parts = decomposition_by_pattern(model.classifier, model.ensemble, model.bank, x[present])
    c = list(model.config.findings).index("Pleural Effusion")
    pos = parts.patterns[:, :, c].clamp(min=0)
    total = pos.sum(1) + parts.unbanked[:, c].clamp(min=0)
    want = (pos[:, :2].sum(1) / total.clamp(min=1e-12)).mean()
    assert r["share_name"] == pytest.approx(float(want), rel=1e-6)
    assert r["images_with_factor"] == int(present.sum())
