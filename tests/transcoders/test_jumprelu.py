"""The JumpReLU option: codes from the formula, gradients with the straight-through
pseudo-derivatives (written independently here), the L0 penalty's effect, and the whole
train -> patterns -> LanICModel round trip with explanations that add up."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from lanic_hub.errors import ConfigError
from lanic_hub.transcoders import TrainConfig, TranscoderConfig, TranscoderEnsemble, fidelity, train_ensemble
from lanic_hub.transcoders.train import ensemble_grads, ensemble_loss

from .reference import dense_loss

JR = TranscoderConfig(
    d_in=16, d_out=12, n_members=3, n_latents=32, k=6, levels=(8, 32), activation="jumprelu", seed=2
)


def _random_jumprelu(cfg: TranscoderConfig = JR, dtype=torch.float64) -> TranscoderEnsemble:
    m = TranscoderEnsemble(cfg).to(dtype)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.5)
        m.log_threshold.copy_(torch.empty(m.log_threshold.shape, dtype=dtype).uniform_(0.3, 1.6, generator=g))
    return m


def _reference_codes(m: TranscoderEnsemble, e: torch.Tensor) -> torch.Tensor:
    """Dense z member by member: pre * 1[pre > θ], then the k largest margins pre - θ kept."""
    cfg = m.cfg
    T, L = cfg.n_members, cfg.n_latents
    W = m.W_enc.view(cfg.d_in, T, L)
    zs = []
    for t in range(T):
        pre = (e - m.b_pre[t]) @ W[:, t, :] + m.b_enc.view(T, L)[t]
        theta = m.log_threshold[t].exp()
        z = torch.where(pre > theta, pre, torch.zeros_like(pre))
        for b in range(len(e)):  # the cap: keep the k active latents furthest above threshold
            active = (pre[b] > theta).nonzero().flatten()
            if len(active) > cfg.k:
                margin = (pre[b] - theta)[active]
                drop = active[margin.argsort(descending=True)[cfg.k :]]
                z[b, drop] = 0
        zs.append(z)
    return torch.stack(zs, 1)


def test_jumprelu_codes_equal_the_formula_with_the_cap():
    m = _random_jumprelu()
    e = torch.randn(30, 16, dtype=torch.float64)
    with torch.no_grad():
        z = _reference_codes(m, e)
        n_above = (m.preacts(e, relu=False) > m.threshold).sum(-1)
        assert (n_above > JR.k).any() and (n_above < JR.k).any()  # both regimes are exercised
        assert torch.allclose(m.dense_codes(e).double(), z, atol=1e-12)
        v, i = m.encode(e)
        assert ((v > 0).sum(-1) == n_above.clamp(max=JR.k)).all()
        out = m(e)  # the autograd forward gives the same codes and reconstructions
        assert torch.allclose(out.recon, m.decode(v, i), atol=1e-12)
        assert torch.allclose(out.recon, torch.einsum("btl,tlh->bth", z, m.W_dec) + m.b_dec, atol=1e-12)
        stats = fidelity(m, e, torch.randn(30, 12, dtype=torch.float64))
    want_capped = (n_above > JR.k).double().mean(0)
    assert stats["cap_bound_fraction"] == pytest.approx(want_capped.tolist())
    assert stats["l0"] == pytest.approx(n_above.clamp(max=JR.k).double().mean(0).tolist())


def test_jumprelu_gradients_equal_an_independent_straight_through_reference():
    """ensemble_loss (sparse encoder backward, gathered thresholds, custom autograd functions)
    against plain autograd through dense pre-activations, with the pseudo-derivatives of
    Rajamanoharan et al. written as zero-valued surrogate terms (float64), AuxK included."""
    cfg = replace(JR, aux_coef=0.5, l0_coef=0.3, jump_bandwidth=0.8)
    m = _random_jumprelu(cfg)
    e = torch.randn(40, 16, dtype=torch.float64)
    h = torch.randn(40, 12, dtype=torch.float64)
    dead = torch.rand(3, 32, generator=torch.Generator().manual_seed(0)) > 0.5
    var = (h - h.mean(0)).pow(2).sum(1).mean() * 40
    params = [m.W_enc, m.b_pre, m.b_enc, m.W_dec, m.b_dec, m.log_threshold]
    loss, _, _ = ensemble_loss(m, e, h, var, dead)
    got = torch.autograd.grad(loss, params)

    pre = m.preacts(e, relu=False)  # dense, with autograd
    theta = m.log_threshold.exp()
    eps_all = (cfg.jump_bandwidth * theta).detach()  # the kernel's width is relative to θ
    with torch.no_grad():
        _, idx = (pre - theta).topk(cfg.k, dim=-1)
    x = pre.gather(-1, idx)
    th = theta.expand(len(e), -1, -1).gather(-1, idx)
    eps = eps_all.expand(len(e), -1, -1).gather(-1, idx)
    gate = (x > th).detach().double()
    kern = ((x - th).abs() < eps / 2).detach().double()
    c = (-(th / eps) * kern).detach()  # d z / d θ
    z = x * gate + (c * th - (c * th).detach())
    full_gate = (pre > theta).detach().double()
    c0 = (-((pre - theta).abs() < eps_all / 2).double() / eps_all).detach()  # d H / d θ
    l0 = (full_gate + (c0 * theta - (c0 * theta).detach())).sum(dim=(0, 2)) / len(e)
    ref = dense_loss(m, z, idx, torch.relu(pre), h, var, dead, cfg.aux_coef) + cfg.l0_coef * l0.sum()
    want = torch.autograd.grad(ref, params)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    assert float(want[-1].abs().sum()) > 0  # the thresholds do get a gradient
    for name, a, b in zip(
        ("W_enc", "b_pre", "b_enc", "W_dec", "b_dec", "log_threshold"), got, want, strict=True
    ):
        assert torch.allclose(a, b, atol=1e-12, rtol=1e-10), name

    for chunk in (1, 2):  # member chunks write the same gradient, thresholds included
        ensemble_grads(m, e, h, var, dead, chunk)
        for name, p, w in zip(
            ("W_enc", "b_pre", "b_enc", "W_dec", "b_dec", "log_threshold"), params, want, strict=True
        ):
            assert torch.allclose(p.grad, w, atol=1e-12, rtol=1e-10), (chunk, name)


def _pairs(n: int = 512):
    torch.manual_seed(0)
    from lanic_hub.classifier import DiagnosticClassifier

    clf = DiagnosticClassifier(16, 12, 5)
    e = torch.nn.functional.normalize(torch.randn(n, 16), dim=1)
    return e, clf.hidden(e).detach()


def test_the_l0_penalty_raises_thresholds_and_lowers_l0():
    e, h = _pairs()
    cfg = TranscoderConfig(d_in=16, d_out=12, n_latents=64, k=8, n_members=2, activation="jumprelu", seed=0)
    tc = TrainConfig(epochs=40, batch_size=128, lr=1e-2)
    runs = {
        coef: train_ensemble(e, h, replace(cfg, l0_coef=coef), tc, progress=False)[0] for coef in (0.0, 0.3)
    }
    stats = {coef: fidelity(m, e, h) for coef, m in runs.items()}
    free, sparse = stats[0.0], stats[0.3]
    assert max(sparse["l0"]) < min(free["l0"]) - 1  # fewer active latents per sample
    assert max(sparse["cap_bound_fraction"]) < min(free["cap_bound_fraction"])
    assert runs[0.3].threshold.mean() > runs[0.0].threshold.mean()
    # and it still reconstructs: better than the data mean by a wide margin
    assert max(sparse["fvu"]["64"]) < 0.5


def test_jumprelu_checkpoint_resume_equals_uninterrupted(tmp_path):
    e, h = _pairs(200)
    cfg = TranscoderConfig(d_in=16, d_out=12, n_latents=32, k=4, n_members=2, activation="jumprelu")
    tc = TrainConfig(epochs=4, batch_size=64)
    full, _ = train_ensemble(e, h, cfg, tc, progress=False)
    train_ensemble(e, h, cfg, tc, checkpoint_dir=tmp_path, progress=False, stop_after_epochs=2)
    resumed, _ = train_ensemble(e, h, cfg, tc, checkpoint_dir=tmp_path, progress=False)
    assert set(full.state_dict()) == set(resumed.state_dict()) and "log_threshold" in full.state_dict()
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_bad_jumprelu_configs_are_refused():
    with pytest.raises(ConfigError, match="activation must be one of"):
        replace(JR, activation="relu")
    for bad in ({"jump_bandwidth": 0.0}, {"jump_lr_scale": -1.0}, {"l0_coef": -0.1}):
        with pytest.raises(ConfigError, match="JumpReLU needs"):
            replace(JR, **bad)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 100.0])
def test_thresholds_start_at_the_data_quantile_whatever_the_scale(scale):
    """After init_from_data every latent fires on about k/L of the rows, so training starts with
    about k active latents per sample at any data scale."""
    e, h = _pairs(400)
    e = e * scale
    cfg = replace(
        JR, n_members=5, n_latents=1024, k=64, levels=None
    )  # init chunks of 2048 // 1024 = 2 members
    m = TranscoderEnsemble(cfg)
    m.init_from_data(e, h)
    with torch.no_grad():
        freq = (m.preacts(e, relu=False) > m.threshold).double().mean(0)  # (T, L)
    assert freq.mean(1).tolist() == pytest.approx([cfg.k / cfg.n_latents] * cfg.n_members, rel=0.05)
    assert (freq > 0).all()  # no latent starts dead


def test_jumprelu_model_trains_saves_loads_and_explains_exactly(tiny_embedded, tmp_path):
    """`lanic-hub train --activation jumprelu`, the pattern bank, save_pretrained/from_pretrained:
    the thresholds survive the round trip bit for bit and every explanation adds up to the logit."""
    from lanic_hub import LanICModel
    from lanic_hub.backbone.embed import load_embeddings
    from lanic_hub.cli import main
    from lanic_hub.patterns import BankConfig
    from lanic_hub.stages import build_patterns

    out = tmp_path / "jr"
    assert main(["train", "--embeddings", str(tiny_embedded / "emb"), "--out", str(out), "--members", "3",
                 "--activation", "jumprelu"]) == 0  # fmt: skip
    rep = json.loads((out / "fidelity.json").read_text())
    assert rep["ensemble"]["config"]["activation"] == "jumprelu"
    assert 0 < rep["fidelity"]["l0_mean"] <= 8 and "cap_bound_fraction" in rep["fidelity"]["per_member_test"]
    build_patterns(
        out,
        tiny_embedded / "emb",
        config=BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3),
        progress=False,
    )
    built = LanICModel.from_training_folder(out)
    built.save_pretrained(tmp_path / "folder")
    loaded = LanICModel.from_pretrained(tmp_path / "folder")
    assert loaded.ensemble.cfg.activation == "jumprelu"
    assert torch.equal(loaded.ensemble.log_threshold, built.ensemble.log_threshold)
    e = load_embeddings(tiny_embedded / "emb").image.float()[:5]
    with torch.no_grad():
        logits = loaded(embeddings=e).logits
    for b, ex in enumerate(loaded.explain_embeddings(e)):
        for c, f in enumerate(ex.findings):
            assert f.total == pytest.approx(float(logits[b, c]), abs=1e-4)
