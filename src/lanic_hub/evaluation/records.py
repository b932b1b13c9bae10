"""The records every evaluation module shares: the results schema and a suite's data.

The bottom of the evaluation package: suites build :class:`SuiteData`, the runner evaluates it and
writes results of :data:`SCHEMA_VERSION`, the leaderboard reads them back (no cycles between them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..records.results import EvalResults

#: The version of the results JSON (``results/<suite>/<model>.json``,
#: :class:`lanic_hub.records.EvalResults`) the runners write and the leaderboard reads.
SCHEMA_VERSION = EvalResults.SCHEMA


@dataclass
class SuiteData:
    """What a suite evaluates on, embedded with one backbone."""

    name: str
    """The suite's name (phantom, mimic-cxr, real-fixtures, ...)."""
    spec: str
    """The dataset spec it was opened from."""
    fingerprint: str
    """The dataset's fingerprint (:func:`lanic_hub.data.schema.dataset_fingerprint`)."""
    x: torch.Tensor
    """(N, d) image embeddings, in dataset row order of ``rows``."""
    rows: Any
    """The dataset rows (no images) matching ``x``."""
    split: np.ndarray
    """(N,) split of each row: train / validate / test."""
    y: np.ndarray
    """(N, C) labels (0/1) of the findings."""
    mask: np.ndarray
    """(N, C) whether each label is known (uncertain and missing labels are left out)."""
    accuracy: bool = True
    """False for suites that only check that the path runs (real-fixtures)."""
