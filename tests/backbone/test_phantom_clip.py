"""The phantom CLIP at a tiny size: BiomedCLIP layout, same loader, locked text tower, caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from lanic_hub.backbone import load_backbone
from lanic_hub.backbone.phantom_clip import (
    ensure_phantom_clip,
    minilm_dir,
    normalise,
    to_tensor_u8,
)
from lanic_hub.data.phantom import generate


@pytest.fixture(scope="module")
def tiny_clip(tiny_phantom_clip):
    return tiny_phantom_clip[1], tiny_phantom_clip[2]


def test_saved_in_biomedclip_layout(tiny_clip, shared_data):
    _, folder = tiny_clip
    for f in (
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
        "text_config/config.json",
        "training_report.json",
    ):
        assert (folder / f).is_file(), f
    ours = json.loads((folder / "open_clip_config.json").read_text())
    ref = json.loads((shared_data / "biomedclip" / "open_clip_config.json").read_text())
    assert set(ours) == set(ref) and set(ours["model_cfg"]) == set(ref["model_cfg"])
    for k in ("vision_cfg", "text_cfg"):
        assert set(ours["model_cfg"][k]) == set(ref["model_cfg"][k])
    assert ours["model_cfg"]["text_cfg"]["hf_model_name"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_loads_through_the_biomedclip_path_offline(tiny_clip, monkeypatch):
    _, folder = tiny_clip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bb = load_backbone(f"local-dir:{folder}")
    saved = load_file(folder / "open_clip_model.safetensors")
    got = bb.model.state_dict()
    assert set(saved) == set(got) and all(torch.equal(got[k], v) for k, v in saved.items())
    # LiT: the text tower is all-MiniLM-L6-v2, unchanged by training
    minilm = load_file(minilm_dir() / "model.safetensors")
    key = next(k for k in minilm if k.endswith("word_embeddings.weight"))
    assert torch.equal(got["text.transformer." + key.removeprefix("bert.")], minilm[key])
    emb = bb.encode_text(["Small left pleural effusion.", "No pleural effusion."])
    assert emb.shape == (2, 256)


def test_training_preprocessing_matches_open_clip_preprocess(tiny_clip):
    _, folder = tiny_clip
    bb = load_backbone(f"local-dir:{folder}")
    st = next(iter(generate(1, seed=3, progress=False)))
    a = bb.encode_image(normalise(to_tensor_u8([st.image], bb.image_size)))
    b = bb.encode_image(bb.preprocess(Image.fromarray(st.image).convert("RGB"))[None])
    assert torch.allclose(a, b, atol=2e-2), (a - b).abs().max()


def test_cached_and_reused(tiny_phantom_clip):
    tiny, root, folder = tiny_phantom_clip
    stamp = (folder / "open_clip_model.safetensors").stat().st_mtime_ns
    again = ensure_phantom_clip(tiny, root=root, progress=False)
    assert again == folder and (folder / "open_clip_model.safetensors").stat().st_mtime_ns == stamp
    assert Path(root, "phantom-clip", tiny.key()) == folder
