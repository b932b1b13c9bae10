"""`lanic-hub train` end to end at a tiny size: files written, exact decomposition after reload."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from lanic_hub.backbone import load_backbone
from lanic_hub.backbone.embed import embed_dataset, load_embeddings
from lanic_hub.classifier import DiagnosticClassifier
from lanic_hub.decomposition import decompose
from lanic_hub.errors import ConfigError, DataError
from lanic_hub.training import PRESETS, train_from_embeddings
from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble


def test_train_writes_models_that_reload_and_decompose_exactly(tiny_embedded):
    out = tiny_embedded / "model"
    rep = train_from_embeddings(tiny_embedded / "emb", out, n_members=4, progress=False)
    for f in (
        "classifier.safetensors",
        "classifier.json",
        "ensemble.safetensors",
        "ensemble.json",
        "fidelity.json",
    ):
        assert (out / f).is_file(), f
    assert json.loads((out / "fidelity.json").read_text())["auroc"] == rep.to_dict()["auroc"]
    ccfg = json.loads((out / "classifier.json").read_text())
    clf = DiagnosticClassifier(ccfg["d_in"], ccfg["hidden"])
    clf.load_state_dict(load_file(out / "classifier.safetensors"))
    ecfg = json.loads((out / "ensemble.json").read_text())
    ens = TranscoderEnsemble(TranscoderConfig(**{**ecfg, "levels": tuple(ecfg["levels"])}))
    ens.load_state_dict(load_file(out / "ensemble.safetensors"))
    x = load_embeddings(tiny_embedded / "emb").image.float()
    with torch.no_grad():
        h = clf.hidden(x)
        v, i = ens.encode(x)
        d = decompose(
            v, i, h, ens.decode(v, i).mean(1), clf.fc2.weight, clf.fc2.bias, ens.b_dec, W_dec=ens.W_dec
        )
        assert torch.allclose(d.logits, clf(x), atol=1e-4)
    assert 0.0 < rep.fidelity.fvu_mean["256"] < 1.0
    assert rep.auroc.classifier.macro > 0.5 and "test split" in rep.measured_on


def test_train_bad_inputs(tiny_embedded, tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        train_from_embeddings(tiny_embedded / "emb", tmp_path, preset="huge", progress=False)
    with pytest.raises(DataError, match="not the dataset"):
        from lanic_hub.data.phantom import export

        other = export(tmp_path / "o", 10, seed=99, mimic=False, progress=False)["hf"]
        train_from_embeddings(tiny_embedded / "emb", tmp_path / "m", data=f"hf:{other}", progress=False)


def test_member_parallel_torchrun_equals_single_process(tiny_embedded, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    single = tmp_path / "single"
    # 30 steps: float sums reduced in another order drift apart over a long schedule
    train_from_embeddings(tiny_embedded / "emb", single, n_members=4, steps=30, progress=False)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    r = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "lanic_hub.cli",
            "train",
            "--embeddings",
            str(tiny_embedded / "emb"),
            "--out",
            str(tmp_path / "multi"),
            "--members",
            "4",
            "--steps",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a = load_file(single / "ensemble.safetensors")
    b = load_file(tmp_path / "multi" / "ensemble.safetensors")
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert not list((tmp_path / "multi").glob("members-*"))


def test_multimodal_stream_adds_centred_text_rows(tiny_phantom_clip, tmp_path):
    from lanic_hub.data.phantom import PhantomConfig, export, load_phantom_dataset
    from lanic_hub.training import text_stream

    world = PhantomConfig(prevalence_scale=2.0, split_fractions=(0.6, 0.2, 0.2))
    hf = export(tmp_path / "ph", 200, seed=6, cfg=world, mimic=False, progress=False)["hf"]
    bb = load_backbone(f"local-dir:{tiny_phantom_clip[2]}")
    embed_dataset(
        load_phantom_dataset(hf), bb, tmp_path / "emb", num_workers=0, progress=False, data_spec=f"hf:{hf}"
    )
    emb = load_embeddings(tmp_path / "emb")
    rows = set(range(0, 200, 2))
    xt = text_stream(emb, emb.image[:100].float(), rows)
    n_rep = len(torch.unique(emb.report[[int(r) in rows for r in emb.row_ids]], dim=0))
    n_sen = len(torch.unique(emb.sentence[[int(r) in rows for r in emb.sentence_row]], dim=0))
    assert len(xt) == n_rep + n_sen
    assert torch.allclose(xt.norm(dim=1), torch.ones(len(xt)), atol=1e-5)
    # the default: the text stream whenever the embeddings have it, for the preset's step budget
    rep = train_from_embeddings(tmp_path / "emb", tmp_path / "m", n_members=3, progress=False)
    mm = rep.ensemble.multimodal
    assert mm["enabled"] and mm["stream_rows"] > mm["image_rows"]
    # budgets are steps, whatever the data size: 120 image rows train as long as 1,475 did
    assert rep.ensemble.steps == mm["steps"] == PRESETS["phantom"]["multimodal_steps"]
    assert rep.ensemble.planned_steps == PRESETS["phantom"]["multimodal_steps"]
    # --image-only turns it off
    from lanic_hub.cli import main

    assert main(["train", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "io"),
                 "--members", "3", "--image-only"]) == 0  # fmt: skip
    io = json.loads((tmp_path / "io" / "fidelity.json").read_text())["ensemble"]
    assert not io["multimodal"]["enabled"] and io["multimodal"]["stream_rows"] == mm["image_rows"]
    assert io["steps"] == PRESETS["phantom"]["train"]["steps"]
    # --epochs replaces the budget by passes over the stream, --steps by a step count
    assert main(["train", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "ep"),
                 "--members", "2", "--image-only", "--epochs", "3"]) == 0  # fmt: skip
    ep = json.loads((tmp_path / "ep" / "fidelity.json").read_text())["ensemble"]
    batch = PRESETS["phantom"]["train"]["batch_size"]
    assert ep["steps"] == math.ceil(ep["multimodal"]["stream_rows"] / batch) * 3
    assert main(["train", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "st"),
                 "--members", "2", "--steps", "7"]) == 0  # fmt: skip
    st = json.loads((tmp_path / "st" / "fidelity.json").read_text())["ensemble"]
    assert st["steps"] == st["planned_steps"] == 7


def test_multimodal_needs_text_embeddings(tiny_embedded, tmp_path):
    with pytest.raises(DataError, match="without --no-text"):
        train_from_embeddings(tiny_embedded / "emb", tmp_path, n_members=2, multimodal=True, progress=False)
    # without text embeddings the default is image-only, no error
    rep = train_from_embeddings(tiny_embedded / "emb", tmp_path / "auto", n_members=2, progress=False)
    assert not rep.ensemble.multimodal["enabled"]


def test_path_aurocs_per_finding_single_members_match_sklearn():
    """Every single-member path's AUROC per finding, summarised over members, against sklearn on
    clf.head(ĥ_t) computed member by member."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from lanic_hub.constants import FINDINGS
    from lanic_hub.training import path_aurocs

    torch.manual_seed(0)
    clf = DiagnosticClassifier(8, 6, 5).eval()
    ens = TranscoderEnsemble(TranscoderConfig(d_in=8, d_out=6, n_latents=16, k=4, n_members=5, seed=3))
    e = torch.randn(120, 8)
    rng = np.random.default_rng(0)
    y = rng.random((120, 5)) < 0.4
    mask = rng.random((120, 5)) < 0.9  # some entries unlabelled (U-Ignore)
    res = path_aurocs(clf, ens, e, y, mask)
    with torch.no_grad():
        per_member = []
        for t in range(5):
            v, i = ens.encode(e)
            logits = clf.head(ens.decode(v, i)[:, t]).numpy()
            per_member.append([roc_auc_score(y[mask[:, c], c], logits[mask[:, c], c]) for c in range(5)])
    table = np.array(per_member)  # (members, findings)
    for c, f in enumerate(FINDINGS):
        got = res["single_member"][f]
        assert got["min"] == pytest.approx(table[:, c].min())
        assert got["median"] == pytest.approx(np.median(table[:, c]))
        assert got["max"] == pytest.approx(table[:, c].max())
    assert res["single_member"]["macro"]["max"] == pytest.approx(table.mean(1).max())
    assert table[:, 0].min() < table[:, 0].max()  # the members do differ


