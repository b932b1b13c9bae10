"""Vectorised per-latent AUROC against scikit-learn, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble
from lanic_hub.transcoders.analysis import auroc_columns, best_latents


def test_auroc_columns_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    s = rng.random((200, 30))
    s[s < 0.6] = 0.0  # sparse activations: many ties at zero
    y = rng.random(200) < 0.3
    got = auroc_columns(s, y)
    want = [roc_auc_score(y, s[:, j]) for j in range(30)]
    assert np.allclose(got, want)


def test_best_latent_finds_a_planted_detector():
    cfg = TranscoderConfig(d_in=4, d_out=3, n_latents=8, k=2, n_members=3, levels=(8,))
    ens = TranscoderEnsemble(cfg)
    e = torch.randn(300, 4)
    y = (e[:, 0] > 0.5).numpy()
    with torch.no_grad():  # member 2, latent 5 reads e[:, 0] strongly; everything else is off
        ens.W_enc.zero_()
        ens.b_pre.zero_()
        ens.b_enc.fill_(-1.0)
        ens.W_enc[0, 2 * 8 + 5] = 10.0
        ens.b_enc[2 * 8 + 5] = 0.0
    best = best_latents(ens, e, {"planted": y})["planted"]
    assert (best["member"], best["latent"]) == (2, 5) and best["auroc"] > 0.99


def _per_factor_reference(ens, e, factors, members_per_chunk=10):
    """The former implementation: dense (N, T, L) codes, ranked again for every factor."""
    T, L = ens.cfg.n_members, ens.cfg.n_latents
    best = {f: {"auroc": -1.0, "member": -1, "latent": -1} for f in factors}
    z = ens.dense_codes(e.float())
    for t0 in range(0, T, members_per_chunk):
        block = z[:, t0 : t0 + members_per_chunk].reshape(len(e), -1).numpy()
        for f, y in factors.items():
            a = auroc_columns(block, y)
            if np.all(np.isnan(a)):
                continue
            j = int(np.nanargmax(a))
            if a[j] > best[f]["auroc"]:
                best[f] = {"auroc": float(a[j]), "member": t0 + j // L, "latent": j % L}
    return best


def test_one_ranking_equals_the_per_factor_analysis():
    """Ranking each member chunk once and scoring all factors by one product gives exactly the
    per-factor rankings' answer, at chunk sizes that do and do not divide T."""
    cfg = TranscoderConfig(d_in=12, d_out=6, n_latents=16, k=3, n_members=7, levels=(16,), seed=3)
    ens = TranscoderEnsemble(cfg)
    g = torch.Generator().manual_seed(0)
    e = torch.randn(400, 12, generator=g)
    factors = {f"f{j}": (e[:, j] + 0.5 * torch.randn(400, generator=g) > 0.3).numpy() for j in range(6)}
    factors["none"] = np.zeros(400, dtype=bool)  # a single class: no AUROC
    want = _per_factor_reference(ens, e, factors)
    for chunk in (None, 1, 3, 7):
        got = best_latents(ens, e, factors, members_per_chunk=chunk, batch=97)
        assert got.keys() == want.keys()
        for f in factors:
            assert (got[f]["member"], got[f]["latent"]) == (want[f]["member"], want[f]["latent"]), (f, chunk)
            assert got[f]["auroc"] == pytest.approx(want[f]["auroc"], abs=1e-12)
