"""Checkpoints of the ensemble's training (lanic_hub.transcoders.checkpoint): a resumed run equals
an uninterrupted one, a checkpoint of another run is refused (or replaced when asked), and the
clock decides when one is written, never what the model becomes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lanic_hub.classifier import DiagnosticClassifier
from lanic_hub.transcoders import TrainConfig, train_ensemble
from lanic_hub.transcoders.checkpoint import StaleCheckpointError

from .test_ensemble import CFG


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    torch.manual_seed(0)
    clf = DiagnosticClassifier(8, 6, 5)
    e, cfg = torch.randn(200, 8), CFG
    h = clf.hidden(e).detach()
    full, full_rep = train_ensemble(e, h, cfg, TrainConfig(epochs=4, batch_size=64), progress=False)
    train_ensemble(
        e,
        h,
        cfg,
        TrainConfig(epochs=4, batch_size=64),
        checkpoint_dir=tmp_path,
        progress=False,
        stop_after_epochs=2,
    )
    resumed, rep = train_ensemble(
        e, h, cfg, TrainConfig(epochs=4, batch_size=64), checkpoint_dir=tmp_path, progress=False
    )
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    # the FVU curve survives the stop: the resumed run can still say whether it converged
    assert [s for s, _ in full_rep["convergence"]["curve"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert rep["convergence"] == full_rep["convergence"]
    assert full_rep["convergence"]["converged"] is not None
    # a checkpoint of another run is never resumed: other config, schedule or data
    others = {
        "config": (e, h, replace(cfg, k=3), TrainConfig(epochs=4, batch_size=64)),
        "schedule": (e, h, cfg, TrainConfig(epochs=4, batch_size=64, lr=1e-2)),
        "data": (e + 0.01, h, cfg, TrainConfig(epochs=4, batch_size=64)),
    }
    for what, (e2, h2, cfg2, tc2) in others.items():
        with pytest.raises(StaleCheckpointError, match=f"another {what}"):
            train_ensemble(e2, h2, cfg2, tc2, checkpoint_dir=tmp_path, progress=False)
    # ... or, asked to, it is replaced: the result equals a run without any checkpoint
    fresh, _ = train_ensemble(e + 0.01, h, cfg, TrainConfig(epochs=4, batch_size=64), progress=False)
    over, _ = train_ensemble(
        e + 0.01, h, cfg, TrainConfig(epochs=4, batch_size=64), checkpoint_dir=tmp_path, progress=False,
        stale_checkpoint="restart",
    )  # fmt: skip
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, over.state_dict()[k]), k


def test_checkpoints_by_the_clock_change_when_they_are_written_not_the_model(tmp_path, monkeypatch):
    """checkpoint_seconds: a checkpoint at the first epoch end that many seconds after the last
    one, and at the end. A cadence far longer than the run writes one checkpoint, at the end; a
    run cut with one cadence resumes under another to the very same weights."""
    import lanic_hub.transcoders.train as tr

    torch.manual_seed(0)
    clf = DiagnosticClassifier(8, 6, 5)
    e = torch.randn(200, 8)
    h = clf.hidden(e).detach()
    full, _ = train_ensemble(e, h, CFG, TrainConfig(epochs=4, batch_size=64), progress=False)
    saves = []
    real = tr.save_checkpoint
    monkeypatch.setattr(tr, "save_checkpoint", lambda *a: (saves.append(a[3]), real(*a)))  # epoch
    slow = TrainConfig(epochs=4, batch_size=64, checkpoint_seconds=1e9)
    once, _ = train_ensemble(e, h, CFG, slow, checkpoint_dir=tmp_path / "a", progress=False)
    assert saves == [4]
    saves.clear()
    every = TrainConfig(epochs=4, batch_size=64, checkpoint_seconds=0)
    train_ensemble(e, h, CFG, every, checkpoint_dir=tmp_path / "b", progress=False, stop_after_epochs=2)
    assert saves == [1, 2]
    resumed, _ = train_ensemble(e, h, CFG, slow, checkpoint_dir=tmp_path / "b", progress=False)
    for k, v in full.state_dict().items():
        assert torch.equal(v, once.state_dict()[k]) and torch.equal(v, resumed.state_dict()[k]), k
