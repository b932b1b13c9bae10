"""Removing items from a model through its exact decomposition: the logit moves by exactly their
contribution, the error term stays, explanations still add up, the removal survives a save and a
load, bad requests name the nearest items, and the source folder is never written to."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from lanic_hub import LanICModel
from lanic_hub.backbone.embed import load_embeddings
from lanic_hub.explain import decomposition_by_pattern
from lanic_hub.removal import RemovalError, items_from_reference


@pytest.fixture(scope="module")
def model(tiny_lanic_model):
    return LanICModel.from_pretrained(tiny_lanic_model)


@pytest.fixture(scope="module")
def x(tiny_model):
    return load_embeddings(tiny_model.parent / "emb").image[:48].float()


def _parts(m, x):
    return decomposition_by_pattern(
        m.classifier,
        m.ensemble,
        m.bank,
        x,
        U=m.logit_weights,
        encoder_bias=m.encoder_bias,
        concepts=m.concepts,
    )


def test_removing_patterns_and_latents_moves_the_logit_by_exactly_their_contribution(model, x):
    d = _parts(model, x)
    active = (d.activation > 0).float().mean(0)
    pats = active.argsort(descending=True)[:2].tolist()  # two patterns active on many images
    changed = model.without(patterns=pats)
    with torch.no_grad():
        got = changed(embeddings=x).logits
    want = d.logits - d.patterns[:, pats, :].sum(1)
    assert torch.allclose(got, want, atol=1e-5)
    assert float((d.patterns[:, pats, :].sum(1)).abs().max()) > 1e-3  # the test moves something
    # a latent: (member, latent) of the first pattern; its contribution by hand from the codes
    t, i = model.patterns[pats[0]].members[0]
    one = model.without(latents=[(t, i)])
    v, idx = model.ensemble.encode(x)
    hand = ((idx[:, t] == i).float() * v[:, t] / model.ensemble.cfg.n_members).sum(1, keepdim=True)
    hand = hand * model.logit_weights[t, i].unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(one(embeddings=x).logits, d.logits - hand, atol=1e-5)
    assert model.config.removed is None  # the source model is not changed


def test_a_changed_models_explanation_adds_up_and_marks_what_was_removed(model, x):
    d = _parts(model, x)
    p = int((d.activation > 0).float().mean(0).argmax())
    changed = model.without(patterns=[p], reason="test")
    ex = changed.explain_embeddings(x[:4])
    for b, e in enumerate(ex):
        for c, f in enumerate(e.findings):
            assert f.removed == pytest.approx(float(d.patterns[b, p, c]), abs=1e-5)
            assert f.logit == pytest.approx(float(d.logits[b, c] - d.patterns[b, p, c]), abs=1e-5)
            assert f.total == pytest.approx(f.logit, abs=1e-4)  # bias + items + error - removed
            assert f.probability == pytest.approx(1 / (1 + np.exp(-f.logit)), abs=1e-6)
            assert [q.pattern for q in f.patterns if q.removed] == ([p] if d.activation[b, p] > 0 else [])
            if f.concepts:
                s = f.bias + sum(cc.contribution for cc in f.concepts) + f.error - f.removed
                assert s == pytest.approx(f.logit, abs=1e-4)
        assert "leaves out" in e.notes[-1]
    if d.activation[0, p] > 0:
        assert "removed from the model" in ex[0].render()


def test_removing_a_concept_takes_out_its_concept_contribution(model, x):
    if model.concepts is None:
        pytest.skip("the tiny model's reports support no concept directions")
    key = model.concepts.keys[0]
    changed = model.without(concepts=[model.concepts.names[0].upper()])  # by name, any case
    assert changed.removal.concepts == (key,)
    d = _parts(model, x)
    want = d.logits - d.concept.concepts[:, 0, :]
    with torch.no_grad():
        assert torch.allclose(changed(embeddings=x).logits, want, atol=1e-4)
    f = changed.explain_embeddings(x[:1])[0].findings[0]
    assert [c.key for c in f.concepts if c.removed] == ([key] if model.concepts.named[0] else [])
    # the suite's shared concept split gives the changed models' own logits, for any set of concepts
    from lanic_hub.evaluation.removal_suite import ConceptParts

    parts = ConceptParts(model)
    keys = model.concepts.keys[:2]
    with torch.no_grad():
        own = model.without(concepts=keys)(embeddings=x).logits.numpy()
    assert np.allclose(parts.without(keys)(x), own, atol=1e-4)
    assert parts(x) is parts(x)  # computed once per tensor


def test_unknown_items_are_clear_errors_naming_the_nearest(model):
    if model.concepts is not None:
        name = model.concepts.names[0]
        with pytest.raises(RemovalError, match=f"unknown concept '{name[:-1]}x'.*nearest: '{name}'"):
            model.without(concepts=[name[:-1] + "x"])
    else:
        with pytest.raises(RemovalError, match="no concept directions"):
            model.without(concepts=["chest tube"])
    with pytest.raises(RemovalError, match=f"pattern {len(model.patterns)} does not exist"):
        model.without(patterns=[len(model.patterns)])
    with pytest.raises(RemovalError, match="no pattern is named 'zzz'"):
        model.without(patterns=["zzz"])
    with pytest.raises(RemovalError, match="latent"):
        model.without(latents=[(model.ensemble.cfg.n_members, 0)])
    with pytest.raises(RemovalError, match="nothing to remove"):
        model.without()
    if model.concepts is not None:
        with pytest.raises(RemovalError, match="not both"):
            model.without(concepts=[model.concepts.keys[0]]).without(patterns=[0])


def _digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_removal_survives_save_and_load_and_the_cli_leaves_the_source_alone(
    tiny_lanic_model, model, x, tmp_path, capsys
):
    from lanic_hub.cli import main

    before = _digest(tiny_lanic_model)
    pid = model.patterns[0].name
    out = tmp_path / "changed"
    assert (
        main(
            ["remove", "--model", str(tiny_lanic_model), "--pattern", "0", "--out", str(out), "--reason", "r"]
        )
        == 0
    )
    assert f"leaves out patterns 0 ('{pid}')" in capsys.readouterr().out
    assert _digest(tiny_lanic_model) == before  # the source folder is byte for byte the same
    loaded = LanICModel.from_pretrained(out)
    assert loaded.config.removed["patterns"] == [0] and loaded.config.removed["reason"] == "r"
    assert json.loads((out / "config.json").read_text())["removed"]["chosen_by"] == "by hand"
    with torch.no_grad():
        assert torch.allclose(loaded(embeddings=x).logits, model.without(patterns=[0])(embeddings=x).logits)
    card = (out / "README.md").read_text()
    assert "## Items removed from this model" in card and f"patterns 0 ('{pid}')" in card
    # the AUROCs before and after, measured on the model's own test embeddings
    assert "| finding | before | after | change |" in card
    # a second removal on the changed model keeps the first in its history, one card section
    out2 = tmp_path / "changed2"
    assert main(["remove", "--model", str(out), "--pattern", "1", "--out", str(out2)]) == 0
    again = LanICModel.from_pretrained(out2)
    assert again.config.removed["patterns"] == [0, 1] and again.config.removed["history"][0]["patterns"] == [
        0
    ]
    assert (out2 / "README.md").read_text().count("## Items removed from this model") == 1
    # never onto the source, never over an existing folder
    assert main(["remove", "--model", str(out), "--pattern", "1", "--out", str(out)]) == 2
    assert main(["remove", "--model", str(out), "--pattern", "1", "--out", str(out2)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_the_reference_set_picks_the_pattern_whose_contribution_the_label_marks(model, x):
    """A label that is exactly "pattern p fires": p's contribution differs the most between the
    images with and without it when p raises the finding most; checked against a hand ranking."""
    d = _parts(model, x)
    c = 0
    contrib = d.patterns[:, :, c].double().numpy()
    fires = (d.activation > 0).numpy()
    cand = [q for q in range(contrib.shape[1]) if 0 < fires[:, q].sum() < len(x)]
    p = max(cand, key=lambda q: contrib[fires[:, q], q].mean())
    label = fires[:, p]
    items, rep = items_from_reference(model, x, label, model.config.findings[c], budget=3, min_share=0.0)
    hand = contrib[label].mean(0) - contrib[~label].mean(0)
    assert items == [int(j) for j in np.argsort(-hand)[:3]]
    assert rep["items"][0]["score"] == pytest.approx(hand.max())
    # by default only items scoring at least a quarter of the top one are kept
    top3 = np.argsort(-hand)[:3]
    kept, rep = items_from_reference(model, x, label, model.config.findings[c], budget=3)
    assert kept == [int(j) for j in top3 if hand[j] >= 0.25 * hand.max()] and kept[0] == items[0]
    assert rep["min_share"] == 0.25 and rep["next"][0]["item"] == int(np.argsort(-hand)[len(kept)])
    with pytest.raises(RemovalError, match="min_share must be in"):
        items_from_reference(model, x, label, model.config.findings[c], min_share=1.5)
    with pytest.raises(RemovalError, match="with and without"):
        items_from_reference(model, x, np.ones(len(x), bool), model.config.findings[c])
    with pytest.raises(RemovalError, match="choose 'patterns' or 'concepts'"):
        items_from_reference(model, x, label, model.config.findings[c], level="latents")
    if model.concepts is not None:  # the concept level ranks concept keys the same way
        keys, _ = items_from_reference(
            model, x, label, model.config.findings[c], budget=2, level="concepts", min_share=0.0
        )
        assert len(keys) == 2 and set(keys) <= set(model.concepts.keys)
        # ... but never chooses the finding's own concept, even for a label that is that concept
        own_of = {f: f.lower().replace(" ", "_") for f in model.config.findings}
        f = next((f for f, k in own_of.items() if k in model.concepts.keys), None)
        if f is None:
            pytest.skip("the tiny model has no concept named for a finding")
        cf, j = list(model.config.findings).index(f), model.concepts.keys.index(own_of[f])
        mine = d.concept.concepts[:, j, cf]
        keys, rep = items_from_reference(
            model, x, (mine > mine.median()).numpy(), f, budget=3, level="concepts", min_share=0.0
        )
        assert own_of[f] not in keys and rep["excluded"] == [own_of[f]]
        assert own_of[f] not in [n["item"] for n in rep["next"]]


def test_the_evaluation_harness_measures_a_changed_model_as_changed(model, x):
    """lanic-eval's accuracy block of a changed model: AUROCs of its own logits (the classifier's
    minus the removed items), by sklearn on the same labels."""
    from sklearn.metrics import roc_auc_score

    from lanic_hub.evaluation.runner import SuiteData, evaluate_lanic

    d = _parts(model, x)
    p = int(d.patterns[:, :, 0].abs().sum(0).argmax())  # the pattern that moves Atelectasis most
    changed = model.without(patterns=[p])
    rng = np.random.default_rng(0)
    y = (rng.random((len(x), 5)) < 0.5).astype(float)
    y[:, 0] = (
        d.logits[:, 0] - d.patterns[:, p, 0] > float((d.logits[:, 0] - d.patterns[:, p, 0]).median())
    ).numpy()
    from datasets import Dataset

    rows = Dataset.from_dict({"split": ["test"] * len(x)})
    data = SuiteData("phantom", "x", "f", x, rows, np.array(["test"] * len(x)), y, np.ones_like(y, bool))
    got = evaluate_lanic(changed, data, n_boot=0)["accuracy"]["classifier"]["auroc"]["per_finding"]
    want = roc_auc_score(y[:, 0], (d.logits[:, 0] - d.patterns[:, p, 0]).numpy())
    assert got[0] == pytest.approx(want) and want == 1.0  # the changed model's logit ranks its own label
    before = evaluate_lanic(model, data, n_boot=0)["accuracy"]["classifier"]["auroc"]["per_finding"]
    assert before[0] == pytest.approx(roc_auc_score(y[:, 0], d.logits[:, 0].numpy())) and before[0] < 1.0


def test_a_direction_added_to_the_concepts_reads_its_own_label_back():
    """Embeddings built as μ + Σ y_k β_k + noise: the report concepts fitted on y1, y2, then a third
    direction added with its true β: its read-out recovers y3, the split stays exact, and the new
    concept is named by the set's own rule (its AUROC on the check rows)."""
    from lanic_hub.data.concepts import ConceptTable
    from lanic_hub.errors import ConfigError
    from lanic_hub.patterns.concepts import ConceptDirections

    g = torch.Generator().manual_seed(0)
    d, n = 12, 600
    mu, beta = torch.randn(d, generator=g), torch.randn(3, d, generator=g)
    y = (torch.rand(n, 3, generator=g) < 0.3).double()
    e = (mu + y.float() @ beta + 0.05 * torch.randn(n, d, generator=g)).float()
    table = ConceptTable(("cardiomegaly", "edema"), y[:, :2].numpy())
    cd = ConceptDirections.fit(e[:400], ConceptTable(table.concepts, table.values[:400]), e[400:],
                               ConceptTable(table.concepts, table.values[400:]))  # fmt: skip
    added = cd.with_direction(
        "labelled marker", beta[2], e[400:], y[400:, 2].numpy() == 1, fitted_on="by hand"
    )
    assert added.keys == ("cardiomegaly", "edema", "labelled marker") and cd.keys == ("cardiomegaly", "edema")
    got = added.presence(e)[:, 2].double()
    assert torch.corrcoef(torch.stack([got, y[:, 2]]))[0, 1] > 0.95
    yhat, r = added.split(e)
    assert torch.allclose(added.mean + yhat @ added.directions + r, e, atol=1e-4)
    sup = added.support[-1]
    assert sup["auroc"] > 0.95 and sup["named"] and sup["fitted_on"] == "by hand"
    assert added.meta["added"] == [{"key": "labelled marker", "fitted_on": "by hand"}]
    with pytest.raises(ConfigError, match="already there"):
        added.with_direction("edema", beta[2], e, y[:, 2].numpy() == 1)
    with pytest.raises(ConfigError, match="non-zero vector of 12"):
        cd.with_direction("x", torch.zeros(12), e, y[:, 2].numpy() == 1)


