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
    ens: TranscoderEnsemble, e: torch.Tensor, factors: dict[str, np.ndarray], members_per_chunk: int = 10
) -> dict[str, dict[str, float | int]]:
    """For each factor, the single latent (member, index) whose activation best detects it."""
    T, L = ens.cfg.n_members, ens.cfg.n_latents
    best = {f: {"auroc": -1.0, "member": -1, "latent": -1} for f in factors}
    z = ens.dense_codes(e.float())  # (N, T, L)
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
