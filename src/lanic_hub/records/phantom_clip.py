"""``training_report.json`` of a phantom CLIP folder."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Part, Record


class ProbeCheck(Part):
    """The phantom CLIP's calibration probe (:func:`lanic_hub.backbone.phantom_clip.quality_check`)."""

    measured_on: str
    """The phantoms it was measured on."""
    macro_probe_auroc: float
    """Macro AUROC of linear probes on the image embeddings against the report labels."""
    probe_auroc: dict[str, float | None] = {}
    """Per finding."""
    device_probe_auroc: dict[str, float | None] = {}
    """Per device."""
    min_probe_auroc: float
    """The documented band's lower end (0: no band)."""
    passed: bool
    """Whether the macro AUROC is inside the band."""
    seconds: float | None = None
    """How long the probe took."""


class PhantomClipReport(Record):
    """``training_report.json`` of a phantom CLIP folder: how it was trained and checked."""

    FILE: ClassVar[str] = "training_report.json"

    config: dict[str, Any]
    """The :class:`PhantomClipConfig` it was trained with."""
    steps: int
    """Optimiser steps taken."""
    planned_steps: int
    """Steps its config budgets."""
    complete: bool
    """Whether it took every planned step."""
    stopped_at_time_limit: bool = False
    """Whether a time limit cut it short."""
    time_limit_s: float | None = None
    """That time limit."""
    final_loss: float | None = None
    """Mean contrastive loss of the last 20 steps."""
    seconds: dict[str, float] = {}
    """Wall time per phase (data, text_features, train, total)."""
    unique_sentences: int | None = None
    """Distinct report sentences it was trained on."""
    check: ProbeCheck | None = None
    """The calibration probe (None: not run)."""

    def budget(self) -> int | None:
        """Steps the config asks for (n_images // batch_size x epochs), None when it cannot say."""
        c = self.config
        try:
            return (int(c["n_images"]) // int(c["batch_size"])) * int(c["epochs"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    def problems(self) -> list[str]:
        if not self.complete:
            return []  # an honest partial run: consistent, not servable (see ``servable``)
        budget = self.budget()
        if budget is None:
            return ["key 'config': records no n_images, batch_size and epochs to check its steps against"]
        if not self.steps == self.planned_steps == budget:
            return [
                f"key 'complete': its report says complete, but ran {self.steps} steps of its planned "
                f"{self.planned_steps}, and its config's budget is {budget}"
            ]
        return []

    def unservable(self) -> str | None:
        """Why this model must not be served from the cache (None: it may)."""
        if not self.complete:
            return f"its training stopped after {self.steps} of {self.planned_steps} steps"
        if bad := self.problems():
            return bad[0]
        if self.check is None:
            return "it has not passed the calibration probe"
        if not self.check.passed:
            return (
                f"its calibration probe gave macro AUROC {self.check.macro_probe_auroc:.3f} < "
                f"{self.check.min_probe_auroc}"
            )
        return None
