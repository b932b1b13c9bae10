"""The sub-ensemble table (issue 35, part 4) on the tiny model: its full-size row is the model
itself, smaller rows are banks of their own, and the halves' agreement is the share defined."""

from __future__ import annotations

import json

import pytest
import torch

from lanic_hub.errors import ConfigError
from lanic_hub.evaluation.sub_ensembles import compare_sub_ensembles, found_again
from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble
from lanic_hub.transcoders.ensemble import first_members, member_range


def test_found_again_is_the_share_within_the_cosine():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    b = torch.tensor([[1.0, 0.1]])  # cos 0.995 with a[0], 0.0995 with a[1], -0.995 with a[2]
    assert found_again(a, b, 0.9) == pytest.approx(1 / 3)
    assert found_again(a, b, 0.05) == pytest.approx(2 / 3)
    assert found_again(b, a, 0.9) == 1.0
    assert found_again(a[:0], b, 0.9) is None and found_again(a, b[:0], 0.9) == 0.0


def test_member_range_copies_those_members():
    ens = TranscoderEnsemble(TranscoderConfig(d_in=6, d_out=4, n_latents=8, k=2, n_members=5, seed=3))
    part = member_range(ens, 1, 4)
    assert part.cfg.n_members == 3 and part.cfg.first_member == 1
    assert torch.equal(part.W_enc, ens.W_enc[:, 8:32]) and torch.equal(part.W_dec, ens.W_dec[1:4])
    assert torch.equal(part.b_pre, ens.b_pre[1:4]) and torch.equal(part.b_enc, ens.b_enc[8:32])
    e = torch.randn(7, 6)
    v, i = part.encode(e)
    v_all, i_all = ens.encode(e)
    assert torch.equal(i, i_all[:, 1:4]) and torch.allclose(v, v_all[:, 1:4], atol=1e-6)
    assert torch.equal(first_members(ens, 2).W_dec, ens.W_dec[:2])
    with pytest.raises(ConfigError, match=r"\[3, 6\)"):
        member_range(ens, 3, 6)


def test_sub_ensembles_of_the_tiny_model(tiny_lanic_model, tiny_model, tmp_path):
    from lanic_hub import LanICModel
    from lanic_hub.evaluation.runner import evaluate_lanic
    from lanic_hub.evaluation.suites import load_suite

    emb = tiny_model.parent / "emb"
    spec = json.loads((emb / "manifest.json").read_text())["data_spec"]
    doc = compare_sub_ensembles(
        tiny_lanic_model, spec, emb, tmp_path, members=(1, 4, 8, 50), suite="phantom", progress=False
    )
    rows = {r["members"]: r for r in doc["rows"]}
    assert sorted(rows) == [1, 4, 8]  # 50 is more than the model has: its 8
    # the support stays the same share of the members: the model's 2 of 8
    assert [rows[n]["min_support"] for n in (1, 4, 8)] == [1, 1, 2]
    # all members with the model's own settings: the model's own bank and ensemble path
    model = LanICModel.from_pretrained(tiny_lanic_model)
    assert rows[8]["patterns"] == len(model.bank) == rows[8]["bank"]["selected"]
    d = load_suite("phantom", model, tmp_path, spec=spec, embeddings=emb, progress=False)
    own = evaluate_lanic(model, d, n_boot=0)
    assert rows[8]["auroc_ensemble_path"] == pytest.approx(own["accuracy"]["ensemble_path"]["auroc"]["macro"])
    assert rows[1]["found_again_by_other_half"] is None
    for n in (4, 8):
        assert 0.0 <= rows[n]["found_again_by_other_half"] <= 1.0 and len(rows[n]["half_patterns"]) == 2
        assert rows[n]["bank"]["latents"] == n * model.ensemble.cfg.n_latents
    table = (tmp_path / "sub_ensembles.md").read_text()
    assert table.count("\n| ") == 4 and "found again" in table  # the header and 3 rows
    assert json.loads((tmp_path / "sub_ensembles.json").read_text())["rows"] == doc["rows"]
