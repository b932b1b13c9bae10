"""A phantom dataset's ground truth, read back: the ``gt_*`` columns that
:meth:`~lanic_hub.data.phantom.case.Case.ground_truth` writes. Code outside the phantom package
asks here, so the column names live in one place."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .case import ALL_FACTORS

PREFIX = "gt_"


def column(factor: str) -> str:
    """The presence column of a factor (``edema`` -> ``gt_edema``)."""
    return f"{PREFIX}{factor}"


def factor_of(name: str) -> str:
    """The factor (or field) a ``gt_*`` column is about (``gt_edema`` -> ``edema``)."""
    return name[len(PREFIX) :]


def finding_factor(finding: str) -> str:
    """The factor of a finding's name (``Pleural Effusion`` -> ``pleural_effusion``)."""
    return finding.lower().replace(" ", "_")


def is_phantom(column_names: Iterable[str]) -> bool:
    """Whether a table carries the phantom ground truth (a phantom world, not real data)."""
    return column("edema") in set(column_names)


def truth_columns(column_names: Iterable[str]) -> list[str]:
    """The fields of every ``gt_*`` column a table carries (presences, severities, sides ...)."""
    return [factor_of(c) for c in column_names if c.startswith(PREFIX)]


def presence_of(rows, factor: str) -> np.ndarray:
    """(N,) whether each row carries ``factor`` (``rows``: a dataset or a dict of columns)."""
    return np.array(rows[column(factor)], dtype=bool)


def presence(rows, factors: tuple[str, ...] = ALL_FACTORS) -> np.ndarray:
    """(N, F) whether each row carries each factor."""
    return np.stack([presence_of(rows, f) for f in factors], 1)


def severity(rows, finding: str) -> np.ndarray:
    """(N,) the severity of a finding factor on each row (0 where absent)."""
    return np.array(rows[f"{column(finding)}_severity"])
