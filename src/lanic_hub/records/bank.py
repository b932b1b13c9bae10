"""The ``meta`` of ``patterns.json``."""

from __future__ import annotations

from typing import Any

from .base import Part


class BankMeta(Part):
    """The ``meta`` object of ``patterns.json`` (a training folder's bank and a model folder's):
    what the bank was built from, its counts and settings, and what the export added. Every field
    is optional: a model made in memory has an empty one."""

    ensemble_fingerprint: str | None = None
    """:func:`~lanic_hub.transcoders.ensemble.ensemble_fingerprint` of the ensemble it was built from."""
    n_members: int | None = None
    """Members T of that ensemble."""
    n_latents: int | None = None
    """Latents per member L."""
    counts: dict[str, int] = {}
    """``latents`` (T x L), ``alive``, ``merged`` (candidate patterns) and ``selected`` (patterns)."""
    config: dict[str, Any] = {}
    """The :class:`~lanic_hub.patterns.BankConfig` it was built with."""
    measured_on: str | None = None
    """The rows its scores were measured on."""
    ms_encoder: str | None = None
    """The image encoder of the MonoSemanticity score."""
    sentence_model: str | None = None
    """The sentence encoder of text coherence (None: no reports)."""
    report_text: str | None = None
    """Why typical sentences were withheld (None: they were not)."""
    text_coherence_random_baseline: float | None = None
    """Text coherence of random galleries (what a pattern's coherence is measured above)."""
    labels: list[str] = []
    """The report label columns its label AUROCs are over."""
    vocabulary: dict[str, Any] = {}
    """``source`` and ``phrases`` of the naming vocabulary."""
    backbone: dict[str, Any] | None = None
    """The backbone identity of its embeddings (:class:`BackboneIdentity` as a dict)."""
    embeddings: str | None = None
    """The embeddings folder it was built over (absolute path on the machine that built it)."""
    dataset_fingerprint: str | None = None
    """The dataset of those embeddings."""
    seconds: float | None = None
    """Wall time of the build."""
    phase_seconds: dict[str, float] = {}
    """Wall time per build phase."""
    thumbnails: Any = None
    """Gallery thumbnails written beside it (``lanic-hub patterns --thumbnails``)."""
    data_source: dict[str, Any] | None = None
    """Export: the data's source and licence (:class:`~lanic_hub.data.schema.DataSource` as a dict)."""
    health: list[dict[str, Any]] = []
    """Export: the model's health checks (:mod:`lanic_hub.health`)."""
    typicality: dict[str, Any] | None = None
    """Export: how the typicality reference was fitted and its false-alarm rate."""
    removal_measured: dict[str, Any] | None = None
    """A changed model (``lanic-hub remove``): the AUROCs before and after, where measured."""

    def to_dict(self) -> dict[str, Any]:
        """The fields that were read or set, then the unknown keys (Python types: numbers from numpy
        are left to the writer's JSON encoder)."""
        return self.model_dump(exclude_unset=True)
