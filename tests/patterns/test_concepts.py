"""Concept directions: fitted on planted concepts they recover them; the split of every item
contribution over them is exact; the contract of ``to_dict()["concepts"]`` adds up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanic_hub.data.concepts import ConceptTable
from lanic_hub.decomposition import decompose
from lanic_hub.errors import DataError
from lanic_hub.explain import (
    NO_CONCEPTS_NOTE,
    decomposition_by_concept,
    decomposition_by_pattern,
    explain_embeddings,
)
from lanic_hub.patterns.concepts import ConceptDirections, active_linear_maps

KEYS = ("chest_tube", "pleural_effusion", "rotation", "pacemaker")


def _world(n: int, d: int, seed: int):
    """Embeddings e = normalize(μ + Σ y_k β_k + noise) of planted concepts; the last one's report
    label is noise (its name must not be supported)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(d, generator=torch.Generator().manual_seed(99)) * 2
    B = torch.randn(len(KEYS), d, generator=torch.Generator().manual_seed(98))
    y = (torch.rand(n, len(KEYS), generator=g) < 0.3).double()
    u = mu + y.float() @ B + 0.3 * torch.randn(n, d, generator=g)
    e = torch.nn.functional.normalize(u, dim=1)
    labels = y.numpy().copy()
    labels[:, 3] = (torch.rand(n, generator=g) < 0.3).numpy()  # reports that say nothing true
    labels[:3] = np.nan  # three rows without a usable report
    return e, ConceptTable(KEYS, labels), y


def test_fit_recovers_planted_concepts_and_names_only_supported_ones():
    e_fit, t_fit, _ = _world(3000, 32, 0)
    e_chk, t_chk, y_chk = _world(1000, 32, 1)
    cd = ConceptDirections.fit(e_fit, t_fit, e_chk, t_chk, fitted_on="fit", checked_on="check")
    assert cd.keys == KEYS
    assert cd.meta["fit_rows"] == 2997
    got = {s["key"]: s for s in cd.support}
    assert all(got[k]["named"] for k in KEYS[:3]) and all(got[k]["auroc"] > 0.95 for k in KEYS[:3])
    assert not got["pacemaker"]["named"] and got["pacemaker"]["auroc"] < 0.6
    # the read-out tracks the planted presence of the supported concepts
    yhat = cd.presence(e_chk)
    for j in range(3):
        assert np.corrcoef(yhat[:, j].numpy(), y_chk[:, j].numpy())[0, 1] > 0.8  # the unlabelled one leaks in
    # e = μ + ŷ B + r exactly
    y, r = cd.split(e_chk)
    torch.testing.assert_close(cd.mean + y @ cd.directions + r, e_chk, atol=1e-5, rtol=0)


def test_fit_refuses_reports_that_name_nothing():
    e, t, _ = _world(50, 8, 0)
    empty = ConceptTable(KEYS, np.zeros_like(t.values))
    with pytest.raises(DataError, match="no concept has 5 positive reports"):
        ConceptDirections.fit(e, empty, e, t, fitted_on="rows.csv")


def test_save_load_round_trip_and_a_truncated_file(tmp_path):
    e, t, _ = _world(600, 16, 0)
    cd = ConceptDirections.fit(e, t, e, t)
    cd.save(tmp_path)
    back = ConceptDirections.load(tmp_path)
    assert back is not None and back.keys == cd.keys and back.support == cd.support
    torch.testing.assert_close(back.readout, cd.readout)
    assert ConceptDirections.load(tmp_path / "nothing-here") is None
    (tmp_path / "concepts.json").write_text('{"keys": ["chest_tube"]')
    with pytest.raises(DataError, match="concepts.json"):
        ConceptDirections.load(tmp_path)


@pytest.fixture(scope="module")
def model(tiny_lanic_model):
    from lanic_hub.modeling import LanICModel

    return LanICModel.from_pretrained(tiny_lanic_model)


def _raw_split(model, cd, e):
    ens = model.ensemble
    bias = ens.encoder_bias()
    v, i = ens.encode(e, bias=bias)
    return decomposition_by_concept(cd, e, v, i, model.logit_weights, ens, bias)


