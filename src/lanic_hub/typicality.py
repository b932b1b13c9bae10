"""Is an image like the ones the model was trained on? A Mahalanobis typicality reference.

At export, the training split's image embeddings give a mean and a shrunk covariance (Ledoit-Wolf,
scikit-learn); an image's **typicality distance** is its squared Mahalanobis distance to them. The
threshold is the ``1 - false_alarm`` quantile of the distances of held-out in-distribution images
(the validate split, never used in the fit), so about ``false_alarm`` of images like the training
data are flagged. Every prediction and explanation reports the distance and, above the threshold,
a note that the image is outside what the model saw: its probabilities and patterns are then
unreliable, whatever their confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: The note an explanation carries when its image is outside the training distribution.
OOD_NOTE = (
    "WARNING: this image is unlike the images the model was trained on (typicality distance {d:.0f} > "
    "threshold {t:.0f}, the 99th percentile of held-out training-like images): its probabilities and "
    "pattern contributions are not reliable, whatever they say."
)


@dataclass
class Typicality:
    """The reference: ``distance(e) = (e - mean)ᵀ precision (e - mean)``."""

    mean: torch.Tensor
    """(d,) mean training image embedding."""
    precision: torch.Tensor
    """(d, d) inverse of the shrunk covariance."""
    threshold: float
    """Distances above this are outside (calibrated on held-out in-distribution images)."""

    @torch.no_grad()
    def distance(self, e: torch.Tensor) -> torch.Tensor:
        """(B,) squared Mahalanobis distances of embeddings (B, d)."""
        x = e.to(self.mean) - self.mean
        return ((x @ self.precision) * x).sum(-1)

    def outside(self, e: torch.Tensor) -> torch.Tensor:
        return self.distance(e) > self.threshold


def fit_typicality(
    e_fit: torch.Tensor, e_calibrate: torch.Tensor, false_alarm: float = 0.01
) -> tuple[Typicality, dict[str, float | int]]:
    """The reference from ``e_fit`` (training embeddings), its threshold from ``e_calibrate``
    (held-out in-distribution embeddings) at the ``false_alarm`` rate; and a report."""
    from sklearn.covariance import LedoitWolf

    x = e_fit.double().numpy()
    lw = LedoitWolf().fit(x)
    ref = Typicality(
        torch.from_numpy(lw.location_).float(), torch.from_numpy(lw.precision_).float(), float("inf")
    )
    d_cal = ref.distance(e_calibrate.float()).numpy()
    ref.threshold = float(np.quantile(d_cal, 1 - false_alarm)) if len(d_cal) else float("inf")
    return ref, {
        "fit_rows": len(x),
        "calibration_rows": len(d_cal),
        "false_alarm_target": false_alarm,
        "threshold": ref.threshold,
        "shrinkage": float(lw.shrinkage_),
    }


def typicality_from_embeddings(
    emb, ds, false_alarm: float = 0.01
) -> tuple[Typicality, dict[str, float | int | str]] | None:
    """Fit on the train split of embeddings ``emb`` (:func:`~lanic_hub.backbone.embed.load_embeddings`),
    calibrate on its validate split and report the false-alarm rate on its test split (both held
    out from the fit). None when a split is missing."""
    split = np.array(ds.select(emb.row_ids.tolist()).select_columns(["split"])["split"])
    x = emb.image.float()
    parts = {s: torch.from_numpy(np.where(split == s)[0]) for s in ("train", "validate", "test")}
    if any(len(v) == 0 for v in parts.values()):
        return None
    ref, rep = fit_typicality(x[parts["train"]], x[parts["validate"]], false_alarm)
    rep["false_alarm_on_test"] = float(ref.outside(x[parts["test"]]).float().mean())
    rep["test_rows"] = len(parts["test"])
    rep["measured_on"] = "fitted on the train split, threshold on validate, false alarms on test"
    return ref, rep
