"""Evaluation metrics as pure functions on arrays (the ``eval/metrics`` modules wrap these).

Labels are (N, C) arrays with a mask (N, C): masked-out entries (uncertain under U-Ignore,
or unlabelled) take no part. A finding with a single class among its labelled rows has no AUROC;
it is NaN and left out of macro averages.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from ..operating import f1_at_every_threshold, f1_thresholds  # noqa: F401  (re-exported)


def _cols(y: np.ndarray, mask: np.ndarray | None):
    y = np.asarray(y)
    mask = np.ones_like(y, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return y, mask


def auroc_with_ci(
    y: np.ndarray, scores: np.ndarray, mask: np.ndarray | None = None, n_boot: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Per-finding AUROC with a percentile bootstrap 95% CI (rows resampled with replacement),
    and the macro mean with its own CI (the same resamples, so the CI is of the mean)."""
    y, mask = _cols(y, mask)
    s = np.asarray(scores, dtype=float)
    C = y.shape[1]
    rng = np.random.default_rng(seed)
    point = np.full(C, np.nan)
    boots = np.full((n_boot, C), np.nan)
    for c in range(C):
        m = mask[:, c]
        yc, sc = y[m, c].astype(int), s[m, c]
        if len(np.unique(yc)) < 2:
            continue
        point[c] = roc_auc_score(yc, sc)
        if n_boot:
            draws = np.stack([rng.integers(0, len(yc), len(yc)) for _ in range(n_boot)])
            counts = np.zeros((n_boot, len(yc)))
            np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
            boots[:, c] = resampled_auroc(yc.astype(bool), sc, counts)
    ok = ~np.isnan(point)
    with warnings.catch_warnings():  # a single-class finding has an all-NaN bootstrap column
        warnings.simplefilter("ignore", RuntimeWarning)
        return _ci(point, boots, ok, n_boot)


def resampled_auroc(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of each resample at once: ``counts`` (R, n) is how often each of the n rows was drawn.

    The Mann-Whitney form with ties counted half, each pair weighted by the product of the two
    rows' counts: what ``roc_auc_score`` gives on the resampled rows (counts are whole numbers, so
    the sums are exact). NaN where a resample has a single class."""
    order = np.argsort(scores, kind="stable")
    s, yo = scores[order], y[order]
    w = counts[:, order]
    pos, neg = w * yo, w * ~yo
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last sorted position of each tie group
    group = np.repeat(np.arange(len(last)), np.diff(np.append(-1, last)))
    neg_group = np.diff(np.cumsum(neg, axis=1)[:, last], axis=1, prepend=0.0)  # (R, groups)
    below = np.cumsum(neg_group, axis=1) - neg_group
    num = (pos * (below + 0.5 * neg_group)[:, group]).sum(1)
    den = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _ci(point: np.ndarray, boots: np.ndarray, ok: np.ndarray, n_boot: int) -> dict[str, Any]:
    macro_boot = np.nanmean(boots[:, ok], axis=1) if ok.any() else np.full(n_boot, np.nan)
    return {
        "per_finding": point.tolist(),
        "ci_low": np.nanpercentile(boots, 2.5, axis=0).tolist() if n_boot else point.tolist(),
        "ci_high": np.nanpercentile(boots, 97.5, axis=0).tolist() if n_boot else point.tolist(),
        "macro": float(np.mean(point[ok])) if ok.any() else float("nan"),
        "macro_ci": [float(np.nanpercentile(macro_boot, 2.5)), float(np.nanpercentile(macro_boot, 97.5))]
        if n_boot and ok.any()
        else [float("nan"), float("nan")],
    }


def auprc(y: np.ndarray, scores: np.ndarray, mask: np.ndarray | None = None) -> list[float]:
    y, mask = _cols(y, mask)
    out = []
    for c in range(y.shape[1]):
        m = mask[:, c]
        yc = y[m, c].astype(int)
        out.append(
            float(average_precision_score(yc, scores[m, c])) if 0 < yc.sum() < len(yc) else float("nan")
        )
    return out


def f1_at(
    y: np.ndarray, p: np.ndarray, thresholds: list[float], mask: np.ndarray | None = None
) -> list[float]:
    y, mask = _cols(y, mask)
    return [
        float(f1_score(y[mask[:, c], c].astype(int), p[mask[:, c], c] >= t, zero_division=0))
        for c, t in enumerate(thresholds)
    ]


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, mask: np.ndarray | None = None, n_bins: int = 15
) -> list[float]:
    """Per finding: Σ_bins (n_b / N) |mean(y_b) - mean(p_b)| over equal-width probability bins."""
    y, mask = _cols(y, mask)
    out = []
    edges = np.linspace(0, 1, n_bins + 1)
    for c in range(y.shape[1]):
        m = mask[:, c]
        yc, pc = y[m, c].astype(float), np.clip(p[m, c], 0, 1)
        if len(yc) == 0:
            out.append(float("nan"))
            continue
        b = np.clip(np.digitize(pc, edges[1:-1]), 0, n_bins - 1)
        err = 0.0
        for k in range(n_bins):
            sel = b == k
            if sel.any():
                err += sel.mean() * abs(yc[sel].mean() - pc[sel].mean())
        out.append(float(err))
    return out


def logit_r2(reference: np.ndarray, approx: np.ndarray) -> list[float]:
    """Per column, R² of ``approx`` as a prediction of ``reference``: 1 - SS_res / SS_tot."""
    ref, app = np.asarray(reference, float), np.asarray(approx, float)
    ss_res = ((ref - app) ** 2).sum(0)
    ss_tot = ((ref - ref.mean(0)) ** 2).sum(0)
    return (1 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)).tolist()


def hungarian_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine of the best one-to-one matching between the rows of ``a`` and ``b`` (decoder
    directions of two members), found with the Hungarian algorithm."""
    from scipy.optimize import linear_sum_assignment

    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    sim = an @ bn.T
    r, c = linear_sum_assignment(-sim)
    return float(sim[r, c].mean())


def summary(values: np.ndarray) -> dict[str, float]:
    """Median and 10th / 90th percentiles, NaNs ignored."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {
            "n": 0,
            "median": float("nan"),
            "p10": float("nan"),
            "p90": float("nan"),
            "mean": float("nan"),
        }
    return {
        "n": int(len(v)),
        "median": float(np.median(v)),
        "p10": float(np.percentile(v, 10)),
        "p90": float(np.percentile(v, 90)),
        "mean": float(v.mean()),
    }


def metric_info(doc: str, predictions: str = "sequence", references: str = "sequence", citation: str = ""):
    """The ``evaluate.MetricInfo`` of an ``eval/metrics`` module: float64 columns, a sequence per
    example ('sequence') or one number ('value')."""
    import datasets
    import evaluate

    def col(kind: str):
        return (
            datasets.Sequence(datasets.Value("float64")) if kind == "sequence" else datasets.Value("float64")
        )

    return evaluate.MetricInfo(
        description=doc,
        citation=citation,
        features=datasets.Features({"predictions": col(predictions), "references": col(references)}),
    )
