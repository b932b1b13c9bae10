"""Checks on tensors shared by the explain path and the model."""

from __future__ import annotations

import torch

from ..errors import DataError


def check_finite(e: torch.Tensor, what: str = "embeddings") -> None:
    """Refuse NaN / inf inputs, naming the rows (an explanation of garbage would still add up)."""
    bad = ~torch.isfinite(e).all(dim=-1)
    if bool(bad.any()):
        rows = bad.nonzero(as_tuple=True)[0].tolist()
        raise DataError(
            f"non-finite values (NaN or inf) in {what}, rows {rows[:20]}{' ...' if len(rows) > 20 else ''}"
        )