def test_a_concept_fitted_on_a_labelled_set_is_removed_exactly_and_saved(model, x, tiny_model, tmp_path):
    """fit_reference_concept: the label marks images far along one direction; the copy has one
    concept more, named 'labelled <name>', whose removal takes out exactly its concept part; it
    survives a save and a load; the source model keeps its concepts."""
    from lanic_hub.evaluation.removal_suite import ConceptParts
    from lanic_hub.removal import fit_reference_concept

    e = load_embeddings(tiny_model.parent / "emb").image.float()
    u = torch.nn.functional.normalize(
        torch.randn(e.shape[1], generator=torch.Generator().manual_seed(3)), dim=0
    )
    label = (e @ u > (e @ u).median()).numpy()
    K = len(model.concepts.keys)
    fitted, rep = fit_reference_concept(model, e, label, "far along u")
    # with covariates the direction is the label's coefficient beside them: a covariate that
    # carries the label's own signal (the projection it thresholds) takes most of it
    z = ((e @ u - (e @ u).mean()) / (e @ u).std()).numpy()[:, None]  # on the labels' scale (ridge)
    shared = fit_reference_concept(model, e, label, "far along u", covariates=z)[0]
    d0, d1 = fitted.concepts.directions[-1], shared.concepts.directions[-1]
    assert abs(float(d1 @ u)) < 0.5 * abs(float(d0 @ u))  # along u, the covariate took most of it
    assert rep["key"] == "labelled far along u" and fitted.concepts.keys[-1] == rep["key"]
    assert len(fitted.concepts.keys) == K + 1 and len(model.concepts.keys) == K
    # the mean difference points along u, so its read-out ranks the held-out rows (0.80 measured:
    # the 15 report directions, read out jointly, take a share of u)
    assert rep["auroc"] > 0.7
    changed = fitted.without(concepts=[rep["key"]], reason="test")
    with torch.no_grad():
        got = changed(embeddings=x).logits.numpy()
    assert np.allclose(got, ConceptParts(fitted).without([rep["key"]])(x), atol=1e-4)
    assert not np.allclose(got, fitted(embeddings=x).logits.detach().numpy(), atol=1e-4)  # it moved them
    changed.save_pretrained(tmp_path / "m")
    back = LanICModel.from_pretrained(tmp_path / "m")
    assert back.concepts.keys == fitted.concepts.keys and back.config.removed["concepts"] == [rep["key"]]
    with torch.no_grad():
        assert np.allclose(back(embeddings=x).logits.numpy(), got, atol=1e-4)
    with pytest.raises(RemovalError, match="with and without"):
        fit_reference_concept(model, e, np.ones(len(e), bool), "all")


