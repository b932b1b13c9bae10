"""A pipeline run and what its stages hand each other.

:class:`Run` is a run's folder, its ledger (``out/stages.json``: each stage's freshness key) and
its progress lines; the handles are the small frozen results a stage returns (the paths, and what
the next stage needs already loaded). The stages themselves are in :mod:`lanic_hub.stages`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .patterns.bank import PatternBank
from .records import EmbeddingsManifest, RunFolder, TrainingReport
from .utils.io import write_text_atomic

# --------------------------------------------------------------------------- the run and its ledger

#: The pipeline's stages in order (``BUILD_STAGES`` then the evaluation, ``pipeline.STAGES``): a
#: progress line's "[i/n]" is its stage's place here.
STAGE_NAMES = ("data", "backbone", "embeddings", "train", "patterns", "model", "eval")


@dataclass
class Run:
    """Where a run writes, what it logs, and its freshness ledger ``out/stages.json``: the key each
    stage's artefact was made from; a matching key (with its outputs present) skips the stage."""

    out: Path
    """The run's folder (each stage's default output folder is under it)."""
    log: Callable[..., Any] = print
    """Where progress lines go."""
    progress: bool = True
    """Progress bars for long work."""
    pipeline: bool = True
    """True: a pipeline run (the ledger, and its "[i/n]" lines). False: a single-stage command
    (``lanic-hub train`` ...): every stage runs, and only its own output is printed."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage run through :func:`run_stages`."""
    peak_rss_gb: dict[str, float] = field(default_factory=dict)
    """Peak resident memory (GiB) of the process during each stage run through :func:`run_stages`
    (on Linux the peak is reset between stages; elsewhere it is the process's peak so far)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.layout = RunFolder(self.out)
        """Every path of the run's folder."""
        self.path = self.layout.stages_json
        self.done: dict[str, str] = (
            json.loads(self.path.read_text()) if self.pipeline and self.path.is_file() else {}
        )

    @staticmethod
    def key(*parts: Any) -> str:
        """A stage's freshness key: a digest of what its artefact is made from (JSON, keys sorted)."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fresh(self, stage: str, key: str, *paths: Path) -> bool:
        """Whether ``stage`` may be skipped: a pipeline run whose ledger has ``key`` for it, with
        every one of its output ``paths`` present."""
        return self.pipeline and self.done.get(stage) == key and all(p.exists() for p in paths)

    def mark(self, stage: str, key: str) -> None:
        """Record that ``stage`` finished from ``key`` (a pipeline run only; written atomically)."""
        if self.pipeline:
            self.done[stage] = key
            write_text_atomic(self.path, json.dumps(self.done, indent=1))

    def step(self, stage: str, line: str) -> None:
        """A pipeline progress line, "[i/n] line" with ``stage``'s place in :data:`STAGE_NAMES`;
        silent in a single-stage command."""
        if self.pipeline:
            self.log(f"[{STAGE_NAMES.index(stage) + 1}/{len(STAGE_NAMES)}] {line}")


# --------------------------------------------------------------------------- handles


@dataclass(frozen=True)
class DataHandle:
    """The dataset: its absolute spec (later stages and manifests reopen it by this) and the
    opened dataset."""

    spec: str
    dataset: Any


@dataclass(frozen=True)
class BackboneHandle:
    """The loaded backbone and the spec it was loaded from (``phantom`` resolved to its folder)."""

    spec: str
    backbone: Any


@dataclass(frozen=True)
class EmbeddingsHandle:
    """An embeddings folder and its manifest."""

    folder: Path
    manifest: EmbeddingsManifest
    summary: dict[str, Any] | None = None
    """What :func:`~lanic_hub.backbone.embed.embed_dataset` reported, when this run embedded."""


@dataclass(frozen=True)
class TrainedHandle:
    """A training folder (classifier + ensemble + fidelity.json), loaded once."""

    folder: Path
    report: TrainingReport | None
    """Its ``fidelity.json`` (None on a non-zero rank of a member-parallel run)."""
    classifier: Any
    ensemble: Any
    fingerprint: str
    """:func:`~lanic_hub.transcoders.ensemble.ensemble_fingerprint` of ``ensemble``."""


@dataclass(frozen=True)
class BankHandle:
    """The pattern bank, saved in the training folder."""

    folder: Path
    bank: PatternBank


@dataclass(frozen=True)
class ModelHandle:
    """The LanIC model folder and the health checks recorded in it."""

    folder: Path
    health: list[dict[str, Any]]
