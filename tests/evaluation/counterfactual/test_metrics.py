"""Metrics: the shares of a moved logit's change, the group figures, naming precision."""

from __future__ import annotations

import pytest
import torch

from lanic_hub.evaluation.counterfactual.metrics import (
    change_shares,
    evaluate_method,
    group_figures,
    naming_precision,
)
from lanic_hub.evaluation.counterfactual.pairs import CounterfactualConfig, Pair

from .planted import Planted


def test_a_planted_single_factor_pattern_gets_a_share_of_1():
    n = 12
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, 4, generator=g)
    on, off = base.clone(), base.clone()
    on[:, 0], off[:, 0] = 2.0, 0.0  # the factor moves item 0 only
    pairs = [Pair(i, "chest_tube") for i in range(n)]
    res = evaluate_method(Planted(), on, off, pairs, ["chest_tube", "edema"], CounterfactualConfig())
    r = res["factors"]["chest_tube"]
    assert r["moved_logits"] == 5 * n and r["eligible"]
    assert r["median_factor_share"] == pytest.approx(1.0) and r["median_named_share"] == pytest.approx(1.0)
    assert r["named_top_hit_rate"] == 1.0 and r["passes"]
    # the same change on an item of another factor: share 0, no hit
    res = evaluate_method(Planted(), on, off, pairs, ["edema", "chest_tube"], CounterfactualConfig())
    r = res["factors"]["chest_tube"]
    assert r["median_factor_share"] == pytest.approx(0.0) and not r["passes"]


def test_shares_split_the_absolute_change():
    d_items = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    d_rest = {"unbanked": torch.tensor([0.5, 0.0]), "error": torch.tensor([-1.0, 2.0])}
    s = change_shares(
        d_items, d_rest, torch.tensor([True, False, False]), torch.tensor([False, True, False]), 3
    )
    assert s["factor_share"][0] == pytest.approx(1 / 5) and s["named_share"][0] == pytest.approx(2 / 5)
    assert s["unbanked_share"][0] == pytest.approx(0.5 / 5) and s["error_share"][0] == pytest.approx(1 / 5)
    assert bool(s["named_hit"][0]) and bool(s["factor_hit"][0])
    # the second row: only the error moved; a rest part is never a hit
    assert s["error_share"][1] == pytest.approx(1.0) and not bool(s["named_hit"][1])


def test_the_signed_share_is_the_named_items_part_of_the_logit_change():
    d_items = torch.tensor([[1.0, -2.0, 0.5], [2.0, 1.0, 0.0]])
    d_rest = {"error": torch.tensor([-1.0, -1.0])}
    named = torch.tensor([True, True, False])
    s = change_shares(d_items, d_rest, named, named, 3)
    # row 0: Δlogit = -1.5, the named items moved it by -1.0: two thirds of the change, signed +
    assert s["signed_named_share"][0] == pytest.approx(2 / 3)
    # row 1: Δlogit = +2.0, named +3.0 (the error took 1.0 back): 1.5; Σ|Δ| share 3/4
    assert s["signed_named_share"][1] == pytest.approx(1.5) and s["named_share"][1] == pytest.approx(0.75)


def test_group_figures_pool_the_moved_logits_of_judged_factors():
    cat = lambda share, hit: {  # noqa: E731
        "named_share": torch.tensor(share),
        "signed_named_share": torch.tensor(share),
        "named_hit": torch.tensor(hit),
    }
    per = {
        "edema": cat([0.2, 0.6], [True, False]),
        "chest_tube": cat([0.9], [True]),
        "rotation": cat([0.0], [False]),
    }
    g = group_figures(per, judged=["edema", "chest_tube"])
    assert g["findings"]["moved_logits"] == 2 and g["findings"]["named_top_hit_rate"] == pytest.approx(0.5)
    assert g["devices"]["median_named_share"] == pytest.approx(0.9)
    assert g["artifacts"] == {"moved_logits": 0}  # rotation is not judged
    assert g["all"]["moved_logits"] == 3 and g["all"]["named_top_hit_rate"] == pytest.approx(2 / 3)


def test_naming_precision_counts_only_named_items():
    r = naming_precision(["edema", None, "chest_tube", "rotation"], ["edema", "edema", None, "rotation"])
    assert r["named"] == 3 and r["precision"] == pytest.approx(2 / 3)
    assert r["items_with_a_factor"] == 3 and r["named_after_their_factor"] == 2