def test_the_cli_fits_a_concept_on_a_reference_set_and_removes_it(
    tiny_lanic_model, tiny_model, tmp_path, capsys
):
    from lanic_hub.cli import main

    spec = json.loads((tiny_model.parent / "emb" / "manifest.json").read_text())["data_spec"]
    before = _digest(tiny_lanic_model)
    out = tmp_path / "fitted"
    args = ["remove", "--model", str(tiny_lanic_model), "--out", str(out), "--reference", spec]
    args += ["--label", "Support Devices", "--finding", "Atelectasis", "--split", "train", "--quiet"]
    assert main([*args, "--fit-concept"]) == 0
    said = capsys.readouterr().out
    assert "labelled Support Devices: fitted on" in said and "AUROC on" in said
    assert _digest(tiny_lanic_model) == before
    back = LanICModel.from_pretrained(out)
    assert back.concepts.keys[-1] == "labelled Support Devices"
    assert back.config.removed["concepts"] == ["labelled Support Devices"]
    assert "a concept fitted on reference set" in back.config.removed["chosen_by"]
    assert "labelled Support Devices" in (out / "README.md").read_text()
    assert (
        main(["remove", "--model", str(tiny_lanic_model), "--out", str(tmp_path / "x"), "--fit-concept"]) == 2
    )
    assert "--fit-concept needs --reference" in capsys.readouterr().err
