"""Baselines: linear probe = scikit-learn's fit, SAE codes are TopK-sparse and the probe is L1-sparse,
zero-shot = embedding . (positive - negative prompt direction)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from lanic_hub.backbone import load_backbone
from lanic_hub.backbone.calibration import zero_shot_direction
from lanic_hub.baselines import LinearProbe, SAESparseProbe, ZeroShot
from lanic_hub.classifier import macro_auroc


def _data(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = ((x @ rng.normal(size=(d, 5))) > 0.3).astype(np.float32)
    return x, y, np.ones_like(y, dtype=bool)


def test_linear_probe_matches_sklearn():
    x, y, m = _data()
    lp = LinearProbe().fit(x[:400], y[:400], m[:400])
    ref = LogisticRegression(max_iter=2000).fit(x[:400], y[:400, 2]).decision_function(x[400:])
    assert np.allclose(lp.logits(x[400:])[:, 2], ref)
    assert macro_auroc(lp.logits(x[400:]), y[400:], m[400:])[0] > 0.9


def test_sae_sparse_probe_is_sparse_and_predicts():
    x, y, m = _data()
    b = SAESparseProbe(n_latents=64, k=4, C=1.0, epochs=20).fit(x[:400], y[:400], m[:400])
    z = b.codes(x[400:])
    assert ((z > 0).sum(1) <= 4).all()
    assert min(b.nonzero_coefficients()) < 64  # L1 leaves latents out
    assert macro_auroc(b.logits(x[400:]), y[400:], m[400:])[0] > 0.6


def test_zero_shot_is_the_prompt_direction(tiny_phantom_clip):
    bb = load_backbone(f"local-dir:{tiny_phantom_clip[2]}")
    zs = ZeroShot.from_backbone(bb)
    e = torch.nn.functional.normalize(torch.randn(7, 256), dim=1).numpy()
    assert np.allclose(zs.logits(e)[:, 4], e @ zero_shot_direction(bb, "Pleural Effusion"), atol=1e-6)
