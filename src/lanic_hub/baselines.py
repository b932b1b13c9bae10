"""Baselines on the same embeddings, for the leaderboard: a linear probe, CheXzero-style zero-shot
prompts, and a standard SAE on the embeddings with a sparse (L1) linear probe on its latents.

Each baseline exposes ``logits(x) -> (N, len(FINDINGS))`` on embeddings ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from .constants import FINDINGS
from .transcoders import TrainConfig, TranscoderConfig, TranscoderEnsemble, train_ensemble


def _fit_per_finding(z: np.ndarray, y: np.ndarray, mask: np.ndarray, **kw) -> list[LogisticRegression]:
    return [
        LogisticRegression(max_iter=2000, **kw).fit(z[mask[:, j]], y[mask[:, j], j])
        for j in range(y.shape[1])
    ]


@dataclass
class LinearProbe:
    """Logistic regression per finding on the embeddings (labelled rows only, U-Ignore)."""

    C: float = 1.0
    models: list[LogisticRegression] = field(default_factory=list)

    def fit(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> LinearProbe:
        self.models = _fit_per_finding(np.asarray(x), y, mask, C=self.C)
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.stack([m.decision_function(np.asarray(x)) for m in self.models], axis=1)


@dataclass
class ZeroShot:
    """Positive minus negative prompt embeddings through the backbone's text tower (no training)."""

    directions: np.ndarray  # (C, d)

    @classmethod
    def from_backbone(cls, bb, findings: tuple[str, ...] = FINDINGS) -> ZeroShot:
        from .backbone.calibration import zero_shot_direction

        return cls(np.stack([zero_shot_direction(bb, f) for f in findings]))

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) @ self.directions.T


@dataclass
class SAESparseProbe:
    """A TopK SAE on the embeddings (one member, reconstructing e itself), then an L1 logistic
    regression per finding on its latents: sparse, and readable latent by latent."""

    n_latents: int = 256
    k: int = 8
    C: float = 1.0
    epochs: int = 30
    seed: int = 0
    sae: TranscoderEnsemble | None = None
    models: list[LogisticRegression] = field(default_factory=list)

    def codes(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        return self.sae.dense_codes(torch.as_tensor(np.asarray(x), dtype=torch.float32))[:, 0].numpy()

    def fit(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> SAESparseProbe:
        xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        cfg = TranscoderConfig(
            d_in=xt.shape[1],
            d_out=xt.shape[1],
            n_latents=self.n_latents,
            k=self.k,
            n_members=1,
            levels=(self.n_latents,),
            seed=self.seed,
        )
        self.sae, _ = train_ensemble(
            xt, xt, cfg, TrainConfig(epochs=self.epochs, batch_size=256), progress=False
        )
        self.models = _fit_per_finding(
            self.codes(xt), y, mask, l1_ratio=1.0, solver="liblinear", C=self.C, random_state=self.seed
        )
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = self.codes(x)
        return np.stack([m.decision_function(z) for m in self.models], axis=1)

    def nonzero_coefficients(self) -> list[int]:
        return [int((m.coef_ != 0).sum()) for m in self.models]
