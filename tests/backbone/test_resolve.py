"""The backbone resolver on a tiny model in BiomedCLIP's Hub layout, fully offline."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from lanic_hub.backbone import BackboneError, load_backbone
from lanic_hub.utils.hfcache import put_in_hf_cache

from ..tiny_models import CLIP_REPO, TEXT_REPO


def _assert_equal_state(model, state):
    got = model.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        assert torch.equal(got[k], v), k


def test_local_dir_with_text_config_subfolder(tiny_biomedclip, tmp_path, monkeypatch):
    folder, bert, state = tiny_biomedclip
    local = tmp_path / "clip"
    shutil.copytree(folder, local)
    (local / "text_config").mkdir()
    shutil.copy(bert / "config.json", local / "text_config" / "config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bb = load_backbone(f"local-dir:{local}", cache_dir=str(tmp_path / "empty-cache"))
    _assert_equal_state(bb.model, state)
    emb = bb.encode_text(["small left pleural effusion .", "no edema ."])
    assert emb.shape == (2, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(2))
    assert bb.context_length == 64 and bb.image_size == 160


def test_local_dir_takes_text_config_from_hf_cache(tiny_biomedclip, tmp_path):
    folder, bert, state = tiny_biomedclip
    cache = tmp_path / "hub"
    put_in_hf_cache(bert, TEXT_REPO, cache)
    bb = load_backbone(f"local-dir:{folder}", cache_dir=str(cache))
    _assert_equal_state(bb.model, state)


def test_missing_text_config_is_explained(tiny_biomedclip, tmp_path):
    folder, _, _ = tiny_biomedclip
    with pytest.raises(BackboneError, match="text_config/config.json"):
        load_backbone(f"local-dir:{folder}", cache_dir=str(tmp_path / "empty"))


def test_hf_hub_from_offline_cache_in_fresh_process(tiny_biomedclip, tmp_path):
    """A new process with HF_HOME pointing at a populated cache and HF_HUB_OFFLINE=1."""
    folder, bert, state = tiny_biomedclip
    put_in_hf_cache(folder, CLIP_REPO, tmp_path / "hf" / "hub")
    put_in_hf_cache(bert, TEXT_REPO, tmp_path / "hf" / "hub")
    torch.save(state, tmp_path / "expected.pt")
    code = (
        "import torch, sys\n"
        "from lanic_hub.backbone import load_backbone\n"
        f"bb = load_backbone('hf-hub:{CLIP_REPO}')\n"
        f"ref = torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True)\n"
        "got = bb.model.state_dict()\n"
        "assert set(got) == set(ref)\n"
        "assert all(torch.equal(got[k], v) for k, v in ref.items())\n"
        "print('OK', bb.folder)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "OK" in r.stdout and "snapshots" in r.stdout


def test_hf_hub_not_cached_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="not in the Hugging Face cache") as err:
        load_backbone("hf-hub:lanic-test/DoesNotExist", cache_dir=str(tmp_path))
    msg = str(err.value)
    assert "HF_HUB_OFFLINE is set" in msg and "could not be reached" not in msg
    # the installed huggingface_hub ships the `hf` command (huggingface-cli is gone)
    assert "`hf download lanic-test/DoesNotExist`" in msg and "huggingface-cli" not in msg


@pytest.mark.parametrize("value", ["0", ""])
def test_hf_hub_not_cached_without_network_says_so(tmp_path, monkeypatch, value):
    """HF_HUB_OFFLINE=0 (or empty) is online mode: the Hub is asked, the offline guard refuses the
    connection, and the message names that cause, not offline mode."""
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    with pytest.raises(BackboneError) as err:
        load_backbone("hf-hub:lanic-test/DoesNotExist", cache_dir=str(tmp_path))
    msg = str(err.value)
    assert "the Hub could not be reached (no network?" in msg and "HF_HUB_OFFLINE is set" not in msg
    assert "`hf download lanic-test/DoesNotExist`" in msg


def test_safetensors_preferred_over_bin(tiny_biomedclip, tmp_path):
    folder, bert, state = tiny_biomedclip
    local = tmp_path / "clip"
    shutil.copytree(folder, local)
    shutil.copytree(bert, local / "text_config")
    other = {k: v + 1.0 if v.is_floating_point() else v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in other.items()}, local / "open_clip_model.safetensors")
    bb = load_backbone(f"local-dir:{local}")
    _assert_equal_state(bb.model, other)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lanic_pwned_by_pickle",))


def test_pickle_payload_in_bin_is_never_executed(tiny_biomedclip, tmp_path):
    folder, bert, _ = tiny_biomedclip
    local = tmp_path / "clip"
    shutil.copytree(folder, local)
    shutil.copytree(bert, local / "text_config")
    marker = "/tmp/lanic_pwned_by_pickle"
    if os.path.exists(marker):
        os.remove(marker)
    with open(local / "open_clip_pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(BackboneError):
        load_backbone(f"local-dir:{local}")
    assert not os.path.exists(marker)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(BackboneError, match="open_clip_config.json"):
        load_backbone(f"local-dir:{tmp_path}")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(BackboneError, match="model_cfg"):
        load_backbone(f"local-dir:{tmp_path}")
    with pytest.raises(BackboneError, match="not found"):
        load_backbone(f"local-dir:{tmp_path / 'nope'}")
