"""The console entry point: thin wrappers, examples in --help, clean errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lanic_hub.cli import build_parser, main
from lanic_hub.data import load_mimic_cxr
from lanic_hub.data.phantom import load_phantom_dataset


@pytest.mark.parametrize(
    "command", ["phantom", "preview", "quickstart", "build", "export", "patterns", "explain", "eval", "demo"]
)
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--help"])
    assert e.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_phantom_command_writes_both_forms(tmp_path):
    assert main(["phantom", "--n", "6", "--seed", "2", "--out", str(tmp_path)]) == 0
    hf = load_phantom_dataset(tmp_path / "hf")
    assert len(hf) == 6 and len(load_mimic_cxr(tmp_path / "mimic-cxr-jpg")) == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_quickstart_runs_the_whole_pipeline_at_a_tiny_size_and_reruns_from_cache(
    tmp_path, tiny_phantom_clip, capsys
):
    import json

    from lanic_hub import LanICModel
    from lanic_hub.backbone.embed import load_embeddings

    spec = f"local-dir:{tiny_phantom_clip[2]}"
    argv = ["quickstart", "--n", "200", "--members", "3", "--out", str(tmp_path), "--backbone", spec]
    assert main(argv) == 0
    assert (tmp_path / "phantom_preview.png").stat().st_size > 10_000
    assert "Ground-truth prevalence" in (tmp_path / "label_summary.md").read_text()
    e = load_embeddings(tmp_path / "embeddings")
    assert e.row_ids.tolist() == list(range(200)) and e.image.shape == (200, 256)
    assert e.manifest["backbone"]["spec"] == spec
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["seconds"]) == {"data", "backbone", "embeddings", "train", "patterns", "model", "eval"}
    model = LanICModel.from_pretrained(tmp_path / "model")
    assert model.ensemble.cfg.n_members == 3
    assert model.config.bundled_backbone  # a phantom CLIP lives in a local cache: it is bundled
    ex = model.explain_embedding(e.image[0].float())
    assert all(abs(f.total - f.logit) < 1e-4 for f in ex.findings)
    stages = (tmp_path / "stages.json").read_text()
    mtime = (tmp_path / "train" / "ensemble.safetensors").stat().st_mtime
    capsys.readouterr()
    assert main(argv) == 0
    log = capsys.readouterr().out
    for stage in ("phantoms", "classifier + ensemble", "pattern bank", "evaluation"):
        assert f"{stage}: up to date" in log
    assert (tmp_path / "stages.json").read_text() == stages
    assert (tmp_path / "train" / "ensemble.safetensors").stat().st_mtime == mtime


def test_bad_input_is_a_clean_error(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lanic_hub.cli",
            "phantom",
            "--n",
            "2",
            "--out",
            str(tmp_path),
            "--shortcut",
            "edema:Edema",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "not a device or artifact" in r.stderr and "Traceback" not in r.stderr
