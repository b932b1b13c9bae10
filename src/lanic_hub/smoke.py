"""Smoke mode (``LANIC_HUB_SMOKE=1``): every command at a reduced size, for tests of the README.

With it set, the embedded default shrinks: the phantom CLIP trains for a few steps on a few
phantoms (its calibration probe still runs, with no band to meet), the quickstart and the phantom
suites draw :data:`PHANTOMS` phantoms (the counterfactual suite 4 pairs per factor), and the
ensemble has :data:`MEMBERS` members and trains for :data:`STEPS` optimiser steps unless a command
says otherwise. The commands and files are the same; the figures are meaningless, and the health
checks say so. Never set it for a model you mean to use.
"""

from __future__ import annotations

import os

ENV = "LANIC_HUB_SMOKE"
PHANTOMS = 300
MEMBERS = 8
STEPS = 30


def active() -> bool:
    return os.environ.get(ENV, "").strip() not in ("", "0", "false", "False")


def phantom_clip_config():
    """The phantom CLIP that ``backbone: phantom`` means: the default, or the smoke one."""
    from dataclasses import replace

    from .backbone.phantom_clip import PhantomClipConfig

    cfg = PhantomClipConfig()
    if active():
        cfg = replace(cfg, n_images=128, epochs=1, batch_size=32, check_train=120, check_test=80)
        cfg = replace(cfg, min_probe_auroc=0.0)
    return cfg


def phantoms(n: int) -> int:
    """``n`` phantoms, or :data:`PHANTOMS` in smoke mode."""
    return PHANTOMS if active() else n


def members(n: int | None) -> int | None:
    """``n`` ensemble members (None: the preset's), or :data:`MEMBERS` when ``n`` is None in smoke mode."""
    return MEMBERS if n is None and active() else n


def steps(n: int | None) -> int | None:
    """``n`` transcoder steps (None: the preset's), or :data:`STEPS` when ``n`` is None in smoke mode."""
    return STEPS if n is None and active() else n


def counterfactual_config(cfg=None):
    """The ``phantom-counterfactual`` suite's draw: ``cfg`` (None: the default), or a few pairs per
    factor in smoke mode."""
    from dataclasses import replace

    from .evaluation.counterfactual import CounterfactualConfig

    cfg = cfg or CounterfactualConfig()
    if not active():
        return cfg
    return replace(
        cfg,
        pairs_per_factor=min(cfg.pairs_per_factor, 4),
        assign_n=min(cfg.assign_n, 200),
        baseline_n=min(cfg.baseline_n, PHANTOMS),
    )
