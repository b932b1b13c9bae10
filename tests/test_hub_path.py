"""A model used the way Hugging Face users expect, from a repo id alone: a model folder put into a
temporary offline Hub cache under a repo id the package never saw, and loaded in a fresh Python
process that does not import lanic_hub itself (transformers imports it through the folder's
``lanic_remote.py``).

The environment's own lanic-hub stands in for the one a user would `pip install`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from lanic_hub import LanICModel
from lanic_hub.modeling import AUTO_MAP, CUSTOM_PIPELINES, REMOTE_CODE
from lanic_hub.utils.hfcache import put_in_hf_cache

from .hub_env import offline_hub_env, run_json

REPO = "someone-new/cxr-lanic-never-seen"


@pytest.fixture(scope="module")
def image(tiny_lanic_model, tmp_path_factory):
    from lanic_hub.data.images import load_image
    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.phantom import export

    root = tmp_path_factory.mktemp("img")
    ph = export(root / "ph", 2, seed=11, mimic=False, progress=False)["hf"]
    load_image(open_dataset(f"hf:{ph}")[0]["image"]).save(root / "img.png")
    return root / "img.png"


def test_the_folder_says_how_transformers_loads_it(tiny_lanic_model):
    cfg = json.loads((tiny_lanic_model / "config.json").read_text())
    assert cfg["auto_map"] == AUTO_MAP and cfg["custom_pipelines"] == CUSTOM_PIPELINES
    assert cfg["id2label"] == {str(i): f for i, f in enumerate(cfg["findings"])}
    assert cfg["problem_type"] == "multi_label_classification"
    assert (tiny_lanic_model / REMOTE_CODE).is_file()
    # the operating points: chosen on the validation split at export, one per finding
    assert set(cfg["thresholds"]) == set(cfg["findings"]) and all(
        0 < t < 1 for t in cfg["thresholds"].values()
    )
    assert "validation split" in cfg["thresholds_measured_on"]
    # a few test images travel with a model whose data may be re-published, captioned with their truth
    ex = json.loads((tiny_lanic_model / "examples" / "examples.json").read_text())
    assert 1 <= len(ex) <= 4 and all(e["caption"].startswith("phantom; ground truth: ") for e in ex)
    from lanic_hub.data.phantom import ALL_FACTORS

    named = {t for e in ex for t in e["caption"].split(": ", 1)[1].split(", ")}
    assert named <= set(ALL_FACTORS) | {"normal"}  # factors only, not the numeric ground truth
    from PIL import Image

    assert all(Image.open(tiny_lanic_model / "examples" / e["file"]).mode == "L" for e in ex)


def test_predict_calls_positives_at_the_shipped_thresholds(tiny_lanic_model, image):
    model = LanICModel.from_pretrained(tiny_lanic_model)
    p = model.predict(str(image))
    assert p.thresholds == model.config.thresholds
    assert p.positive == {f: p[f] >= model.config.thresholds[f] for f in model.config.findings}
    assert "operating points" in repr(p)
    # the thresholds are the F1-maximising ones of the validation rows (recomputed independently)
    import numpy as np
    from sklearn.metrics import f1_score

    from lanic_hub.backbone.embed import load_embeddings
    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.schema import label_matrix

    emb = load_embeddings(model.bank_meta.embeddings)
    rows = open_dataset(emb.manifest.data_spec).select(emb.row_ids.tolist())
    va = np.where(np.array(rows["split"]) == "validate")[0]
    y, mask = label_matrix(rows.select(va.tolist()), policy="U-Ignore")
    with torch.no_grad():
        prob = torch.sigmoid(model.classifier(emb.image[torch.from_numpy(va)].float())).numpy()
    for c, f in enumerate(model.config.findings):
        yc, pc = y[mask[:, c], c].astype(int), prob[mask[:, c], c]
        if yc.sum() == 0:
            continue
        best = max(f1_score(yc, pc >= t, zero_division=0) for t in np.unique(pc))
        assert f1_score(yc, pc >= model.config.thresholds[f], zero_division=0) == pytest.approx(best)


def test_pipeline_and_automodel_from_a_repo_id_in_a_fresh_process(tiny_lanic_model, image, tmp_path):
    put_in_hf_cache(tiny_lanic_model, REPO, tmp_path / "hf" / "hub")
    code = (
        "import json, sys\n"
        "from transformers import AutoModel, pipeline\n"
        f"clf = pipeline('image-classification', model={REPO!r}, trust_remote_code=True)\n"
        f"out = clf({str(image)!r})\n"
        f"m = AutoModel.from_pretrained({REPO!r}, trust_remote_code=True)\n"
        f"d = m.explain({str(image)!r}).to_dict()\n"
        "gap = max(abs(f['bias'] + sum(c['contribution'] for c in f['concepts']) + f['error'] - f['logit'])"
        " for f in d['findings'])\n"
        "print(json.dumps({'out': out, 'gap': gap, 'cls': type(m).__name__,"
        f" 'probs': dict(m.predict({str(image)!r})), 'imported_by_us': False}}))\n"
    )
    res = run_json(code, offline_hub_env(tmp_path / "hf", tmp_path))
    labels = [o["label"] for o in res["out"]]
    assert sorted(labels) == sorted(LanICModel.from_pretrained(tiny_lanic_model).config.findings)
    scores = [o["score"] for o in res["out"]]
    assert scores == sorted(scores, reverse=True)  # the highest first
    assert {o["label"]: o["score"] for o in res["out"]} == pytest.approx(res["probs"], abs=1e-6)
    assert res["cls"] == "LanICModel" and res["gap"] < 1e-4


def test_the_remote_code_says_how_to_install_lanic_hub_when_it_is_missing(tiny_lanic_model, tmp_path):
    """Run the folder's lanic_remote.py where lanic_hub cannot be imported."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "lanic_hub.py").write_text("raise ImportError('No module named lanic_hub')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    r = subprocess.run(
        [sys.executable, str(tiny_lanic_model / REMOTE_CODE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode != 0 and "pip install lanic-hub" in r.stderr
