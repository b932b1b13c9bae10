"""The console entry point: thin wrappers, examples in --help, clean errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lanic_hub.cli import build_parser, main
from lanic_hub.data import load_mimic_cxr
from lanic_hub.data.phantom import load_phantom_dataset


@pytest.mark.parametrize("command", ["phantom", "preview", "quickstart"])
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


def test_quickstart_runs_the_pipeline_at_a_tiny_size(tmp_path, tiny_phantom_clip):
    from lanic_hub.backbone.embed import load_embeddings

    spec = f"local-dir:{tiny_phantom_clip[2]}"
    assert main(["quickstart", "--n", "20", "--out", str(tmp_path), "--backbone", spec]) == 0
    assert (tmp_path / "phantom_preview.png").stat().st_size > 10_000
    assert "Ground-truth prevalence" in (tmp_path / "label_summary.md").read_text()
    e = load_embeddings(tmp_path / "embeddings")
    assert e.row_ids.tolist() == list(range(20)) and e.image.shape == (20, 256)
    assert e.manifest["backbone"]["spec"] == spec


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
