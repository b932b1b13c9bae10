"""The packaged build configs, and `lanic-hub build` on data laid out exactly like MIMIC-CXR-JPG."""

from __future__ import annotations

import json

import pytest
import yaml

from lanic_hub.errors import ConfigError
from lanic_hub.pipeline import PipelineConfig, packaged_configs


def test_packaged_configs_parse_and_name_real_data_and_biomedclip():
    assert packaged_configs() == ["chexpert-biomedclip.yaml", "mimic-cxr-biomedclip.yaml"]
    mimic = PipelineConfig.from_yaml("mimic-cxr-biomedclip.yaml")
    assert mimic.data.startswith("mimic:") and "?reports=" in mimic.data
    assert mimic.backbone == "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    assert (mimic.train.preset, mimic.train.members) == ("paper", 100)
    from lanic_hub.training import PRESETS

    assert PRESETS["paper"]["ensemble"] == {"n_latents": 2048, "k": 32, "n_members": 100}
    assert mimic.model.thumbnails is False and mimic.model.bundle_backbone is False
    chex = PipelineConfig.from_yaml("chexpert-biomedclip.yaml")
    assert chex.data.startswith("chexpert:") and chex.train.preset == "paper" and chex.embed.text is False


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"dta": "phantom"}, "unknown key(s) ['dta']"),
        ({"train": {"preset": "paper", "memebrs": 3}}, "train: unknown key(s) ['memebrs']"),
        ({"patterns": {"naming": "vibes"}}, "naming must be"),
        ({"train": 3}, "train must be a mapping"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, doc, words):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        PipelineConfig.from_yaml(p)
    assert words in str(err.value) and str(p) in str(err.value)
    with pytest.raises(ConfigError, match="no such config file"):
        PipelineConfig.from_yaml(tmp_path / "missing.yaml")


def test_build_runs_the_mimic_config_on_a_mimic_layout(tiny_phantom_clip, tmp_path):
    """The shipped MIMIC config with only the paths and sizes changed, on phantoms exported in the
    MIMIC-CXR-JPG layout: the real loader path, and no thumbnails (MIMIC's licence)."""
    from lanic_hub import LanICModel
    from lanic_hub.cli import main
    from lanic_hub.data.phantom import PhantomConfig, export

    root = export(
        tmp_path / "ph", 240, seed=8, cfg=PhantomConfig(prevalence_scale=2.0), hf=False, progress=False
    )["mimic"]
    from importlib import resources

    text = (resources.files("lanic_hub") / "resources" / "configs" / "mimic-cxr-biomedclip.yaml").read_text()
    doc = yaml.safe_load(text)
    doc["data"] = f"mimic:{root}"
    doc["backbone"] = f"local-dir:{tiny_phantom_clip[2]}"
    doc["embed"].update(batch_size=32, num_workers=0, shard_size=128, dtype="float32", autocast=None)
    doc["train"]["members"] = 2
    doc["patterns"].update(sample_rows=200, batch_size=64)
    doc["out"] = str(tmp_path / "run")
    cfg = tmp_path / "mimic.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["build", "--config", str(cfg)]) == 0
    model = tmp_path / "run" / "model"
    assert not (model / "thumbnails").exists()
    meta = json.loads((model / "patterns.json").read_text())["meta"]
    assert meta["data_source"]["name"] == "mimic-cxr-jpg" and meta["data_source"]["redistributable"] is False
    m = LanICModel.from_pretrained(model)
    assert m.ensemble.cfg.n_latents == 2048 and m.ensemble.cfg.k == 32  # the paper preset, as shipped
    card = (model / "README.md").read_text()
    assert "No images of this dataset are included" in card and "license: other" in card
