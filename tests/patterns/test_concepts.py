"""Concept directions: fitted on planted concepts they recover them; the split of every item
contribution over them is exact; the contract of ``to_dict()["concepts"]`` adds up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanic_hub.data.concepts import ConceptTable
from lanic_hub.decomposition import decompose
from lanic_hub.errors import DataError
from lanic_hub.explain import NO_CONCEPTS_NOTE, decomposition_by_pattern, explain_embeddings
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


def test_the_concept_split_adds_up_exactly(model):
    cd = _directions_for(model)
    e = torch.nn.functional.normalize(torch.randn(6, model.config.d_in), dim=1)
    d = decomposition_by_pattern(model.classifier, model.ensemble, model.bank, e, concepts=cd)
    c = d.concept
    torch.testing.assert_close(
        c.concepts.sum(1) + c.reference + c.residual, d.patterns.sum(1) + d.unbanked, atol=1e-4, rtol=0
    )
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
