"""The exact logit decomposition (lanic_hub.decomposition) against its formula on random tensors."""

from __future__ import annotations

import pytest
import torch

from lanic_hub.decomposition import decompose, latent_logit_weights

B, T, L, K, H, C = 4, 3, 10, 2, 6, 5


def _random():
    g = torch.Generator().manual_seed(0)
    W_dec = torch.randn(T, L, H, generator=g, dtype=torch.float64)
    b_dec = torch.randn(T, H, generator=g, dtype=torch.float64)
    W2 = torch.randn(C, H, generator=g, dtype=torch.float64)
    b2 = torch.randn(C, generator=g, dtype=torch.float64)
    indices = torch.stack([torch.randperm(L, generator=g)[:K] for _ in range(B * T)]).view(B, T, K)
    values = torch.rand(B, T, K, generator=g, dtype=torch.float64)
    h = torch.randn(B, H, generator=g, dtype=torch.float64)
    return W_dec, b_dec, W2, b2, indices, values, h


def _reconstruction(W_dec, b_dec, indices, values):
    """mean over members of ĥ_t = Σ_k v_tk W_dec_t[i_tk] + b_dec_t, written out."""
    recon = torch.zeros(B, T, H, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            recon[b, t] = b_dec[t] + sum(values[b, t, k] * W_dec[t, indices[b, t, k]] for k in range(K))
    return recon.mean(1)


def test_parts_add_up_to_the_classifier_and_the_ensemble_path():
    W_dec, b_dec, W2, b2, indices, values, h = _random()
    recon = _reconstruction(W_dec, b_dec, indices, values)
    d = decompose(values, indices, h, recon, W2, b2, b_dec, W_dec=W_dec)
    assert d.contributions.shape == (B, T, K, C) and d.bias.shape == d.error.shape == (B, C)
    torch.testing.assert_close(d.logits, h @ W2.T + b2)  # bias + contributions + error = logit
    torch.testing.assert_close(d.ensemble_logits, recon @ W2.T + b2)  # the ensemble path alone
    torch.testing.assert_close(d.error, (h - recon) @ W2.T)


def test_one_contribution_is_its_activation_over_t_times_its_logit_weight():
    W_dec, b_dec, W2, b2, indices, values, h = _random()
    recon = _reconstruction(W_dec, b_dec, indices, values)
    U = latent_logit_weights(W_dec, W2)
    torch.testing.assert_close(U[1, 7], W2 @ W_dec[1, 7])  # (C,): W2_c · W_dec_t[:, i]
    d = decompose(values, indices, h, recon, W2, b2, b_dec, U=U)
    b, t, k = 2, 1, 0
    want = values[b, t, k] / T * (W2 @ W_dec[t, indices[b, t, k]])
    torch.testing.assert_close(d.contributions[b, t, k], want)
    # a cached U gives exactly what W_dec gives
    d2 = decompose(values, indices, h, recon, W2, b2, b_dec, W_dec=W_dec)
    assert torch.equal(d.contributions, d2.contributions)


def test_it_needs_the_decoder_or_its_logit_weights():
    W_dec, b_dec, W2, b2, indices, values, h = _random()
    with pytest.raises(ValueError, match="give U or W_dec"):
        decompose(values, indices, h, h, W2, b2, b_dec)
