"""LanICModel: the transformers round trip, forward and explanations, predict on every image kind,
refused inputs."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoConfig, AutoModel

from lanic_hub import LanICConfig, LanICModel
from lanic_hub.backbone.embed import load_embeddings


def test_round_trip_is_bit_exact_with_a_clean_loading_report(tiny_model, tiny_lanic_model):
    built = LanICModel.from_training_folder(tiny_model)
    loaded, info = LanICModel.from_pretrained(tiny_lanic_model, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and not info["mismatched_keys"]
    a, b = built.state_dict(), loaded.state_dict()
    # the export adds the typicality reference (fitted on the training split) to the trained weights
    assert set(b) - set(a) == {"typicality_mean", "typicality_precision"} and set(a) <= set(b) and len(a) >= 9
    assert loaded.config.typicality and loaded.typicality().threshold > 0
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert [p.to_dict() for p in loaded.patterns] == json.loads(
        json.dumps([p.to_dict() for p in built.patterns])
    )
    assert isinstance(AutoModel.from_pretrained(tiny_lanic_model), LanICModel)
    assert isinstance(AutoConfig.from_pretrained(tiny_lanic_model), LanICConfig)
    assert (tiny_lanic_model / "backbone" / "open_clip_config.json").is_file()  # the phantom CLIP is bundled
    assert sorted(os.listdir(tiny_lanic_model))[:9] == [
        "README.md",
        "backbone",
        "concepts.json",
        "concepts.safetensors",
        "config.json",
        "examples",
        "lanic_remote.py",
        "model.safetensors",
        "patterns.json",
    ]
    # the concept directions travel with the model, bit for bit
    assert built.concepts is not None and loaded.concepts.keys == built.concepts.keys
    for name in ("mean", "directions", "readout"):
        assert torch.equal(getattr(loaded.concepts, name), getattr(built.concepts, name)), name
    assert loaded.concepts.support == built.concepts.support


def test_forward_and_explanations_agree_with_the_classifier(tiny_lanic_model, tiny_embedded):
    model = LanICModel.from_pretrained(tiny_lanic_model)
    e = load_embeddings(tiny_embedded / "emb").image.float()[:6]
    with torch.no_grad():
        out = model(embeddings=e)
    assert torch.allclose(out.probabilities, torch.sigmoid(model.classifier(e)))
    assert out.pattern_activations.shape == (6, model.config.n_patterns)
    for b, ex in enumerate(model.explain_embeddings(e)):
        for c, f in enumerate(ex.findings):
            assert f.total == pytest.approx(float(out.logits[b, c]), abs=1e-4)
            acts = {p.pattern: p.activation for p in f.patterns}
            for p, a in acts.items():
                assert a == pytest.approx(float(out.pattern_activations[b, p]), rel=1e-5)
    one = model.explain_embedding(e[0])
    assert one.to_dict() == model.explain_embeddings(e[:1])[0].to_dict()
    with pytest.raises(ValueError, match="exactly one"):
        model()


def test_predict_takes_paths_pil_arrays_and_dicom_and_pixels_match_embeddings(
    tiny_lanic_model, shared_data, tmp_path
):
    import numpy as np
    from PIL import Image

    from lanic_hub.data.images import load_image

    model = LanICModel.from_pretrained(tiny_lanic_model)
    dcm = next((shared_data / "cxr_real" / "dicom").glob("*.dcm"))
    png = next((shared_data / "cxr_real").rglob("*.png"))
    pil = Image.open(png)
    arr = np.asarray(load_image(png).convert("L"))
    preds = model.predict_batch([str(png), pil, arr, dcm])
    assert all(set(p) == set(model.config.findings) for p in preds)
    assert preds[0] == pytest.approx(preds[1], abs=1e-6) and preds[0] == pytest.approx(preds[2], abs=1e-5)
    assert all(0 < v < 1 for p in preds for v in p.values())
    bb = model.backbone
    x = torch.stack([bb.preprocess(load_image(png))])
    with torch.no_grad():
        a = model(pixel_values=x)
        b = model(embeddings=bb.encode_image(x))
    assert torch.equal(a.logits, b.logits) and torch.equal(a.pattern_activations, b.pattern_activations)
    ex = model.explain(dcm)
    assert ex.source == str(dcm) and all(abs(f.total - f.logit) < 1e-4 for f in ex.findings)


def test_non_finite_embeddings_are_refused_naming_the_rows(tiny_lanic_model):
    from lanic_hub.errors import DataError

    model = LanICModel.from_pretrained(tiny_lanic_model)
    e = torch.nn.functional.normalize(torch.randn(5, model.config.d_in), dim=1)
    e[3, 7] = float("nan")
    e[4, 0] = float("inf")
    with pytest.raises(DataError, match=r"rows \[3, 4\]"):
        model.explain_embeddings(e)
    with pytest.raises(DataError, match="NaN or inf"):
        model(embeddings=e)


def test_overflowing_activations_are_refused_naming_the_rows(tiny_lanic_model):
    """Finite inputs whose activations overflow (a damaged weight, float32 range) are named too,
    never turned into an explanation of inf."""
    from lanic_hub.errors import DataError

    model = LanICModel.from_pretrained(tiny_lanic_model)
    e = torch.nn.functional.normalize(torch.randn(4, model.config.d_in), dim=1)
    e[2, 0] = 10.0  # finite, but hidden unit 0 of row 2 becomes 1e39 > float32 max
    with torch.no_grad():
        model.classifier.fc1.weight.zero_()
        model.classifier.fc1.weight[0, 0] = 1e38
    with pytest.raises(DataError, match=r"classifier's logits .*rows \[2\]"):
        model(embeddings=e)
    with pytest.raises(DataError, match=r"activations overflowed.*rows \[2\]"):
        model.explain_embeddings(e)
