"""Evaluation metrics against sklearn, brute force and hand computation; the evaluate modules
loaded offline from eval/metrics give the same numbers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, r2_score, roc_auc_score

from lanic_hub.evaluation import metrics as M

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def labelled():
    rng = np.random.default_rng(0)
    y = (rng.random((120, 5)) < 0.35).astype(int)
    s = rng.normal(size=(120, 5)) + 1.2 * y
    mask = rng.random((120, 5)) > 0.1
    y[:, 4] = 0  # single class: no AUROC
    return y, s, mask


def test_auroc_with_ci_matches_sklearn_and_brackets_the_point(labelled):
    y, s, mask = labelled
    r = M.auroc_with_ci(y, s, mask, n_boot=100, seed=1)
    for c in range(4):
        m = mask[:, c]
        assert r["per_finding"][c] == pytest.approx(roc_auc_score(y[m, c], s[m, c]))
        assert r["ci_low"][c] <= r["per_finding"][c] <= r["ci_high"][c]
    assert np.isnan(r["per_finding"][4])
    assert r["macro"] == pytest.approx(np.mean(r["per_finding"][:4]))
    assert r["macro_ci"][0] <= r["macro"] <= r["macro_ci"][1]
    assert json.dumps(M.auroc_with_ci(y, s, mask, n_boot=100, seed=1)) == json.dumps(r)  # seeded


def test_resampled_auroc_equals_sklearn_on_each_resample():
    """The bootstrap's AUROCs, all resamples at once, against roc_auc_score on the resampled rows:
    tied scores (5 levels), single-class resamples (NaN), and rows drawn many times."""
    rng = np.random.default_rng(7)
    n, R = 40, 60
    y = rng.random(n) < 0.2
    s = rng.integers(0, 5, n).astype(float)
    draws = rng.integers(0, n, (R, n))
    draws[0] = np.flatnonzero(~y)[0]  # one class only
    counts = np.zeros((R, n))
    np.add.at(counts, (np.arange(R)[:, None], draws), 1.0)
    got = M.resampled_auroc(y, s, counts)
    for r in range(R):
        yi = y[draws[r]]
        want = roc_auc_score(yi, s[draws[r]]) if 0 < yi.sum() < n else np.nan
        assert got[r] == pytest.approx(want, abs=1e-12, nan_ok=True)
    assert np.isnan(got[0]) and not np.isnan(got[1:]).any()


def test_auprc_f1_ece_r2_against_references(labelled):
    y, s, mask = labelled
    p = 1 / (1 + np.exp(-s))
    ap = M.auprc(y, s, mask)
    for c in range(4):
        m = mask[:, c]
        assert ap[c] == pytest.approx(average_precision_score(y[m, c], s[m, c]))
    thr = M.f1_thresholds(y, p, mask)
    for c in range(4):  # the chosen threshold is the best F1 over every candidate
        m = mask[:, c]
        best = max(f1_score(y[m, c], p[m, c] >= t, zero_division=0) for t in np.unique(p[m, c]))
        assert M.f1_at(y, p, thr, mask)[c] == pytest.approx(best)
    # ECE by hand on 4 predictions and 2 bins
    yy = np.array([[1], [0], [1], [1]])
    pp = np.array([[0.9], [0.8], [0.2], [0.4]])
    # bin [0, .5): p mean .3, y mean 1 -> |.7| * 2/4; bin [.5, 1]: p mean .85, y mean .5 -> .35 * 2/4
    assert M.expected_calibration_error(yy, pp, n_bins=2)[0] == pytest.approx(0.5 * 0.7 + 0.5 * 0.35)
    ref, app = s, s + np.random.default_rng(2).normal(scale=0.3, size=s.shape)
    assert M.logit_r2(ref, app) == pytest.approx([r2_score(ref[:, c], app[:, c]) for c in range(5)])


@pytest.mark.parametrize("seed", range(3))
def test_f1_at_every_threshold_equals_f1_score_per_threshold(seed):
    """The one-sort F1 curve against sklearn's f1_score at every distinct score, with many tied
    scores (probabilities on a coarse grid); the chosen threshold is the lowest among F1 ties, as
    the brute-force max over ascending candidates chose it."""
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.random(n) < 0.3
    p = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 1)  # ~11 distinct values
    t, f1 = M.f1_at_every_threshold(y.astype(int), p)
    cands = np.unique(p)
    assert np.array_equal(t, cands)
    want = np.array([f1_score(y, p >= c, zero_division=0) for c in cands])
    assert f1 == pytest.approx(want, abs=1e-15)
    brute = max(cands, key=lambda c: f1_score(y, p >= c, zero_division=0))
    assert M.f1_thresholds(y[:, None], p[:, None]) == [float(brute)]


def test_hungarian_similarity_finds_the_best_matching():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6))
    assert M.hungarian_similarity(a, a[[2, 0, 3, 1]]) == pytest.approx(1.0)
    b = rng.normal(size=(4, 6))
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    brute = max(
        np.mean([an[i] @ bn[j] for i, j in enumerate(perm)]) for perm in itertools.permutations(range(4))
    )
    assert M.hungarian_similarity(a, b) == pytest.approx(brute)


def _load(name):
    import evaluate

    return evaluate.load(str(REPO / "eval" / "metrics" / name))


def test_evaluate_modules_load_offline_and_agree(labelled, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    y, s, mask = labelled
    ref = np.where(mask, y, -1)
    acc = _load("lanic_accuracy").compute(predictions=s.tolist(), references=ref.tolist(), n_boot=30, seed=0)
    assert json.dumps(acc["auroc"]) == json.dumps(M.auroc_with_ci(y, s, mask, n_boot=30, seed=0))
    assert acc["auprc"] == pytest.approx(M.auprc(y, s, mask), nan_ok=True)

    fid = _load("lanic_fidelity").compute(predictions=(s + 0.1).tolist(), references=s.tolist())
    assert fid["mean_abs_logit_gap"] == pytest.approx([0.1] * 5)

    from tests.patterns.test_scores import ms_direct

    g = torch.Generator().manual_seed(4)
    acts = torch.relu(torch.randn(30, 3, generator=g))
    emb = torch.randn(30, 4, generator=g)
    ms = _load("lanic_monosemanticity").compute(predictions=acts.tolist(), references=emb.tolist())["ms"]
    e = torch.nn.functional.normalize(emb.double(), dim=1).numpy()
    for j in range(3):
        assert ms[j] == pytest.approx(ms_direct(acts[:, j].double().numpy(), e), abs=1e-6)

    parts = np.array([[1.0, 0.1, 3.0, -1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    logit = parts.sum(1)
    ex = _load("lanic_explanations").compute(predictions=parts.tolist(), references=logit.tolist())
    assert ex["completeness_error_max"] == pytest.approx(0.0)
    assert ex["n_cover"] == [3, 0]  # |3| + |-1| = 4 < 0.9 * 4.5 = 4.05, + |0.5|; row 2 has nothing

    a = np.random.default_rng(5).normal(size=(5, 3))
    st = _load("lanic_stability").compute(predictions=a.tolist(), references=a[::-1].tolist())
    assert st["hungarian_similarity"] == pytest.approx(1.0)
