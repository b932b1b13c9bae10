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


def _tiny_cfg(**kw):
    from dataclasses import replace

    from lanic_hub.backbone.phantom_clip import PhantomClipConfig

    base = dict(n_images=64, epochs=2, batch_size=32, check_train=120, check_test=80, min_probe_auroc=0.0)
    return replace(PhantomClipConfig(), **{**base, **kw})


def test_a_slowed_loop_gives_the_same_weights(tmp_path):
    """The budget is steps: a run slowed down 0.4 s per step (as on a busy machine) trains the
    same model as an unslowed one, and says it finished."""
    import time

    from lanic_hub.backbone.phantom_clip import train_phantom_clip

    cfg = _tiny_cfg()
    fast = train_phantom_clip(cfg, tmp_path / "fast", num_proc=1, progress=False)
    slept = []
    slow = train_phantom_clip(
        cfg,
        tmp_path / "slow",
        num_proc=1,
        progress=False,
        on_step=lambda step: (time.sleep(0.4), slept.append(step)),
    )
    assert fast.steps == slow.steps == cfg.planned_steps == 4
    assert fast.complete and slow.complete
    # the slowing really happened inside the timed loop (a lower bound, not a timing target)
    assert len(slept) == 4 and slow.seconds["train"] >= 4 * 0.4 - 0.1
    a = load_file(tmp_path / "fast" / "open_clip_model.safetensors")
    b = load_file(tmp_path / "slow" / "open_clip_model.safetensors")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_time_limit_fails_and_caches_nothing(tmp_path):
    from lanic_hub.backbone.phantom_clip import PhantomClipError

    cfg = _tiny_cfg()
    with pytest.raises(PhantomClipError, match=r"time limit .* after 1 of 4 steps; nothing was cached"):
        ensure_phantom_clip(cfg, root=tmp_path, progress=False, max_seconds=0.0, num_proc=1)
    assert not (tmp_path / "phantom-clip" / cfg.key()).exists()
    partial = tmp_path / "phantom-clip" / f"{cfg.key()}.partial"
    assert json.loads((partial / "training_report.json").read_text())["complete"] is False


def test_a_cut_short_cache_entry_is_trained_again(tmp_path, capsys):
    """A cached folder whose report says its run was cut short (as the old wall-clock cap left
    them) is never served: it is retrained, with a message naming the report."""
    import shutil

    from lanic_hub.backbone.phantom_clip import train_phantom_clip

    cfg = _tiny_cfg()
    folder = tmp_path / "phantom-clip" / cfg.key()
    train_phantom_clip(cfg, folder, num_proc=1, progress=False, max_seconds=0.0)
    rep = json.loads((folder / "training_report.json").read_text())
    assert (rep["steps"], rep["complete"]) == (1, False)
    got = ensure_phantom_clip(cfg, root=tmp_path, progress=False, num_proc=1)
    assert got == folder
    msg = capsys.readouterr().err
    assert str(folder / "training_report.json") in msg and "stopped after 1 of 4 steps" in msg
    rep = json.loads((folder / "training_report.json").read_text())
    assert rep["complete"] and rep["steps"] == 4 and rep["check"]["passed"]
    # a complete entry without a passed probe is not served either
    rep["check"]["passed"] = False
    (folder / "training_report.json").write_text(json.dumps(rep))
    shutil.copy(folder / "training_report.json", tmp_path / "failed.json")
    ensure_phantom_clip(cfg, root=tmp_path, progress=False, num_proc=1)
    assert "calibration probe" in capsys.readouterr().err
    assert json.loads((folder / "training_report.json").read_text())["check"]["passed"]
    # nor one whose report says complete while its own steps fall short of its budget
    from lanic_hub.backbone.phantom_clip import cache_problem

    rep = json.loads((folder / "training_report.json").read_text())
    assert cache_problem(folder) is None
    (folder / "training_report.json").write_text(json.dumps(rep | {"steps": 3}))
    assert "says complete, but ran 3 steps of its planned 4" in cache_problem(folder)
    (folder / "training_report.json").write_text(json.dumps(rep | {"steps": 2, "planned_steps": 2}))
    assert "its config's budget is 4" in cache_problem(folder)


def test_a_model_below_the_probe_band_is_not_cached(tmp_path):
    from lanic_hub.backbone.phantom_clip import PhantomClipError

    cfg = _tiny_cfg(min_probe_auroc=0.99)  # a 4-step model is far from it
    with pytest.raises(PhantomClipError, match=r"\.rejected/training_report\.json: .* below"):
        ensure_phantom_clip(cfg, root=tmp_path, progress=False, num_proc=1)
    assert not (tmp_path / "phantom-clip" / cfg.key()).exists()
    rep = json.loads(
        (tmp_path / "phantom-clip" / f"{cfg.key()}.rejected" / "training_report.json").read_text()
    )
    assert rep["complete"] and not rep["check"]["passed"] and rep["check"]["macro_probe_auroc"] < 0.99


def test_the_cache_key_records_every_field():
    from dataclasses import fields, replace

    from lanic_hub.backbone.phantom_clip import PhantomClipConfig

    base = PhantomClipConfig()
    changed = {"n_images": 1000, "seed": 1, "epochs": 1, "lr": 1e-4, "min_probe_auroc": 0.5, "check_test": 7}
    assert {f.name for f in fields(base)} >= set(changed)
    keys = {replace(base, **{k: v}).key() for k, v in changed.items()}
    assert len(keys) == len(changed) and base.key() not in keys


def test_building_the_text_tower_prints_no_load_report(capfd):
    """The checkpoint's unused pooler weights are expected: no transformers LOAD REPORT (with its
    escape codes) on every build; every other weight is checked to have loaded."""
    from lanic_hub.backbone.phantom_clip import PhantomClipConfig, _build_model

    _build_model(PhantomClipConfig())
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "UNEXPECTED" not in err and "\x1b[" not in err
