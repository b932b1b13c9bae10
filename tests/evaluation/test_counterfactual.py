"""The counterfactual suite: paired renders, the exact split of a logit's change, the shares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from lanic_hub.data.phantom import ALL_FACTORS, PhantomConfig
from lanic_hub.data.phantom.render import render
from lanic_hub.data.phantom.sampling import sample_case
from lanic_hub.evaluation.counterfactual import (
    BankAttributor,
    CounterfactualConfig,
    Pair,
    Parts,
    change_shares,
    draw_pairs,
    evaluate_method,
    naming_precision,
    pair_changes,
    render_pairs,
)

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


@dataclass
class Planted:
    """A method whose item 0 is exactly the factor (coordinate 0 of e), item 1 another coordinate;
    its logit is their sum: a planted single-factor pattern."""

    name: str = "planted"
    concepts: list = field(default_factory=lambda: ["chest_tube", "edema"])

    def parts(self, e: torch.Tensor) -> Parts:
        items = torch.stack([e[:, 0], 0.1 * e[:, 1]], 1).unsqueeze(-1).expand(-1, -1, 5)
        return Parts(items.sum(1), items.clone(), {"error": 0.01 * e[:, 2:3].expand(-1, 5)})

    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return e[:, :2]


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
    from lanic_hub.evaluation.counterfactual import group_figures

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


def test_the_concept_parts_of_a_change_add_up_to_the_logit_change(tiny_lanic_model):
    from lanic_hub import LanICModel
    from lanic_hub.evaluation.counterfactual import ConceptAttributor, ground_truth_directions

    m = LanICModel.from_pretrained(tiny_lanic_model)
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(200, m.config.d_in, generator=g), dim=1)
    gt = (torch.rand(200, len(ALL_FACTORS), generator=g) < 0.3).numpy()
    att = ConceptAttributor("c", m.classifier, m.ensemble, m.bank, ground_truth_directions(e, gt))
    assert att.concepts == list(ALL_FACTORS)  # the ceiling names every factor
    dl, di, dr = pair_changes(att, e[:20], e[20:40])
    total = di.sum(1) + dr["reference"] + dr["residual"] + dr["error"]
    assert torch.allclose(total, dl, atol=1e-4), (total - dl).abs().max()


def test_the_parts_of_a_change_add_up_to_the_logit_change(tiny_lanic_model):
    from lanic_hub import LanICModel
    from lanic_hub.evaluation.counterfactual import embed_images, named_concepts

    m = LanICModel.from_pretrained(tiny_lanic_model)
    pairs = draw_pairs(CounterfactualConfig(pairs_per_factor=1))
    on, off = render_pairs(pairs, CounterfactualConfig(pairs_per_factor=1, num_proc=1))
    e_on, e_off = embed_images(m.backbone, on), embed_images(m.backbone, off)
    att = BankAttributor("m", m.classifier, m.ensemble, m.bank, named_concepts(m.patterns))
    dl, di, dr = pair_changes(att, e_on, e_off)
    total = di.sum(1) + dr["unbanked"] + dr["error"]
    assert torch.allclose(total, dl, atol=1e-4), (total - dl).abs().max()


def test_naming_precision_counts_only_named_items():
    r = naming_precision(["edema", None, "chest_tube", "rotation"], ["edema", "edema", None, "rotation"])
    assert r["named"] == 3 and r["precision"] == pytest.approx(2 / 3)
    assert r["items_with_a_factor"] == 3 and r["named_after_their_factor"] == 2


def test_the_suite_end_to_end_with_baselines(tiny_lanic_model, tmp_path):
    from lanic_hub.evaluation.counterfactual import SUITE, run_counterfactual_suite

    cfg = CounterfactualConfig(pairs_per_factor=2, assign_n=120, baseline_n=120, num_proc=1)
    r = run_counterfactual_suite(
        [str(tiny_lanic_model)], tmp_path, cfg=cfg, baseline_members=2, progress=False, log=lambda *a: None
    )
    docs = [json.loads(open(p).read()) for p in r["written"]]
    methods = {d["metrics"]["counterfactual"]["method"] for d in docs}
    from lanic_hub import LanICModel

    has_concepts = LanICModel.from_pretrained(tiny_lanic_model).concepts is not None
    assert methods == {
        "LanIC model (bank patterns)",
        *(["LanIC model (report concepts)"] if has_concepts else []),
        "ceiling: ground-truth concept directions",
        "raw latents (no merging)",
        "single TopK transcoder",
        "plain TopK ensemble",
        "JumpReLU ensemble",
        "SAE + sparse probe",
    }
    for d in docs:
        m = d["metrics"]["counterfactual"]
        assert set(m["factors"]) == set(ALL_FACTORS) and all(v["pairs"] == 2 for v in m["factors"].values())
        assert d["dataset"]["rows"] == 4 * len(ALL_FACTORS) and d["suite"] == SUITE
    md = (tmp_path / "leaderboard" / f"{SUITE}.md").read_text()
    assert (
        "factors passing / judged" in md and "probe AUROC on e" in md and "devices share / signed / hit" in md
    )
    for d in docs:
        groups = d["metrics"]["counterfactual"]["groups"]
        assert set(groups) == {"findings", "devices", "artifacts", "all"}
    assert sum(line.startswith("| ") for line in md.splitlines()) >= 6 + len(ALL_FACTORS)
