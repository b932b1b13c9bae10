"""The leaderboard harness behind ``lanic-eval``: suites, metrics, results files, the leaderboard."""

from .metrics import (
    auprc,
    auroc_with_ci,
    expected_calibration_error,
    f1_at,
    f1_thresholds,
    hungarian_similarity,
)

__all__ = [
    "auprc",
    "auroc_with_ci",
    "expected_calibration_error",
    "f1_at",
    "f1_thresholds",
    "hungarian_similarity",
]
