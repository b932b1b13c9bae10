"""Operating points: the probability threshold per finding that maximises F1 on validation rows.

The evaluation chooses them this way to report F1 (:mod:`lanic_hub.evaluation.metrics` re-exports
these functions), and the model export ships them in config.json (``thresholds``), so that
:meth:`~lanic_hub.modeling.LanICModel.predict` reports positive calls at them. Plain numpy: no
scikit-learn import."""

from __future__ import annotations

import numpy as np


def f1_thresholds(y_val: np.ndarray, p_val: np.ndarray, mask_val: np.ndarray | None = None) -> list[float]:
    """Per finding, the probability threshold that maximises F1 on the validation rows (0.5 where
    a finding has no positive row)."""
    y_val = np.asarray(y_val)
    mask_val = np.ones_like(y_val, dtype=bool) if mask_val is None else np.asarray(mask_val, dtype=bool)
    out = []
    for c in range(y_val.shape[1]):
        m = mask_val[:, c]
        yc, pc = y_val[m, c].astype(int), np.asarray(p_val)[m, c]
        if yc.sum() == 0 or len(pc) == 0:
            out.append(0.5)
            continue
        t, f1 = f1_at_every_threshold(yc, pc)
        out.append(float(t[np.argmax(f1)]))  # the first maximum: the lowest threshold among ties
    return out


def f1_at_every_threshold(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, F1): every distinct score t, ascending, and the F1 of predicting ``p >= t``,
    as ``f1_score`` computes it (2 tp / (2 tp + fp + fn), counted exactly), all in one sort:
    O(n log n), where one ``f1_score`` per threshold was O(n^2) (50 s on 4,000 validation rows
    of 5 findings; hours at MIMIC's)."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(np.int64)
    last = np.r_[np.flatnonzero(ps[1:] != ps[:-1]), len(ps) - 1]  # last row of each distinct score
    tp = np.cumsum(ys)[last]
    fp = last + 1 - tp
    fn = int(ys.sum()) - tp
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
    return ps[last][::-1], f1[::-1]
