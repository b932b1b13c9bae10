"""Untrusted model folders (issue 9): every tampered folder gets a ModelFolderError naming the file
and the key, before any large allocation, and nothing pickled is ever executed."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lanic_hub import LanICModel
from lanic_hub.modeling import ModelFolderError
from lanic_hub.utils.hfcache import put_in_hf_cache


@pytest.fixture
def copy(tiny_lanic_model, tmp_path):
    def make(name: str = "m") -> Path:
        dst = tmp_path / name
        shutil.copytree(tiny_lanic_model, dst)
        return dst

    return make


def _edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            cfg[outer][inner] = value
        else:
            cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))


def _edit_weights(folder: Path, edit) -> None:
    t = load_file(folder / "model.safetensors")
    edit(t)
    save_file(t, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_sidecar(folder: Path, edit) -> None:
    doc = json.loads((folder / "patterns.json").read_text())
    edit(doc["patterns"])
    (folder / "patterns.json").write_text(json.dumps(doc))


def test_intact_copy_loads(copy):
    m = LanICModel.from_pretrained(copy())
    assert len(m.patterns) == m.config.n_patterns > 0


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "patterns.json"])
def test_missing_files(copy, missing):
    f = copy()
    (f / missing).unlink()
    with pytest.raises(ModelFolderError, match=missing.replace(".", r"\.").split(r"\.")[0]):
        LanICModel.from_pretrained(f)


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda t: t.__setitem__("classifier.fc1.weight", t["classifier.fc1.weight"][:, :-1].contiguous()),
            "fc1.weight has shape",
        ),
        (lambda t: t.pop("ensemble.W_dec"), "missing ensemble.W_dec"),
        (lambda t: t.__setitem__("ensemble.extra", torch.zeros(3)), "unexpected ensemble.extra"),
        (
            lambda t: t.__setitem__("pattern_direction", t["pattern_direction"][:-1]),
            "pattern_direction has shape",
        ),
    ],
    ids=["resized", "missing", "extra", "fewer-patterns"],
)
def test_wrong_tensor_shapes_name_the_key(copy, edit, words):
    f = copy()
    _edit_weights(f, edit)
    with pytest.raises(ModelFolderError, match=words) as e:
        LanICModel.from_pretrained(f)
    assert "model.safetensors" in str(e.value)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"d_in": -4}, r"d_in = -4 is not an integer"),
        ({"hidden": 10**12}, r"hidden = 1000000000000 is not an integer"),
        ({"ensemble.n_latents": "many"}, r"ensemble.n_latents = 'many'"),
        ({"ensemble.n_members": 0}, r"ensemble.n_members = 0"),
        ({"n_patterns": 3}, r"pattern_direction has shape"),
        (
            {"ensemble.n_latents": 1 << 20, "ensemble.levels": [1 << 20]},
            r"ensemble.W_enc has shape",
        ),  # 4 GB if it were allocated
        ({"model_type": "bert"}, r"model_type is 'bert'"),
        ({"findings": []}, r"at least one finding"),
    ],
    ids=[
        "negative",
        "enormous",
        "not-int",
        "zero",
        "n_patterns",
        "large-but-plausible",
        "model_type",
        "findings",
    ],
)
def test_tampered_config(copy, changes, words):
    f = copy()
    _edit_config(f, **changes)
    with pytest.raises(ModelFolderError, match=words):
        LanICModel.from_pretrained(f)


def test_nan_weights_are_named(copy):
    f = copy()
    _edit_weights(f, lambda t: t["classifier.fc2.weight"].__setitem__((0, 0), float("nan")))
    with pytest.raises(ModelFolderError, match=r"classifier.fc2.weight holds 1 NaN/inf"):
        LanICModel.from_pretrained(f)


class _Payload:
    """A pickle that, if ever unpickled, writes a marker file (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_pickled_weights_are_never_executed(copy, tmp_path):
    marker = tmp_path / "executed"
    f = copy()
    with open(f / "pytorch_model.bin", "wb") as fh:  # beside the safetensors: must be ignored
        pickle.dump({"classifier.fc1.weight": _Payload(marker)}, fh)
    LanICModel.from_pretrained(f)
    (f / "model.safetensors").unlink()  # pickle only: refused without unpickling
    with pytest.raises(ModelFolderError, match="never loaded from pickles"):
        LanICModel.from_pretrained(f)
    assert not marker.exists()


def test_training_checkpoints_hold_no_pickle(tmp_path):
    """Checkpoints are one safetensors file (weights, Adam moments, RNG state): a pickle planted
    beside it is never read, and a damaged checkpoint is a clear error."""
    from lanic_hub.errors import DataError
    from lanic_hub.transcoders import TrainConfig, TranscoderConfig
    from lanic_hub.transcoders.checkpoint import CHECKPOINT
    from lanic_hub.transcoders.train import train_ensemble

    marker = tmp_path / "executed"
    cfg = TranscoderConfig(d_in=8, d_out=4, n_members=2, n_latents=16, k=2, levels=(16,))
    e, h = torch.randn(64, 8), torch.randn(64, 4)
    ck = tmp_path / "ck"
    tc = TrainConfig(epochs=2, batch_size=32)
    train_ensemble(e, h, cfg, tc, checkpoint_dir=ck, progress=False, stop_after_epochs=1)
    assert sorted(p.name for p in ck.iterdir()) == [CHECKPOINT]
    for name in ("ckpt_state.pt", "optimizer.pt", "pytorch_model.bin"):
        with open(ck / name, "wb") as fh:
            pickle.dump({"opt": _Payload(marker)}, fh)
    train_ensemble(e, h, cfg, tc, checkpoint_dir=ck, progress=False)
    assert not marker.exists()
    (ck / CHECKPOINT).write_bytes((ck / CHECKPOINT).read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable lanic-hub checkpoint"):
        train_ensemble(e, h, cfg, tc, checkpoint_dir=ck, progress=False)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda ps: ps.pop(), r"does not match the weights"),
        (lambda ps: ps[0].__setitem__("id", 7), r"pattern 0: expected an object with id 0"),
        (lambda ps: ps[0]["members"].__setitem__(0, [999, 0]), r"member \[999, 0\] is not"),
        (lambda ps: ps[0]["members"].__setitem__(0, ps[1]["members"][0]), r"belongs to pattern 1"),
        (lambda ps: ps[0]["members"].pop(), r"'members' must list 'support'"),
        (lambda ps: ps[0]["gallery"].__setitem__(0, {"row": "../../etc/passwd"}), r"not a dataset row"),
        (lambda ps: ps[0].__setitem__("name", None), r"'name' and 'category' must be strings"),
    ],
    ids=["count", "id", "member-range", "member-other-pattern", "support", "gallery-path", "name"],
)
def test_sidecar_disagreeing_with_the_weights(copy, edit, words):
    f = copy()
    _edit_sidecar(f, edit)
    with pytest.raises(ModelFolderError, match=words) as e:
        LanICModel.from_pretrained(f)
    assert "patterns.json" in str(e.value)


def test_paths_cannot_escape_the_model_folder(copy, tmp_path):
    outside = tmp_path / "outside-backbone"
    f = copy()
    shutil.move(f / "backbone", outside)
    os.symlink(outside, f / "backbone")
    with pytest.raises(ModelFolderError, match="bundled backbone must be a folder inside"):
        LanICModel.from_pretrained(f)
    # a model from the Hub may not point its backbone at a folder of this machine
    g = copy("hub-src")
    shutil.rmtree(g / "backbone")
    _edit_config(g, bundled_backbone=False, backbone={"spec": f"local-dir:{outside}", "revision": None})
    hub = tmp_path / "hf" / "hub"
    put_in_hf_cache(g, "lanic-test/escape", hub, revision="main")
    code = (
        "import lanic_hub, sys\n"
        "from lanic_hub.modeling import ModelFolderError\n"
        "m = lanic_hub.LanICModel.from_pretrained('lanic-test/escape')\n"
        "try:\n    m.backbone\nexcept ModelFolderError as e:\n    print('refused:', e); sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "points its backbone at a local folder" in r.stdout, (
        r.stdout + r.stderr[-2000:]
    )
    # the same folder given as a local path is the user's own choice, and loads
    assert LanICModel.from_pretrained(g).backbone is not None
