"""What is measured on a trained ensemble (lanic_hub.transcoders.fidelity) that the training loop
decides by: where a held-out FVU curve plateaus."""

from __future__ import annotations

from lanic_hub.transcoders import TrainConfig
from lanic_hub.transcoders.fidelity import plateau_step


def test_plateau_step_against_a_hand_made_curve():
    curve = [(10, 1.0), (20, 0.5), (30, 0.3), (40, 0.29), (50, 0.289), (60, 0.2889)]
    # over 2 checks: 0.5 -> 0.29 (-42%), 0.3 -> 0.289 (-3.7%), 0.29 -> 0.2889 (-0.4%) < 1%
    assert plateau_step(curve, window=2, tol=0.01) == 60
    assert plateau_step(curve, window=2, tol=0.05) == 50
    assert plateau_step(curve, window=1, tol=0.01) == 50  # 0.29 -> 0.289: -0.34%
    assert plateau_step(curve[:3], window=2, tol=0.01) is None
    tc = TrainConfig(steps=1200, plateau_every=10, cooldown=0.2)
    assert tc.decay_window(500, 1200) == (500, 600) and tc.decay_window(1100, 1200) == (1100, 1200)
    assert tc.latest_decay_start(1200) == 1000 and tc.decay_window(1000, 1200) == (1000, 1200)