def _directions_for(model, seed=0):
    d = model.config.d_in
    e, t, _ = _world(800, d, seed)
    return ConceptDirections.fit(e, t, e, t, min_positives=1)


def test_active_latents_are_linear_in_e(model):
    ens = model.ensemble
    e = torch.nn.functional.normalize(torch.randn(4, model.config.d_in), dim=1)
    v, i = ens.encode(e)
    g, kappa = active_linear_maps(v, i, model.logit_weights, ens.W_enc, ens.encoder_bias())
    lat = decompose(
        v,
        i,
        model.classifier.hidden(e),
        ens.decode(v, i).mean(1),
        model.classifier.fc2.weight,
        model.classifier.fc2.bias,
        ens.b_dec,
        U=model.logit_weights,
    )
    torch.testing.assert_close(
        torch.einsum("bcd,bd->bc", g, e) + kappa, lat.contributions.sum((1, 2)), atol=1e-4, rtol=0
    )


def test_the_linear_concept_split_adds_up_exactly(model):
    cd = _directions_for(model)
    cd.attribution = "linear"
    e = torch.nn.functional.normalize(torch.randn(6, model.config.d_in), dim=1)
    d = decomposition_by_pattern(model.classifier, model.ensemble, model.bank, e, concepts=cd)
    c = _raw_split(model, cd, e)  # before the float rounding is closed into the residual
    torch.testing.assert_close(
        c.concepts.sum(1) + c.reference + c.residual, d.patterns.sum(1) + d.unbanked, atol=1e-4, rtol=0
    )
    closed = d.concept
    torch.testing.assert_close(closed.concepts, c.concepts)
    torch.testing.assert_close(closed.residual, c.residual, atol=1e-4, rtol=0)  # only rounding moved
    # a concept's part is its presence times the active map's reading of its direction
    assert c.concepts.shape == (6, len(cd.keys), len(model.config.findings))


def test_to_dict_concepts_add_up_to_the_logit(model):
    cd = _directions_for(model)
    e = torch.nn.functional.normalize(torch.randn(3, model.config.d_in), dim=1)
    args = (model.classifier, model.ensemble, model.bank, e)
    for ex, concepts in [(explain_embeddings(*args, concepts=cd), cd), (explain_embeddings(*args), None)]:
        for x in ex:
            doc = x.to_dict()
            for f in doc["findings"]:
                total = f["bias"] + sum(c["contribution"] for c in f["concepts"]) + f["error"]
                assert abs(total - f["logit"]) < 1e-5
                names = [c["name"] for c in f["concepts"] if c["name"]]
                if concepts is not None:
                    named = {s["name"] for s in cd.support if s["named"]}
                    assert set(names) == named and "pacemaker" not in names
                    kinds = [c["kind"] for c in f["concepts"]]
                    assert kinds[-2:] == ["reference", "residual"]
            assert (NO_CONCEPTS_NOTE in x.notes) == (concepts is None)


def test_reports_that_cannot_be_read_leave_no_concepts_and_say_so(tiny_model, tiny_embedded):
    import json

    from lanic_hub.data.open import open_dataset
    from lanic_hub.patterns.concepts import fit_concept_directions

    spec = json.loads((tiny_embedded / "emb" / "manifest.json").read_text())["data_spec"]
    ds = open_dataset(spec)
    said: list[str] = []
    garbled = ds.map(lambda r, i: {"report": ["", "Keine Befunde.", "???"][i % 3]}, with_indices=True)
    assert fit_concept_directions(tiny_embedded / "emb", garbled, log=said.append) is None
    assert any("had no usable report" in s for s in said)
    assert any("explanations will name patterns only" in s for s in said)
    # and the real reports give directions, checked on the validate rows
    d = fit_concept_directions(tiny_embedded / "emb", ds, log=said.append)
    assert d is not None and "validate rows" in d.meta["checked_on"] and d.meta["fit_rows"] > 0


