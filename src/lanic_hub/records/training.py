"""``fidelity.json`` of a training folder."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Part, Record


class PathAuroc(Part):
    """Macro AUROC of one path to the logits; the per-finding AUROCs are the other keys."""

    macro: float | None = None
    """Mean over the findings with both classes labelled (None: none had)."""

    def finding(self, name: str) -> float | None:
        """The AUROC of one finding (None: not measured)."""
        return (self.model_extra or {}).get(name)


class Aurocs(Part):
    """Test-split AUROCs of the classifier and of the explained paths."""

    classifier: PathAuroc
    """The classifier's own logits."""
    ensemble_path: PathAuroc | None = None
    """The head on the mean of the members' reconstructions: the logits the explanations split."""
    single_member: dict[str, dict[str, float]] = {}
    """Per finding (and ``macro``), the min / median / max over single-member paths."""


class EnsembleReport(Part):
    """How the transcoder ensemble was trained (:func:`lanic_hub.transcoders.train_ensemble`)."""

    steps: int
    """Optimiser steps taken."""
    planned_steps: int | None = None
    """The schedule's maximum."""
    ended_by: str | None = None
    """What ended the run: "plateau", "maximum steps", "schedule (steps)" or "stopped early ..."."""
    seconds: float | None = None
    """Wall time of the ensemble's training."""
    train_config: dict[str, Any] = {}
    """The :class:`~lanic_hub.transcoders.TrainConfig` (schedule, batch, plateau rule)."""
    config: dict[str, Any]
    """The :class:`~lanic_hub.transcoders.TranscoderConfig` (``n_members``, ``n_latents``, ``k`` ...)."""
    final_batch_fvu_mean: float | None = None
    """Mean over members of the full-level FVU on the last training batch."""
    convergence: dict[str, Any] | None = None
    """The plateau evidence: the held-out curve, ``converged``, ``plateau_step``, ``decay``."""
    input_reconstruction: dict[str, Any] = {}
    """``{"weight": w}`` (and its scale and test FVU when the input is reconstructed too)."""
    multimodal: dict[str, Any] = {}
    """``enabled``, ``stream_rows``, ``image_rows``, ``steps``, ``epochs`` of the training stream."""

    @property
    def n_latents(self) -> int | None:
        """The full dictionary size L (the full Matryoshka level)."""
        return self.config.get("n_latents")


class FidelitySummary(Part):
    """How well the members reconstruct the hidden layer (:func:`lanic_hub.transcoders.fidelity`)."""

    fvu_mean: dict[str, float]
    """Mean over members of the test FVU, per Matryoshka level (keys: the level sizes)."""
    l0_mean: float | None = None
    """Mean active latents per row."""
    dead_fraction_mean_train: float | None = None
    """Mean over members of the share of latents that never fire on the training rows."""
    dense_fraction_mean_train: float | None = None
    """Mean over members of the share of latents firing on more than half the training rows."""
    per_member_test: dict[str, Any] = {}
    """The same figures per member, on the test rows."""
    per_member_train: dict[str, Any] = {}
    """The same figures per member, on the training rows."""


class LabelCount(Part):
    """Positives among the labelled rows of one finding in one split."""

    positive: int
    labelled: int


class TrainingReport(Record):
    """``fidelity.json`` of a training folder (``lanic-hub train``): what the classifier and the
    ensemble reach on the test split, and how they were trained."""

    FILE: ClassVar[str] = "fidelity.json"
    VERSION_KEY: ClassVar[str | None] = "schema_version"
    VERSION_IF_MISSING: ClassVar[int | None] = 1

    schema_version: int = 1
    """Schema version of this file (files written before it had one are version 1)."""
    measured_on: str
    """The data the figures were measured on (the test split, with row counts)."""
    policy: str | None = None
    """The uncertainty policy that turned the label columns into targets."""
    classifier: dict[str, Any] = {}
    """The classifier's training (epochs, early stopping, seconds)."""
    ensemble: EnsembleReport
    """The ensemble's training."""
    fidelity: FidelitySummary
    """Reconstruction figures."""
    auroc: Aurocs
    """Test-split AUROCs."""
    baselines: dict[str, PathAuroc] = {}
    """Baselines on the same embeddings (``linear_probe`` ...)."""
    labels: dict[str, dict[str, LabelCount]] = {}
    """Per split, per finding: positives and labelled rows."""
    ground_truth_detection: dict[str, Any] | None = None
    """Phantom worlds only: how well latents detect the true factors (Matryoshka vs TopK)."""
    health: list[dict[str, Any]] = []
    """The training checks (:func:`lanic_hub.health.training_checks`)."""

    @property
    def fvu_full_level(self) -> float | None:
        """The test FVU at the full dictionary size."""
        L = self.ensemble.n_latents
        return None if L is None else self.fidelity.fvu_mean.get(str(L))

    def problems(self) -> list[str]:
        out = []
        L = self.ensemble.n_latents
        if L is not None and self.fidelity.fvu_mean and str(L) not in self.fidelity.fvu_mean:
            out.append(
                f"key 'fidelity.fvu_mean': no FVU at the full level {L} "
                f"(has {sorted(self.fidelity.fvu_mean)})"
            )
        planned = self.ensemble.planned_steps
        if planned is not None and self.ensemble.steps > planned:
            out.append(f"key 'ensemble.steps': {self.ensemble.steps} steps, above the planned {planned}")
        return out
