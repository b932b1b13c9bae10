"""The leaderboard harness behind ``lanic-eval``: suites, metrics, results files, the leaderboard.

The metric functions below load on first access, so ``lanic-eval --help`` imports neither
scikit-learn nor torch."""

from __future__ import annotations

from typing import Any

__all__ = [
    "auprc",
    "auroc_with_ci",
    "expected_calibration_error",
    "f1_at",
    "f1_thresholds",
    "hungarian_similarity",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
