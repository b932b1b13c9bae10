"""Model folders: bad folders get clear errors, a repo id resolves from an offline cache, and the
shapes a config implies are the model's own."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lanic_hub import LanICModel
from lanic_hub.modeling import ModelFolderError
from lanic_hub.utils.hfcache import put_in_hf_cache


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
        "print(json.dumps({'main': m.patterns[0].name, 'v1': v1.patterns[0].name,"
        " 'gap': abs(f.total - f.logit), 'n': len(e.findings)}))\n"
    )
    from ..hub_env import offline_hub_env, run_json

    out = run_json(code, offline_hub_env(tmp_path / "hf", tmp_path))
    assert out["v1"] == "renamed in v1" and out["main"] != "renamed in v1"
    assert out["gap"] < 1e-4 and out["n"] == 5


@pytest.mark.parametrize("typicality", [False, True])
@pytest.mark.parametrize("activation", ["topk", "jumprelu"])
def test_the_shapes_a_config_implies_are_the_models_own(typicality, activation):
    from lanic_hub import LanICConfig
    from lanic_hub.modeling.folder import expected_shapes
    from lanic_hub.transcoders import TranscoderConfig

    tc = TranscoderConfig(d_in=12, d_out=7, n_latents=16, k=4, n_members=3, activation=activation)
    cfg = LanICConfig(d_in=12, hidden=7, ensemble=tc.to_dict(), n_patterns=5, typicality=typicality)
    with torch.device("meta"):
        model = LanICModel(cfg)
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert expected_shapes(cfg) == have
    assert ("typicality_mean" in have) == typicality and have["latent_pattern"] == (48,)
