"""From latents to the pattern bank: scores, merging, selection, language grounding, galleries.

The names below load on first access (``from lanic_hub.patterns import PatternBank`` works as
before), so importing :mod:`lanic_hub.patterns.config` does not import torch."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CATEGORIES": "vocabulary",
    "Annotation": "language",
    "Annotator": "language",
    "BankConfig": "config",
    "LatentStats": "scores",
    "Pattern": "record",
    "PatternBank": "bank",
    "PatternEvidence": "language",
    "ScoreAccumulator": "scores",
    "Vocabulary": "vocabulary",
    "annotate_patterns": "language",
    "build_bank": "build",
    "load_vocabulary": "vocabulary",
    "ms_scores": "scores",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
