"""The methods the suite compares: each splits its own logits exactly into items plus rest parts
(:class:`Parts`). The LanIC bank, raw latents and baseline ensembles go through
:class:`BankAttributor`, an SAE with a sparse probe through :class:`SparseProbeAttributor`, the
concept level (report concepts, or the ground-truth ceiling) through :class:`ConceptAttributor`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ...data.concepts import ConceptTable
from ...data.phantom import ALL_FACTORS
from ...explain import decomposition_by_pattern
from ...patterns.concepts import ConceptDirections
from ...patterns.phantom_check import pattern_activations
from ...patterns.record import Pattern


@dataclass
class Parts:
    """One method's exact split of its logits, for a batch: ``logits = bias + items.sum(1) + rest``."""

    logits: torch.Tensor
    """(B, C) the logits this method explains."""
    items: torch.Tensor
    """(B, I, C) each item's contribution."""
    rest: dict[str, torch.Tensor] = field(default_factory=dict)
    """(B, C) the parts that are not items: e.g. 'unbanked', 'error'."""


class Attributor(Protocol):
    """A way to explain logits item by item (the LanIC bank, raw latents, an SAE ...)."""

    name: str
    concepts: list[str | None]
    """The vocabulary concept each item is named after; None: unnamed (below the threshold)."""

    def parts(self, e: torch.Tensor) -> Parts: ...

    def activations(self, e: torch.Tensor) -> torch.Tensor:
        """(B, I) item activations, for assigning each item its ground-truth factor."""
        ...


@dataclass
class BankAttributor:
    """A classifier + transcoder ensemble explained through a pattern bank (the LanIC model, its
    raw latents as a bank without merging, or a baseline ensemble's bank)."""

    name: str
    clf: Any
    ens: Any
    bank: Any
    concepts: list[str | None]

    @property
    def dense(self) -> list[bool]:
        """Which items are context patterns (fire on most images)."""
        return [bool(p.dense) for p in self.bank.patterns]

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        d = decomposition_by_pattern(self.clf, self.ens, self.bank, e)
        return Parts(d.logits, d.patterns, {"unbanked": d.unbanked, "error": d.error})

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return pattern_activations(self.ens, self.bank, e)


@dataclass
class SparseProbeAttributor:
    """A TopK SAE on the embeddings with a sparse linear probe per finding on its latents: its own
    logits split exactly into latent contributions (the intercept is the bias)."""

    name: str
    probe: Any
    """A fitted :class:`lanic_hub.baselines.SAESparseProbe`."""
    concepts: list[str | None]
    dense: list[bool] | None = None
    """Which latents fire on most images (context)."""

    def _z(self, e: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.probe.codes(e.numpy()))

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        z = self._z(e)
        w = torch.as_tensor(np.stack([m.coef_[0] for m in self.probe.models]), dtype=z.dtype)  # (C, L)
        b = torch.as_tensor(np.array([m.intercept_[0] for m in self.probe.models]), dtype=z.dtype)
        items = z.unsqueeze(-1) * w.T.unsqueeze(0)
        return Parts(items.sum(1) + b, items, {})

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return self._z(e)


@dataclass
class ConceptAttributor:
    """The model's explanations at the concept level: its item contributions (patterns and the
    latents outside the bank) split exactly over concept directions
    (:class:`~lanic_hub.explain.ConceptDecomposition`). Items are the concepts; the reference
    (a film naming nothing) and the residual are unnamed rest parts beside the error."""

    name: str
    clf: Any
    ens: Any
    bank: Any
    directions: Any
    """A :class:`~lanic_hub.patterns.concepts.ConceptDirections`."""

    @property
    def concepts(self) -> list[str | None]:
        return [
            k if ok else None
            for k, ok in zip(self.directions.keys, self.directions.named.tolist(), strict=True)
        ]

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        d = decomposition_by_pattern(self.clf, self.ens, self.bank, e, concepts=self.directions)
        c = d.concept
        return Parts(
            d.logits, c.concepts, {"reference": c.reference, "residual": c.residual, "error": d.error}
        )

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return self.directions.presence(e)


def ground_truth_directions(e: torch.Tensor, gt: np.ndarray, factors: tuple[str, ...] = ALL_FACTORS):
    """The ceiling: concept directions fitted on ground-truth factors instead of report concepts
    (every factor named), on the assignment split."""
    t = ConceptTable(tuple(factors), gt.astype(float))
    half = len(e) // 2
    return ConceptDirections.fit(
        e,
        t,
        e[half:],
        ConceptTable(t.concepts, t.values[half:]),
        min_auroc=0.0,
        min_positives=0,
        min_fit_positives=1,
        fitted_on="ground truth of the assignment split",
    )


def named_concepts(patterns: list[Pattern]) -> list[str | None]:
    """The concept each bank pattern is named after, None where it abstains (below the naming
    threshold, or a dense context pattern); banks from before naming thresholds count as named."""
    return [p.concept if p.named else None for p in patterns]
