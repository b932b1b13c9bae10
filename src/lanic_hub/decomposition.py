"""The exact decomposition of a finding's logit (pure functions on tensors).

For finding c, with ``ĥ = mean_t ĥ_t``::

    logit_c = b2_c + W2_c · mean_t b_dec_t                     (bias)
            + Σ_t Σ_i (z_t,i / T) · (W2_c · W_dec_t[:, i])     (latent contributions)
            + W2_c · (h - ĥ)                                   (error: what the ensemble misses)

The first two lines are the *ensemble path*'s logit; adding the error gives the classifier's own
logit. Both identities hold to float tolerance (tests check them on random and trained models).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Decomposition(NamedTuple):
    """Per-sample parts of every finding's logit."""

    bias: torch.Tensor
    """(B, C) b2 + W2 · mean_t b_dec_t."""
    contributions: torch.Tensor
    """(B, T, k, C) contribution of each selected latent (indices in ``indices``)."""
    indices: torch.Tensor
    """(B, T, k) latent index of each contribution."""
    error: torch.Tensor
    """(B, C) W2 · (h - mean_t ĥ_t)."""

    @property
    def ensemble_logits(self) -> torch.Tensor:
        return self.bias + self.contributions.sum(dim=(1, 2))

    @property
    def logits(self) -> torch.Tensor:
        """The classifier's logits: ensemble path plus the error term."""
        return self.ensemble_logits + self.error


def latent_logit_weights(W_dec: torch.Tensor, W2: torch.Tensor) -> torch.Tensor:
    """(T, L, C): ``W2_c · W_dec_t[:, i]``, how much one unit of latent (t, i) moves logit c."""
    return torch.einsum("tlh,ch->tlc", W_dec, W2)


def latent_contributions(values: torch.Tensor, indices: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """(B, T, k, C) ``(z_t,i / T) · U[t, i, c]`` of the codes (values, indices) (B, T, k): each
    selected latent's contribution to each logit."""
    T = indices.shape[1]
    t_idx = torch.arange(T, device=indices.device).view(1, T, 1).expand_as(indices)
    return (values / T).unsqueeze(-1) * U[t_idx, indices]


def decompose(
    values: torch.Tensor,
    indices: torch.Tensor,
    h: torch.Tensor,
    recon_mean: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    b_dec: torch.Tensor,
    U: torch.Tensor | None = None,
    W_dec: torch.Tensor | None = None,
) -> Decomposition:
    """Split the logits of a batch exactly. ``U`` (from :func:`latent_logit_weights`) may be cached."""
    if U is None:
        if W_dec is None:
            raise ValueError("give U or W_dec")
        U = latent_logit_weights(W_dec, W2)
    contrib = latent_contributions(values, indices, U)  # (B, T, k, C)
    bias = (b2 + W2 @ b_dec.mean(0)).expand(h.shape[0], -1)
    error = (h - recon_mean) @ W2.T
    return Decomposition(bias, contrib, indices, error)
