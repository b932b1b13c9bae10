"""The training-variants comparison on the tiny phantom world: every variant trained, banked and
measured, and the table's figures equal to what each folder's own files and a recomputation say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lanic_hub.patterns import BankConfig


def test_variants_are_trained_banked_and_measured(tiny_phantom_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("LANIC_HUB_SMOKE", "1")  # 30 transcoder steps per variant
    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.embed import embed_dataset, load_embeddings
    from lanic_hub.data.phantom import PhantomConfig, export, load_phantom_dataset
    from lanic_hub.evaluation.variants import VARIANTS, compare_variants
    from lanic_hub.patterns import PatternBank
    from lanic_hub.patterns.phantom_check import ground_truth_check, pattern_activations
    from lanic_hub.trained import load_trained

    # the multimodal variant needs report and sentence embeddings: embed a small world with text
    world = PhantomConfig(prevalence_scale=2.0, split_fractions=(0.6, 0.2, 0.2))
    hf = export(tmp_path / "ph", 240, seed=7, cfg=world, mimic=False, progress=False)["hf"]
    ds = load_phantom_dataset(hf)
    embed_dataset(
        ds, load_backbone(f"local-dir:{tiny_phantom_clip[2]}"), tmp_path / "emb", num_workers=0,
        progress=False, data_spec=f"hf:{hf}",
    )  # fmt: skip
    cfg = BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3)
    doc = compare_variants(tmp_path / "emb", tmp_path / "out", n_members=3, bank_config=cfg, progress=False)
    rows = doc["variants"]
    assert list(rows) == list(VARIANTS)
    image, mm, jr = rows.values()
    assert mm["stream_rows"] > image["stream_rows"]  # text rows joined the training stream
    assert jr["stream_rows"] == mm["stream_rows"]
    assert jr["activation"] == "jumprelu" and mm["activation"] == "topk"
    assert 0 < jr["l0_test"] <= 8 and image["l0_test"] <= 8

    emb = load_embeddings(tmp_path / "emb")
    te = np.where(np.array(ds.select(emb.row_ids.numpy())["split"]) == "test")[0]
    for row in rows.values():
        rep = json.loads((Path(row["folder"]) / "fidelity.json").read_text())
        assert row["ensemble_path_macro"] == rep["auroc"]["ensemble_path"]["macro"]
        _, ens = load_trained(row["folder"])
        bank = PatternBank.load(row["folder"])
        acts = pattern_activations(ens, bank, emb.image[torch.as_tensor(te)]).numpy()
        gt = ground_truth_check(acts, bank, ds.select(emb.row_ids.numpy()).select(te))
        assert row["ground_truth"]["factors_detected"] == gt["factors_detected"]
        assert row["patterns"] == len(bank)
    md = (tmp_path / "out" / "variants.md").read_text()
    assert sum(line.startswith("|---|") for line in md.splitlines()) == 1  # one table
    assert "multimodal TopK (default)" in md and "test split" in md
    # a rerun reuses every finished variant folder and gives the same table
    again = compare_variants(tmp_path / "emb", tmp_path / "out", n_members=3, bank_config=cfg, progress=False)
    assert again == doc
