"""Pairs: each case rendered with and without one factor, differing only in it."""

from __future__ import annotations

import numpy as np

from lanic_hub.data.phantom import ALL_FACTORS, PhantomConfig
from lanic_hub.data.phantom.render import render
from lanic_hub.data.phantom.sampling import sample_case
from lanic_hub.evaluation.counterfactual.pairs import CounterfactualConfig, draw_pairs, render_pairs

CFG = CounterfactualConfig(pairs_per_factor=2, num_proc=1, image_size=96)


def test_pairs_carry_their_factor_and_differ_only_in_it():
    pairs = draw_pairs(CFG)
    assert len(pairs) == 2 * len(ALL_FACTORS)
    on, off = render_pairs(pairs, CFG)
    world = PhantomConfig()
    for p, a, b in zip(pairs, on, off, strict=True):
        case = sample_case(world, np.random.default_rng((CFG.seed, p.index, 1)), "test")
        assert case.factor_present(p.factor) and not case.without(p.factor).factor_present(p.factor)
        gt_on, gt_off = case.ground_truth(), case.without(p.factor).ground_truth()
        changed = {k for k in gt_on if gt_on[k] != gt_off[k]}
        # only the factor's own columns change (its presence, and its severity/side/value columns)
        assert f"gt_{p.factor}" in changed, p.factor
        assert all(
            p.factor in k
            or k
            in (
                "gt_ctr",
                "gt_exposure_value",
                "gt_rotation_value",
                "gt_marker_letter",
                "gt_chest_tube_side",
                "gt_pacemaker_side",
                "gt_consolidation_lobe",
            )
            for k in changed
        ), (p.factor, changed)
        # the 'with' image is the case rendered as is; the 'without' differs in pixels
        assert np.array_equal(a, render(case, CFG.image_size, CFG.seed, p.index, world.image_noise))
        assert (a.astype(int) != b.astype(int)).sum() > 0
