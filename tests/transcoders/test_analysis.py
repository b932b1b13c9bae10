"""Vectorised per-latent AUROC against scikit-learn, ties included."""

from __future__ import annotations

import numpy as np
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
