"""Attribution: every method's parts of a pair's change add up to its logit change."""

from __future__ import annotations

import torch

from lanic_hub import LanICModel
from lanic_hub.data.phantom import ALL_FACTORS
from lanic_hub.evaluation.counterfactual.attribution import (
    BankAttributor,
    ConceptAttributor,
    ground_truth_directions,
    named_concepts,
)
from lanic_hub.evaluation.counterfactual.metrics import pair_changes
from lanic_hub.evaluation.counterfactual.pairs import (
    CounterfactualConfig,
    draw_pairs,
    embed_images,
    render_pairs,
)


def test_the_concept_parts_of_a_change_add_up_to_the_logit_change(tiny_lanic_model):
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
    m = LanICModel.from_pretrained(tiny_lanic_model)
    pairs = draw_pairs(CounterfactualConfig(pairs_per_factor=1))
    on, off = render_pairs(pairs, CounterfactualConfig(pairs_per_factor=1, num_proc=1))
    e_on, e_off = embed_images(m.backbone, on), embed_images(m.backbone, off)
    att = BankAttributor("m", m.classifier, m.ensemble, m.bank, named_concepts(m.patterns))
    dl, di, dr = pair_changes(att, e_on, e_off)
    total = di.sum(1) + dr["unbanked"] + dr["error"]
    assert torch.allclose(total, dl, atol=1e-4), (total - dl).abs().max()