def test_a_model_folder_from_before_concepts_loads_and_explains_with_patterns_only(
    tiny_lanic_model, tmp_path
):
    import shutil

    from lanic_hub.modeling import LanICModel

    old = tmp_path / "old-model"
    shutil.copytree(tiny_lanic_model, old)
    for f in ("concepts.json", "concepts.safetensors"):
        (old / f).unlink(missing_ok=True)
    m = LanICModel.from_pretrained(old)
    assert m.concepts is None
    e = torch.nn.functional.normalize(torch.randn(1, m.config.d_in), dim=1)
    ex = m.explain_embedding(e)
    assert NO_CONCEPTS_NOTE in ex.notes
    for f in ex.to_dict()["findings"]:
        assert abs(f["bias"] + sum(c["contribution"] for c in f["concepts"]) + f["error"] - f["logit"]) < 1e-5
        assert all(c["kind"] in ("pattern", "unnamed") for c in f["concepts"])
    # the saved model with its directions round-trips them
    new = LanICModel.from_pretrained(tiny_lanic_model)
    if new.concepts is not None:
        new.save_pretrained(tmp_path / "resaved")
        back = LanICModel.from_pretrained(tmp_path / "resaved")
        assert back.concepts is not None and back.concepts.keys == new.concepts.keys
        torch.testing.assert_close(back.concepts.readout, new.concepts.readout)


def test_the_shapley_split_adds_up_from_one_reference_and_is_deterministic(model):
    cd = _directions_for(model)
    cd.attribution, cd.permutations = "shapley", 4
    e = torch.nn.functional.normalize(torch.randn(5, model.config.d_in), dim=1)
    d = decomposition_by_pattern(model.classifier, model.ensemble, model.bank, e, concepts=cd)
    c = _raw_split(model, cd, e)
    torch.testing.assert_close(
        c.concepts.sum(1) + c.reference + c.residual, d.patterns.sum(1) + d.unbanked, atol=1e-4, rtol=0
    )
    # one reference for every image: what the ensemble says of the point μ itself
    assert torch.equal(c.reference, c.reference[:1].expand_as(c.reference))
    assert torch.equal(_raw_split(model, cd, e).concepts, c.concepts)
    # a concept the image does not carry at all (ŷ = 0) gets nothing (the dummy axiom)
    from lanic_hub.patterns.concepts import shapley_over_concepts

    def items_of(x):
        return x[:, :2] * 3.0 + (x[:, :1] * x[:, 1:2])  # any function of the point

    absent = ConceptDirections(
        cd.keys,
        torch.zeros(model.config.d_in),
        torch.eye(len(cd.keys), model.config.d_in),
        torch.eye(len(cd.keys), model.config.d_in).T.contiguous(),
    )
    x = torch.zeros(1, model.config.d_in)
    x[0, 0], x[0, 1] = 1.0, 2.0  # concept 0 and 1 present, every other one absent, no residual
    phi, phi_r, ref, y = shapley_over_concepts(items_of, absent, x, 8)
    assert torch.all(phi[0, 2:] == 0) and torch.all(phi_r == 0)
    # two players with an interaction x0*x1 = 2: each gets half of it
    torch.testing.assert_close(phi[0, 0], torch.tensor([3.0 + 1.0, 0.0 + 1.0]))
    torch.testing.assert_close(phi[0, 1], torch.tensor([0.0 + 1.0, 6.0 + 1.0]))


def test_the_concept_files_carry_no_report_text(tiny_lanic_model, tiny_embedded):
    """What concepts add to a model folder (which may be pushed) holds no sentence of the training
    reports: concept keys and names are the extractor's vocabulary, the support figures are numbers."""
    import json

    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.reports import split_sentences

    spec = json.loads((tiny_embedded / "emb" / "manifest.json").read_text())["data_spec"]
    sentences = {s for r in open_dataset(spec)["report"] for s in split_sentences(r) if len(s) > 12}
    assert sentences  # the fixture's reports do have sentences to leak
    text = (tiny_lanic_model / "concepts.json").read_text()
    assert not [s for s in sentences if s in text]
    names = json.loads((tiny_lanic_model / "patterns.json").read_text())["patterns"]
    for p in names:  # a report-named pattern's support is its concept, never a sentence
        sup = json.dumps(p.get("name_support") or {})
        assert not [s for s in sentences if s in sup]
