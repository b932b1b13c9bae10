"""The diagnostic classifier: learns, stops early on validation AUROC, refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lanic_hub.classifier import ClassifierConfig, check_inputs, macro_auroc, train_classifier
from lanic_hub.errors import DataError


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    w = rng.normal(size=(12, 5))
    y = ((x @ w + rng.normal(scale=0.5, size=(n, 5))) > 0.5).astype(np.float32)
    mask = rng.random((n, 5)) > 0.1  # U-Ignore: some labels masked out
    return x, y, mask


def test_learns_and_reports_best_validation_auroc():
    import torch

    x, y, m = _data(1100, 0)  # one generating model; the last 300 rows validate
    model, rep = train_classifier(
        x[:800],
        y[:800],
        m[:800],
        x[800:],
        y[800:],
        m[800:],
        ClassifierConfig(hidden=32, max_epochs=60, patience=10),
        progress=False,
    )
    logits = model(torch.as_tensor(x[800:])).detach().numpy()
    auc, per = macro_auroc(logits, y[800:], m[800:])
    assert auc == pytest.approx(rep["best_val_macro_auroc"], abs=1e-9)  # the best epoch is the one kept
    ref = roc_auc_score(y[800:][m[800:, 0], 0], logits[m[800:, 0], 0])
    assert per[0] == pytest.approx(ref)
    assert auc > 0.9
    assert rep["epochs_run"] <= 60


def test_bad_inputs():
    x, y, m = _data(50, 0)
    x[7, 3] = np.inf
    with pytest.raises(DataError, match=r"train: non-finite embeddings in rows \[7\]"):
        check_inputs(x, y, m, "train")
    x, y, m = _data(50, 0)
    y[:, 2] = 1.0
    with pytest.raises(DataError, match="'Consolidation' has only one class") as err:
        check_inputs(x, y, m, "validate")
    # what to do about it: the small-dataset remedies and the blank-label trap
    msg = str(err.value)
    assert " labelled rows of 50;" in msg and "Blank labels count as negative" in msg
    assert "?split=COL" in msg and "?fractions=0.6,0.2,0.2" in msg and "labels=COL:OBS" in msg
    with pytest.raises(DataError, match="non-empty"):
        check_inputs(np.zeros((0, 12)), y[:0], m[:0], "test")


def test_single_class_column_is_reported_not_averaged():
    x, y, m = _data(100, 0)
    y[:, 1] = 0.0
    logits = np.random.default_rng(1).normal(size=y.shape)
    macro, per = macro_auroc(logits, y, m)
    assert np.isnan(per[1])
    others = [roc_auc_score(y[m[:, j], j], logits[m[:, j], j]) for j in (0, 2, 3, 4)]
    assert macro == pytest.approx(np.mean(others))


def test_the_seed_alone_decides_the_model_whatever_the_global_random_state():
    import torch

    from lanic_hub.classifier import DiagnosticClassifier

    x, y, m = _data(400, 1)
    cfg = ClassifierConfig(hidden=8, max_epochs=3, patience=3, seed=5)
    states = []
    for global_seed in (0, 99):
        torch.manual_seed(global_seed)
        model, _ = train_classifier(x[:300], y[:300], m[:300], x[300:], y[300:], m[300:], cfg, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # the initial weights are nn.Linear's draws, from the config's seed instead of the global state
    torch.manual_seed(5)
    by_global = DiagnosticClassifier(12, 8, 5).state_dict()
    clf = DiagnosticClassifier(12, 8, 5)
    clf.reset_parameters(torch.Generator().manual_seed(5))
    assert all(torch.equal(by_global[k], v) for k, v in clf.state_dict().items())
