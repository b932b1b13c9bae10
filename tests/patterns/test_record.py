"""The typed pattern record (lanic_hub.patterns.record): the sidecar schema in one place."""

from __future__ import annotations

import json

import pytest

from lanic_hub.errors import RecordError
from lanic_hub.patterns import Pattern, PatternBank


def test_every_entry_of_a_built_bank_round_trips_byte_for_byte(tiny_model):
    doc = json.loads((tiny_model / "patterns.json").read_text())
    assert doc["patterns"], "the tiny bank has patterns"
    for j, d in enumerate(doc["patterns"]):
        p = Pattern.from_dict(d, f"pattern {j}")
        assert json.dumps(p.to_dict()) == json.dumps(d)  # same keys, same order, same values
        assert p.extra == {}  # the builder writes nothing the record does not know
        assert (p.id, p.name, p.support, len(p.members)) == (j, d["name"], d["support"], d["support"])


def test_bank_load_gives_records_and_save_writes_the_same_file(tiny_model, tmp_path):
    bank = PatternBank.load(tiny_model)
    assert all(isinstance(p, Pattern) for p in bank.patterns)
    bank.save(tmp_path)
    a = json.loads((tiny_model / "patterns.json").read_text())["patterns"]
    b = json.loads((tmp_path / "patterns.json").read_text())["patterns"]
    assert a == b


def _entry(**over):
    d = {"id": 0, "name": "enlarged heart", "category": "cardiac", "support": 2, "members": [[0, 1], [1, 4]]}
    d.update(over)
    return d


def test_unknown_keys_are_kept_and_absent_optional_keys_take_defaults():
    p = Pattern.from_dict(_entry(future_score=0.5))
    assert p.extra == {"future_score": 0.5} and p.to_dict()["future_score"] == 0.5
    assert list(p.to_dict())[-1] == "future_score"  # unknown keys go last
    # a bank from before the naming thresholds: named, not dense, no phantom factor
    assert p.named is True and p.dense is False and p.best_factor is None
    assert "best_factor" not in p.to_dict()  # written only where a world has ground truth


def test_a_record_is_read_by_attribute_not_by_key():
    """No dict interface: a renamed field fails where it is read, and a record is not mistaken for
    the JSON object it writes."""
    p = Pattern.from_dict(_entry())
    assert p.name == "enlarged heart" and p.concept is None
    with pytest.raises(TypeError):
        p["name"]  # noqa: B018
    with pytest.raises(AttributeError):
        p.get("concept")
    assert p != p.to_dict() and p == Pattern.from_dict(p.to_dict())
    q = p.copy()
    q.members[0][1] = 99
    assert p.members[0][1] == 1  # a deep copy


@pytest.mark.parametrize(
    "entry, words",
    [
        ([], r"pattern 3: expected an object with an integer id"),
        (_entry(id="0"), r"integer id"),
        (_entry(name=None), r"'name' and 'category' must be strings"),
        (_entry(support=3), r"'members' must list 'support' = 3 latents"),
        (_entry(members=[[0, 1], [1, "4"]]), r"member \[1, '4'\] is not a \[member, latent\] pair"),
        (
            _entry(gallery=[{"row": -1, "activation": 1.0}]),
            r"gallery entry .* is not a dataset row reference",
        ),
    ],
    ids=["not-an-object", "id", "name", "support", "member", "gallery"],
)
def test_bad_entries_are_refused_naming_the_entry_and_key(entry, words):
    with pytest.raises(RecordError, match=words) as e:
        Pattern.from_dict(entry, "pattern 3")
    assert str(e.value).startswith("pattern 3:")


def test_a_record_survives_its_json_and_equals_only_records():
    p = Pattern.from_dict(_entry(ms=0.4))
    assert p == Pattern.from_dict(json.loads(json.dumps(p.to_dict())))
    assert p != Pattern.from_dict(_entry(ms=0.5)) and p != p.to_dict()  # a record is not its dict
