"""The explain path (lanic_hub.explain): pattern-level parts that add up, and how a pattern is shown."""

from __future__ import annotations

import pytest
import torch

from lanic_hub.decomposition import decompose
from lanic_hub.explain import decomposition_by_pattern, explain_embeddings
from lanic_hub.patterns import Pattern
from lanic_hub.patterns.bank import is_named, pattern_label


@pytest.fixture(scope="module")
def model(tiny_lanic_model):
    from lanic_hub.modeling import LanICModel

    return LanICModel.from_pretrained(tiny_lanic_model)


def _e(m, n=5, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, m.config.d_in, generator=g), dim=1)


def test_patterns_and_unbanked_regroup_the_latent_contributions_exactly(model):
    clf, ens, bank = model.classifier, model.ensemble, model.bank
    e = _e(model)
    d = decomposition_by_pattern(clf, ens, bank, e)
    v, i = ens.encode(e)
    h = clf.hidden(e)
    recon = ens.decode(v, i).mean(1)
    lat = decompose(v, i, h, recon, clf.fc2.weight, clf.fc2.bias, ens.b_dec, W_dec=ens.W_dec)
    # grouping latents into patterns moves no mass: patterns + unbanked = all latent contributions
    torch.testing.assert_close(
        d.patterns.sum(1) + d.unbanked, lat.contributions.sum((1, 2)), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(d.bias, lat.bias)
    torch.testing.assert_close(d.error, lat.error, atol=1e-5, rtol=0)
    # a latent outside the bank contributes to 'unbanked' only
    outside = (
        bank.latent_pattern[(i + torch.arange(ens.cfg.n_members).view(1, -1, 1) * ens.cfg.n_latents)] < 0
    )
    want_unbanked = (lat.contributions * outside.unsqueeze(-1)).sum((1, 2))
    torch.testing.assert_close(d.unbanked, want_unbanked, atol=1e-5, rtol=0)


def test_an_explanation_adds_up_and_lists_its_patterns_by_contribution(model):
    ex = explain_embeddings(
        model.classifier, model.ensemble, model.bank, _e(model, 3), findings=model.config.findings
    )
    assert len(ex) == 3
    for x in ex:
        for f in x.findings:
            total = f.bias + sum(p.contribution for p in f.patterns) + f.unbanked + f.error
            assert abs(total - f.logit) < 1e-4
            mags = [abs(p.contribution) for p in f.patterns]
            assert mags == sorted(mags, reverse=True)
            for p in f.patterns:
                assert p.label == pattern_label(model.patterns[p.pattern])


def _p(**over):
    d = {"id": 4, "name": "enlarged heart", "category": "cardiac", "support": 1, "members": [[0, 0]]}
    return Pattern.from_dict({**d, "confidence": 0.31, **over})


def test_a_pattern_is_shown_by_its_name_only_when_it_carries_it():
    assert pattern_label(_p(named=True)) == "enlarged heart" and is_named(_p())
    assert (
        pattern_label(_p(named=False))
        == "unnamed pattern 4 (nearest phrase 'enlarged heart', confidence 0.31)"
    )
    dense = _p(dense=True, named=True)
    assert not is_named(dense)
    assert pattern_label(dense) == "context pattern 4 (on most images; nearest phrase 'enlarged heart')"
