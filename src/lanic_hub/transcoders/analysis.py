"""Which latents detect which ground-truth factors: vectorised AUROC of every latent at once."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from .ensemble import TranscoderEnsemble


def auroc_columns(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of each column of ``scores`` (N, M) against binary ``y`` (N,), ties averaged
    (Mann-Whitney U), as ``sklearn.metrics.roc_auc_score`` computes it column by column."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(scores.shape[1], np.nan)
    ranks = rankdata(scores, axis=0)
    return (ranks[y].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auroc_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(M, K) AUROC of every column of ``scores`` (N, M) against every binary column of ``labels``
    (N, K): the columns are ranked once and every label's rank sum is one matrix product.
    A label with a single class gives a NaN column."""
    y = np.asarray(labels, dtype=np.float64)
    n_pos = y.sum(0)
    n_neg = len(y) - n_pos
    ranks = rankdata(scores, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ranks.T @ y - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    out[:, (n_pos == 0) | (n_neg == 0)] = np.nan
    return out


@torch.no_grad()
def best_latents(
    ens: TranscoderEnsemble,
    e: torch.Tensor,
    factors: dict[str, np.ndarray],
    members_per_chunk: int | None = None,
    batch: int = 4096,
) -> dict[str, dict[str, float | int]]:
    """For each factor, the single latent (member, index) whose activation best detects it.

    Linear in N with memory bounded by a member chunk: each chunk's codes are gathered from the
    sparse encoding (no (N, T, L) tensor), ranked once, and scored against every factor with one
    matrix product (:func:`auroc_matrix`). Ties go to the lowest (member, latent).
    """
    T, L = ens.cfg.n_members, ens.cfg.n_latents
    names = list(factors)
    best = {f: {"auroc": -1.0, "member": -1, "latent": -1} for f in names}
    if not names or len(e) == 0:
        return best
    Y = np.stack([np.asarray(factors[f], dtype=bool) for f in names], 1)
    chunk = members_per_chunk or max(1, 8192 // L)  # N x 8192 floats per chunk
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        part = ens if (t0, t1) == (0, T) else ens.member_chunk(t0, t1)
        block = np.zeros((len(e), (t1 - t0) * L), dtype=np.float32)
        for a in range(0, len(e), batch):
            v, i = part.encode(e[a : a + batch].float())
            flat = (i + torch.arange(t1 - t0).view(1, -1, 1) * L).reshape(len(v), -1)
            np.put_along_axis(block[a : a + len(v)], flat.numpy(), v.reshape(len(v), -1).numpy(), axis=1)
        au = auroc_matrix(block, Y)  # (chunk * L, F)
        for j, f in enumerate(names):
            col = au[:, j]
            if np.all(np.isnan(col)):
                continue
            k = int(np.nanargmax(col))
            if col[k] > best[f]["auroc"]:
                best[f] = {"auroc": float(col[k]), "member": t0 + k // L, "latent": k % L}
    return best
