"""The explain path computes each thing once: the logit weights and the bank are cached on the
model, and a change of the weights drops them. Also the typed records of issue 20."""

from __future__ import annotations

import torch

from lanic_hub.decomposition import latent_logit_weights
from lanic_hub.explain import PatternDecomposition, decomposition_by_pattern
from lanic_hub.transcoders import TranscoderConfig
from lanic_hub.transcoders.ensemble import flat_latents


def test_logit_weights_are_cached_and_follow_the_weights(tiny_lanic_model):
    from lanic_hub.modeling import LanICModel

    m = LanICModel.from_pretrained(tiny_lanic_model)
    U = m.logit_weights
    assert m.logit_weights is U and m.bank is m.bank  # built once
    assert torch.equal(U, latent_logit_weights(m.ensemble.W_dec, m.classifier.fc2.weight))
    e = torch.nn.functional.normalize(
        torch.randn(3, m.config.d_in, generator=torch.Generator().manual_seed(0)), dim=1
    )
    before = m.explain_embeddings(e)
    with torch.no_grad():
        m.classifier.fc2.weight.mul_(2.0)  # in place: the version counter moves
    U2 = m.logit_weights
    assert U2 is not U and torch.allclose(U2, 2 * U)
    after = m.explain_embeddings(e)
    for a, b in zip(before, after, strict=True):
        for fa, fb in zip(a.findings, b.findings, strict=True):
            # the contributions doubled with W2 (the bias holds b2, so only the pattern parts are compared)
            assert (
                abs(sum(p.contribution for p in fb.patterns) - 2 * sum(p.contribution for p in fa.patterns))
                < 1e-3
            )
            total = fb.bias + sum(p.contribution for p in fb.patterns) + fb.unbanked + fb.error
            assert abs(total - fb.logit) < 1e-3  # still adds up to the new logit


def test_pattern_decomposition_fields_add_up(tiny_lanic_model):
    from lanic_hub.modeling import LanICModel

    m = LanICModel.from_pretrained(tiny_lanic_model)
    e = torch.nn.functional.normalize(
        torch.randn(4, m.config.d_in, generator=torch.Generator().manual_seed(1)), dim=1
    )
    d = decomposition_by_pattern(m.classifier, m.ensemble, m.bank, e, U=m.logit_weights)
    assert isinstance(d, PatternDecomposition)
    assert torch.equal(d.logits, m.classifier(e))
    assert torch.allclose(d.ensemble_logits + d.error, d.logits, atol=1e-4)
    assert d.patterns.shape == (4, len(m.bank), len(m.config.findings))


def test_flat_latents_and_config_round_trip():
    idx = torch.tensor([[[0, 3], [1, 2], [3, 0]]])  # (B=1, T=3, k=2), L=4
    assert flat_latents(idx, 4).tolist() == [[[0, 3], [5, 6], [11, 8]]]
    cfg = TranscoderConfig(8, 4, n_latents=16, k=2, n_members=3, levels=(4, 16), level_weights=(1.0, 0.5))
    assert TranscoderConfig.from_dict(cfg.to_dict()) == cfg
    assert TranscoderConfig.from_dict(TranscoderConfig(8, 4).to_dict()).resolved_levels == (8, 32, 256)


def test_bool_flags_parse_both_ways():
    """Generated flags: a bool field is --flag / --no-flag (the old parser read 'False' as True)."""
    from lanic_hub.cli import build_parser
    from lanic_hub.patterns import BankConfig
    from lanic_hub.stages import ModelOptions
    from lanic_hub.utils.config_docs import dataclass_from_args

    p = build_parser()
    base = ["patterns", "--model", "m", "--embeddings", "e"]
    assert dataclass_from_args(BankConfig, p.parse_args(base)).name_unlabelled is False
    assert dataclass_from_args(BankConfig, p.parse_args([*base, "--name-unlabelled"])).name_unlabelled is True
    assert (
        dataclass_from_args(BankConfig, p.parse_args([*base, "--no-name-unlabelled"])).name_unlabelled
        is False
    )
    assert dataclass_from_args(BankConfig, p.parse_args([*base, "--min-support", "2"])).min_support == 2
    exp = ["export", "--model", "m", "--out", "o"]
    assert dataclass_from_args(ModelOptions, p.parse_args(exp)) == ModelOptions(bundle_backbone=False)
    o = dataclass_from_args(ModelOptions, p.parse_args([*exp, "--no-thumbnails", "--bundle-backbone"]))
    assert o.thumbnails is False and o.bundle_backbone is True
    assert p.parse_args(["train", "--embeddings", "e", "--out", "o", "--image-only"]).multimodal is False


def test_the_folded_encoder_bias_is_cached_on_the_model_and_follows_the_weights(tiny_lanic_model):
    from lanic_hub.modeling import LanICModel

    m = LanICModel.from_pretrained(tiny_lanic_model)
    ens, T, L, d = (
        m.ensemble,
        m.config.transcoder_config().n_members,
        m.config.transcoder_config().n_latents,
        m.config.d_in,
    )

    def formula():  # b_enc_t - W_enc_t b_pre_t, member by member
        w = ens.W_enc.detach().view(d, T, L)
        return torch.stack(
            [ens.b_enc.detach().view(T, L)[t] - ens.b_pre.detach()[t] @ w[:, t] for t in range(T)]
        )

    c = m.encoder_bias
    assert m.encoder_bias is c  # cached
    torch.testing.assert_close(c, formula(), atol=1e-5, rtol=1e-5)
    e = torch.nn.functional.normalize(torch.randn(4, d, generator=torch.Generator().manual_seed(3)), dim=1)
    with torch.no_grad():
        # the codes with the cached bias are the codes the ensemble computes itself
        assert all(torch.equal(a, b) for a, b in zip(ens.encode(e, bias=c), ens.encode(e), strict=True))
        ens.b_pre.add_(0.5)  # written in place: recomputed
    c2 = m.encoder_bias
    assert c2 is not c
    torch.testing.assert_close(c2, formula(), atol=1e-5, rtol=1e-5)
    ex = m.explain_embeddings(e)
    with torch.no_grad():
        v, i = ens.encode(e)
    # the explanation's patterns are those of the codes of the changed encoder
    fired = set((m.latent_pattern[i + torch.arange(T).view(1, -1, 1) * L][0]).unique().tolist()) - {-1}
    assert {p.pattern for f in ex[0].findings for p in f.patterns} <= fired
