"""Smoke mode (``LANIC_HUB_SMOKE=1``): every command at a reduced size, for tests of the README.

With it set, the embedded default shrinks: the phantom CLIP trains for a few steps on a few
phantoms (its calibration probe still runs, with no band to meet), the quickstart and the phantom
suites draw :data:`PHANTOMS` phantoms (the counterfactual suite 4 pairs per factor), and the
ensemble has :data:`MEMBERS` members and trains for :data:`STEPS` optimiser steps unless a command
says otherwise. The commands and files are the same; the figures are meaningless, and the health
checks say so. Never set it for a model you mean to use.

This module sits at the bottom of the layers (it imports nothing of lanic_hub): each stage applies
the sizes to its own config (``phantom_clip.default_config``, ``counterfactual.smoke_sized``).
"""

from __future__ import annotations

import os

ENV = "LANIC_HUB_SMOKE"
PHANTOMS = 300
MEMBERS = 8
STEPS = 30


def active() -> bool:
    return os.environ.get(ENV, "").strip() not in ("", "0", "false", "False")


def phantoms(n: int) -> int:
    """``n`` phantoms, or :data:`PHANTOMS` in smoke mode."""
    return PHANTOMS if active() else n


def members(n: int | None) -> int | None:
    """``n`` ensemble members (None: the preset's), or :data:`MEMBERS` when ``n`` is None in smoke mode."""
    return MEMBERS if n is None and active() else n


def steps(n: int | None) -> int | None:
    """``n`` transcoder steps (None: the preset's), or :data:`STEPS` when ``n`` is None in smoke mode."""
    return STEPS if n is None and active() else n
