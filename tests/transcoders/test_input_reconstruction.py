"""Transcoders that also reconstruct their input (candidate (b) of the concept split): the joint
target's FVU is the stated mix of FVU_h and FVU_e, the h half of a trained ensemble decodes
exactly what the whole did, and a model trained this way saves, reloads and explains exactly."""

from __future__ import annotations

import json

import pytest
import torch

from lanic_hub.decomposition import decompose
from lanic_hub.errors import ConfigError
from lanic_hub.trained import load_trained
from lanic_hub.training import train_from_embeddings
from lanic_hub.transcoders import TrainConfig, TranscoderConfig, TranscoderEnsemble, train_ensemble
from lanic_hub.transcoders.fidelity import hidden_part, with_input_target


def _fvu(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())


@pytest.mark.parametrize("weight", [0.25, 1.0, 4.0])
def test_the_joint_fvu_is_the_weighted_mix_of_the_two_fvus(weight):
    g = torch.Generator().manual_seed(0)
    e, h = torch.randn(300, 6, generator=g), 3.0 * torch.randn(300, 4, generator=g) + 1.0
    target, s = with_input_target(e, h, weight)
    assert target.shape == (300, 10) and torch.equal(target[:, :4], h)
    assert torch.allclose(target[:, 4:], s * e)
    pe, ph = e + 0.3 * torch.randn(300, 6, generator=g), h + 0.5 * torch.randn(300, 4, generator=g)
    joint = _fvu(torch.cat([ph, s * pe], 1), target)
    assert joint == pytest.approx((_fvu(ph, h) + weight * _fvu(pe, e)) / (1 + weight), rel=1e-5)


def test_bad_weights_and_widths_are_refused():
    e, h = torch.randn(10, 3), torch.randn(10, 2)
    with pytest.raises(ConfigError, match="> 0"):
        with_input_target(e, h, 0.0)
    ens = TranscoderEnsemble(TranscoderConfig(d_in=3, d_out=5, n_latents=8, k=2, n_members=2))
    with pytest.raises(ConfigError, match="cannot keep 6"):
        hidden_part(ens, 6)


def test_the_hidden_part_keeps_the_codes_and_the_first_outputs():
    torch.manual_seed(0)
    e, h = torch.randn(256, 8), torch.randn(256, 5)
    target, _ = with_input_target(e, h, 1.0)
    cfg = TranscoderConfig(d_in=8, d_out=13, n_latents=16, k=3, n_members=3)
    ens, _ = train_ensemble(e, target, cfg, TrainConfig(steps=20, batch_size=64), progress=False)
    part = hidden_part(ens, 5)
    assert part.cfg.d_out == 5 and not part.training
    with torch.no_grad():
        v, i = ens.encode(e)
        v2, i2 = part.encode(e)
        assert torch.equal(v, v2) and torch.equal(i, i2)
        assert torch.allclose(part.decode(v, i), ens.decode(v, i)[..., :5], atol=1e-6)


def test_a_model_trained_to_reconstruct_its_input_explains_exactly(tiny_embedded, tmp_path):
    out = tmp_path / "m"
    rep = train_from_embeddings(
        tiny_embedded / "emb", out, n_members=3, steps=30, input_weight=0.5, progress=False
    )
    ir = rep.ensemble.input_reconstruction
    assert ir["weight"] == 0.5 and ir["scale"] > 0 and 0.0 < ir["fvu_e_test"] < 1.5
    saved = json.loads((out / "fidelity.json").read_text())["ensemble"]["input_reconstruction"]
    assert saved == pytest.approx(ir)
    clf, ens = load_trained(out)
    assert ens.cfg.d_out == clf.fc1.out_features  # only the h half is saved
    from lanic_hub.backbone.embed import load_embeddings

    x = load_embeddings(tiny_embedded / "emb").image.float()
    with torch.no_grad():
        h = clf.hidden(x)
        v, i = ens.encode(x)
        d = decompose(
            v, i, h, ens.decode(v, i).mean(1), clf.fc2.weight, clf.fc2.bias, ens.b_dec, W_dec=ens.W_dec
        )
    assert torch.allclose(d.logits, clf(x), atol=1e-4)
    # h alone by default: the report says so
    plain = train_from_embeddings(tiny_embedded / "emb", tmp_path / "p", n_members=2, steps=5, progress=False)
    assert plain.ensemble.input_reconstruction == {"weight": 0.0}
    with pytest.raises(ConfigError, match="input_weight"):
        train_from_embeddings(
            tiny_embedded / "emb", tmp_path / "bad", n_members=2, steps=5, input_weight=-1.0, progress=False
        )
