"""Honest names: a pattern carries its name only above the calibrated threshold; dense patterns are
context; every view (text, dict, label) follows the same rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lanic_hub.patterns import BankConfig
from lanic_hub.patterns.bank import is_named, pattern_label
from lanic_hub.patterns.naming import LatentEvidence, naming_decision
from lanic_hub.patterns.record import Pattern


def _rec(concept="pleural_effusion", auroc=0.9, confidence=0.08, frequency=0.1, devices=0.95) -> Pattern:
    return Pattern(
        id=7,
        name="blunted costophrenic angle",
        category="pleural",
        support=2,
        members=[[0, 3], [1, 5]],
        concept=concept,
        confidence=confidence,
        frequency=frequency,
        label_auroc={"Pleural Effusion": auroc, "Support Devices": 0.85},
        gallery_label_share={"Pleural Effusion": 0.6, "Support Devices": devices},
    )


def _decided(rec: Pattern, cfg: BankConfig) -> Pattern:
    """The record with the rule's verdict written in, as the bank builder does."""
    return replace(rec, **naming_decision(rec, cfg))


@pytest.mark.parametrize(
    "kw, named, dense",
    [
        ({}, True, False),
        ({"auroc": 0.79}, False, False),  # below name_label_auroc: abstains
        ({"auroc": None}, False, False),  # no such label in the data: nothing supports the name
        ({"frequency": 0.6}, False, True),  # fires on most images: context, never named
        ({"concept": "rotation"}, False, False),  # no report label covers it: not named by default
        ({"concept": "chest_tube"}, True, False),  # a device: supported by the devices label
    ],
)
def test_the_naming_rule(kw, named, dense):
    rec = _rec(**kw)
    d = naming_decision(rec, BankConfig())
    assert (d["named"], d["dense"]) == (named, dense)
    # a latent of another dictionary (the baselines') is judged by the same rule on the same evidence
    fields = ("concept", "confidence", "frequency", "label_auroc", "gallery_label_share")
    assert naming_decision(LatentEvidence(**{f: getattr(rec, f) for f in fields}), BankConfig()) == d


def test_thresholds_are_config():
    rec = _rec(auroc=0.7, confidence=0.05)
    assert not naming_decision(rec, BankConfig())["named"]
    assert naming_decision(rec, BankConfig(name_label_auroc=0.65))["named"]
    assert not naming_decision(rec, BankConfig(name_label_auroc=0.65, name_confidence=0.1))["named"]
    assert naming_decision(_rec(concept="rotation"), BankConfig(name_unlabelled=True))["named"]
    # a device may also need its gallery's reports to have the devices label
    tube = _rec(concept="chest_tube", devices=0.85)
    assert naming_decision(tube, BankConfig())["named"]
    assert not naming_decision(tube, BankConfig(name_gallery_share=0.9))["named"]


def test_labels_follow_the_rule():
    rec = _decided(_rec(), BankConfig())
    assert is_named(rec) and pattern_label(rec) == "blunted costophrenic angle"
    low = _decided(_rec(auroc=0.5), BankConfig())
    assert not is_named(low)
    assert (
        pattern_label(low)
        == "unnamed pattern 7 (nearest phrase 'blunted costophrenic angle', confidence 0.08)"
    )
    dense = _decided(_rec(frequency=0.9), BankConfig())
    assert pattern_label(dense).startswith("context pattern 7 (on most images")
    legacy = _rec(auroc=0.5)  # a bank from before the rule (no verdict written): shown as named
    assert is_named(legacy) and pattern_label(legacy) == "blunted costophrenic angle"


def test_explanations_show_abstentions_and_context(tiny_lanic_model):
    """The text, the dict and the labels of a real explanation all follow the bank's flags."""
    import torch

    from lanic_hub import LanICModel

    m = LanICModel.from_pretrained(tiny_lanic_model)
    # mark the first pattern context and the second unnamed, as a bank built with the rule would
    m.patterns[0].dense, m.patterns[0].named = True, False
    m.patterns[1].dense, m.patterns[1].named = False, False
    e = torch.nn.functional.normalize(
        torch.randn(64, m.config.d_in, generator=torch.Generator().manual_seed(1)), dim=1
    )
    exs = m.explain_embeddings(e)
    seen = {p.pattern: p for ex in exs for f in ex.findings for p in f.patterns}
    if 0 in seen:
        assert seen[0].dense and not seen[0].named and seen[0].label.startswith("context pattern 0")
    if 1 in seen:
        assert not seen[1].named and seen[1].label.startswith("unnamed pattern 1")
    assert 0 in seen or 1 in seen
    text = exs[0].render()
    assert "How to read this:" in text and "context (" in text
    for ex in exs:
        for f in ex.findings:
            assert abs(f.total - f.logit) < 1e-4
            d = ex.to_dict()
            assert (
                {"named", "dense", "label", "confidence"} <= set(d["findings"][0]["patterns"][0])
                if d["findings"][0]["patterns"]
                else True
            )
