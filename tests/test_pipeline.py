"""The packaged build configs, and `lanic-hub build` on data laid out exactly like MIMIC-CXR-JPG."""

from __future__ import annotations

import json

import pytest
import yaml

from lanic_hub.errors import ConfigError
from lanic_hub.pipeline import PipelineConfig, packaged_configs
from lanic_hub.records import RunSummary


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
        ({"train": {"preset": "papr"}}, "unknown preset 'papr'"),
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


def test_build_runs_the_mimic_config_on_a_mimic_layout(tiny_phantom_clip, tmp_path, monkeypatch):
    """The shipped MIMIC config with only the paths and sizes changed, on phantoms exported in the
    MIMIC-CXR-JPG layout: the real loader path, and no thumbnails (MIMIC's licence)."""
    # smoke mode: the evaluation's baseline transcoder trains 30 steps, not the paper preset's 2,000
    monkeypatch.setenv("LANIC_HUB_SMOKE", "1")
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
    doc["train"]["steps"] = 20  # the paper preset's 2,000 steps are for real data, not this check
    # loose bank thresholds, so that this 20-step ensemble has patterns whose galleries have reports
    doc["patterns"].update(sample_rows=200, batch_size=64, min_support=1, min_ms=-1.0, min_frequency=0.0)
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
    # no report text either: no typical sentences, and no sentence of any report in any file that
    # would be uploaded; the push check agrees
    from lanic_hub.modeling import restricted_content, upload_plan

    doc = json.loads((model / "patterns.json").read_text())
    assert doc["patterns"] and not any(p["typical_sentences"] for p in doc["patterns"])
    withheld = doc["meta"]["report_text"]
    assert (
        withheld.startswith("typical sentences withheld (") and int(withheld.split("(")[1].split(")")[0]) > 0
    )
    reports = [f.read_text() for f in root.rglob("*.txt")]
    sentences = {t.strip() for r in reports for t in r.replace("\n", " ").split(". ") if len(t.strip()) > 25}
    assert len(reports) >= 200 and len(sentences) > 20
    assert restricted_content(model) == []
    for f in upload_plan(model):
        if f.endswith((".json", ".md", ".txt", ".py")):
            text = (model / f).read_text()
            assert not [t for t in sentences if t in text], f
    assert main(["push", "--model", str(model), "--repo", "someone/cxr-lanic", "--dry-run"]) == 0


def test_build_runs_on_an_image_folder_with_a_labels_csv(tiny_phantom_clip, tmp_path):
    """`data: folder:ROOT?...` builds a model end to end and evaluates it on the folder's own test
    split (the generic 'data' suite), whose figures go into the card."""
    from datasets import load_from_disk

    from lanic_hub.cli import main
    from lanic_hub.data.phantom import PhantomConfig, export

    from .image_folders import write_image_folder

    hf_dir = export(
        tmp_path / "ph", 200, seed=8, cfg=PhantomConfig(prevalence_scale=2.0), mimic=False, progress=False
    )["hf"]
    root = write_image_folder(load_from_disk(str(hf_dir)), tmp_path / "my-folder")
    doc = {
        "out": str(tmp_path / "run"),
        "data": f"folder:{root}?patient=patient&split=split&report=report",
        "backbone": f"local-dir:{tiny_phantom_clip[2]}",
        "embed": {"num_workers": 0, "batch_size": 64},
        "train": {"preset": "phantom", "members": 2},
        "patterns": {"sample_rows": 200, "batch_size": 64},
    }
    cfg = tmp_path / "folder.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["build", "--config", str(cfg)]) == 0
    docs = [
        json.loads(f.read_text()) for f in (tmp_path / "run" / "eval" / "results" / "data").glob("*.json")
    ]
    res = next(d for d in docs if d["model"]["kind"] == "lanic")
    assert res["dataset"]["spec"] == doc["data"]
    n_test = sum(s == "test" for s in load_from_disk(str(hf_dir))["split"])
    assert res["dataset"]["rows"] == n_test
    macro = res["metrics"]["accuracy"]["classifier"]["auroc"]["macro"]
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "lanic-eval suite 'data'" in card and "assumed not redistributable" in card
    assert f"{macro:.3f}" in card  # the card quotes this evaluation (a tiny CLIP: the value is not the point)


def test_a_0_pattern_build_is_not_reported_as_done(tiny_phantom_clip, tmp_path, capsys):
    """The issue's folder build: 2 members can never give a pattern of support 5. The build says so
    loudly (stderr, the card, summary.json, the Space's banner) instead of a plain "Done"."""
    from datasets import load_from_disk

    from lanic_hub import LanICModel
    from lanic_hub.cli import main
    from lanic_hub.data.phantom import PhantomConfig, export
    from lanic_hub.demo import health_warning

    from .image_folders import write_image_folder

    hf_dir = export(
        tmp_path / "ph", 160, seed=9, cfg=PhantomConfig(prevalence_scale=2.0), mimic=False, progress=False
    )["hf"]
    root = write_image_folder(load_from_disk(str(hf_dir)), tmp_path / "my-folder")
    doc = {
        "out": str(tmp_path / "run"),
        "data": f"folder:{root}?patient=patient&split=split&report=report",
        "backbone": f"local-dir:{tiny_phantom_clip[2]}",
        "embed": {"num_workers": 0, "batch_size": 64},
        "train": {"preset": "phantom", "members": 2},
        "patterns": {"sample_rows": 200, "batch_size": 64},
        "evaluate": False,
    }
    cfg = tmp_path / "folder.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["build", "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert "WARNING:" in out.err and "no pattern passed support" in out.err
    assert "health check" in out.out and "probably not usable" in out.out and "Done in" in out.out
    # the progress lines number the stages from the stage list: the build stages of the seven (a
    # folder's data stage opens it without a line; phantom data prints "[1/7] phantoms: ...")
    steps = [line.split("]")[0] + "]" for line in out.out.splitlines() if line.startswith("[")]
    assert steps == [f"[{i}/7]" for i in range(2, 7)], steps
    assert "[4/7] classifier + 2-member transcoder ensemble (phantom preset)" in out.out
    summary = RunSummary.read(tmp_path / "run")
    assert "patterns" in {c["name"] for c in summary.health["failed"]}
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "## Health checks" in card and "**Warning:" in card and "no pattern passed" in card
    assert "no pattern passed" in health_warning(LanICModel.from_pretrained(tmp_path / "run" / "model"))
    assert main(["build", "--config", str(cfg), "--strict"]) == 3  # a rerun: every stage is cached


def test_the_stage_names_are_the_pipelines_stages_in_order():
    from lanic_hub.pipeline import STAGES
    from lanic_hub.stages import BUILD_STAGES, STAGE_NAMES

    assert tuple(name for name, _ in STAGES) == STAGE_NAMES
    assert tuple(name for name, _ in BUILD_STAGES) == STAGE_NAMES[:-1]