def test_path_aurocs_in_row_blocks_equal_one_block():
    """The rows go through the ensemble a block at a time (bounded memory at paper shape): blocks
    of 7 rows give the figures of one 120-row block."""
    import numpy as np

    from lanic_hub.training import path_aurocs

    torch.manual_seed(1)
    clf = DiagnosticClassifier(8, 6, 5).eval()
    ens = TranscoderEnsemble(TranscoderConfig(d_in=8, d_out=6, n_latents=16, k=4, n_members=3, seed=4))
    e = torch.randn(120, 8)
    rng = np.random.default_rng(1)
    y, mask = rng.random((120, 5)) < 0.4, rng.random((120, 5)) < 0.9
    one, blocks = path_aurocs(clf, ens, e, y, mask, batch=120), path_aurocs(clf, ens, e, y, mask, batch=7)
    assert blocks["classifier"] == pytest.approx(one["classifier"], abs=1e-12)
    assert blocks["ensemble_path"] == pytest.approx(one["ensemble_path"], abs=1e-12)
    for f, got in blocks["single_member"].items():
        assert got == pytest.approx(one["single_member"][f], abs=1e-12)


def test_latents_override_the_preset_width_with_default_levels(tiny_embedded, tmp_path):
    """`train: {latents: L}` (n_latents here) trains L latents per member; the preset's Matryoshka
    levels end at its own L, so the default levels for this L are used."""
    from lanic_hub.transcoders.ensemble import TranscoderConfig

    rep = train_from_embeddings(
        tiny_embedded / "emb", tmp_path / "l64", n_members=2, n_latents=64, steps=3, progress=False
    )
    cfg = TranscoderConfig.from_dict(json.loads((tmp_path / "l64" / "ensemble.json").read_text()))
    assert cfg.n_latents == 64 and cfg.k == 8 and cfg.resolved_levels[-1] == 64
    assert rep.ensemble.steps == 3
    assert {str(lv) for lv in rep.fidelity.fvu_mean} == {str(lv) for lv in cfg.resolved_levels}


def test_the_paper_preset_ends_on_its_validate_rows_plateau_or_its_maximum(tiny_embedded, tmp_path):
    """The paper preset's schedule is a plateau one: its held-out rows are the validate split (the
    ensemble trains on train only), and fidelity.json says what ended the run."""
    from lanic_hub.backbone.embed import load_embeddings
    from lanic_hub.data.open import open_dataset

    emb = load_embeddings(tiny_embedded / "emb")
    ds = open_dataset(emb.manifest.data_spec).select(emb.row_ids.tolist())
    n_val = sum(s == "validate" for s in ds["split"])
    rep = train_from_embeddings(
        tiny_embedded / "emb", tmp_path, preset="paper", n_members=2, n_latents=64, steps=40, progress=False
    )
    ens = rep.to_dict()["ensemble"]
    assert ens["train_config"]["plateau_every"] == PRESETS["paper"]["train"]["plateau_every"]
    # 40 steps: no check comes before the latest decay start (33), so the maximum ended the run
    assert ens["ended_by"] == "maximum steps" and ens["steps"] == 40
    assert ens["convergence"]["decay"] == [33, 40]
    assert ens["convergence"]["measured_on"] == f"{min(n_val, 2048)} held-out rows"
