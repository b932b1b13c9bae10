"""The pattern bank of a tiny trained model: streamed scores against direct recomputation, the
exact explanation, the licence guard, bad input, and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lanic_hub import LanICModel
from lanic_hub.backbone.embed import load_embeddings
from lanic_hub.data.open import open_dataset
from lanic_hub.errors import BankMismatchError, LicenceError
from lanic_hub.explain import decomposition_by_pattern, explain_embeddings
from lanic_hub.patterns import PatternBank, ms_scores
from lanic_hub.patterns.gallery import export_thumbnails, thumbnail_strip
from lanic_hub.patterns.phantom_check import ground_truth_check, pattern_activations
from lanic_hub.trained import load_trained


@pytest.fixture(scope="module")
def parts(tiny_model, tiny_embedded):
    clf, ens = load_trained(tiny_model)
    bank = PatternBank.load(tiny_model)
    emb = load_embeddings(tiny_embedded / "emb")
    return clf, ens, bank, emb


def test_stage_counts_and_selection_thresholds(parts):
    _, ens, bank, _ = parts
    c = bank.meta.counts
    assert c["latents"] == ens.cfg.n_members * ens.cfg.n_latents
    assert c["latents"] >= c["alive"] >= c["merged"] >= c["selected"] == len(bank) > 0
    cfg = bank.meta.config
    for p in bank.patterns:
        assert p.support >= cfg["min_support"] == 2
        assert cfg["min_frequency"] <= p.frequency <= cfg["max_frequency"]
        members = (bank.latent_pattern == p.id).nonzero(as_tuple=True)[0]
        L = ens.cfg.n_latents
        assert sorted([int(g // L), int(g % L)] for g in members) == sorted(p.members)
        assert len({t for t, _ in p.members}) == p.support  # one latent per member
        assert p.category in ("cardiac", "pulmonary", "pleural", "structural", "device", "artifact")
        assert "Support Devices" in bank.meta.labels and "gt_pacemaker" in bank.meta.labels


def test_streamed_pattern_scores_equal_a_direct_recomputation(parts):
    _, ens, bank, emb = parts
    x = emb.image.float()
    acts = pattern_activations(ens, bank, x)
    ms = ms_scores(acts.double(), torch.nn.functional.normalize(x.double(), dim=1))
    for p in bank.patterns:
        j = p.id
        assert p.ms == pytest.approx(float(ms[j]), abs=1e-4)
        assert p.coverage == pytest.approx(float((acts[:, j] > 0).float().mean()), abs=1e-6)
        assert p.max == pytest.approx(float(acts[:, j].max()), rel=1e-5)
        # the gallery is the top of the activation, best first, as dataset row references
        g = p.gallery
        top = acts[:, j].topk(len(g)).values
        assert [r["activation"] for r in g] == pytest.approx(top.tolist(), rel=1e-5)
        pos = {int(r): i for i, r in enumerate(emb.row_ids)}
        assert [float(acts[pos[r["row"]], j]) for r in g] == pytest.approx(top.tolist(), rel=1e-5)
    # per-latent frequency against dense codes
    z = ens.dense_codes(x).reshape(len(x), -1)
    assert torch.allclose(bank.latent_scores["frequency"], (z > 0).float().mean(0), atol=1e-6)


def test_explanations_add_up_to_the_classifier_logit(parts):
    clf, ens, bank, emb = parts
    x = emb.image.float()[:40]
    with torch.no_grad():
        logits = clf(x)
    d = decomposition_by_pattern(clf, ens, bank, x)
    total = d.bias + d.patterns.sum(1) + d.unbanked + d.error
    assert torch.allclose(total, logits, atol=1e-4)
    ex = explain_embeddings(clf, ens, bank, x[:3])
    for b, e in enumerate(ex):
        for c, f in enumerate(e.findings):
            assert f.total == pytest.approx(float(logits[b, c]), abs=1e-4)
            assert f.probability == pytest.approx(float(torch.sigmoid(logits[b, c])), abs=1e-6)
            mags = [abs(p.contribution) for p in f.patterns]
            assert mags == sorted(mags, reverse=True)
            assert 1 <= f.n_cover <= len(f.patterns) + ens.cfg.n_members * ens.cfg.k
    doc = ex[0].to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert "not a medical device" in ex[0].render()


def test_coverage_count_is_the_smallest_set_holding_90_percent(parts):
    clf, ens, bank, emb = parts
    x = emb.image.float()[:5]
    d = decomposition_by_pattern(clf, ens, bank, x)
    from lanic_hub.decomposition import decompose, latent_logit_weights

    v, i = ens.encode(x)
    with torch.no_grad():
        full = decompose(
            v,
            i,
            clf.hidden(x),
            ens.decode(v, i).mean(1),
            clf.fc2.weight,
            clf.fc2.bias,
            ens.b_dec,
            U=latent_logit_weights(ens.W_dec, clf.fc2.weight),
        )
    lat = (i + torch.arange(ens.T).view(1, -1, 1) * ens.cfg.n_latents).reshape(len(x), -1)
    for b in range(len(x)):
        for c in range(5):
            items: dict = {}
            for g, val in zip(
                lat[b].tolist(), full.contributions[b].reshape(-1, 5)[:, c].tolist(), strict=True
            ):
                p = int(bank.latent_pattern[g])
                key = ("p", p) if p >= 0 else ("l", g)
                items[key] = items.get(key, 0.0) + val
            mags = sorted((abs(v) for v in items.values()), reverse=True)
            need = next(n for n in range(1, len(mags) + 1) if sum(mags[:n]) >= 0.9 * sum(mags) - 1e-9)
            assert int(d.n_cover[b, c]) == need


def test_bank_round_trip_and_refuses_another_ensemble(parts, tiny_model, tmp_path):
    _, ens, bank, _ = parts
    bank.save(tmp_path)
    again = PatternBank.load(tmp_path)
    assert torch.equal(again.latent_pattern, bank.latent_pattern)
    assert torch.equal(again.direction, bank.direction)
    assert again.patterns == bank.patterns and again.meta == bank.meta
    clf, other = load_trained(tiny_model)
    with torch.no_grad():
        other.W_enc[0, 0] += 1.0
    with pytest.raises(BankMismatchError, match="rebuild it"):
        LanICModel.from_components(clf, other, bank)
    with pytest.raises(Exception, match="run `lanic-hub patterns`"):
        PatternBank.load(tmp_path / "nowhere")


def test_thumbnails_only_for_redistributable_data(parts, tiny_embedded, tmp_path):
    from lanic_hub.data.schema import DataSource, attach_source

    _, _, bank, emb = parts
    ds = open_dataset(emb.manifest.data_spec)
    n = export_thumbnails(bank, ds, tmp_path / "ok", size=32, per_pattern=2, progress=False)
    files = sorted((tmp_path / "ok" / "thumbnails").iterdir())
    with_gallery = [p for p in bank.patterns if p.gallery]
    assert n == sum(min(2, len(p.gallery)) for p in bank.patterns)
    # one strip per pattern (a folder far below the Hub's 10,000 files at paper scale)
    assert [f.name for f in files] == [f"p{p.id:05d}.png" for p in with_gallery]
    from PIL import Image

    from lanic_hub.data.images import load_image

    p = with_gallery[0]
    strip = Image.open(thumbnail_strip(tmp_path / "ok", p.id))
    assert strip.size == (32 * min(2, len(p.gallery)), 32) and strip.mode == "L"
    # its first tile is the gallery's best image, made smaller (phantoms are square: no padding)
    first = load_image(ds[p.gallery[0]["row"]]["image"]).convert("L")
    first.thumbnail((32, 32))
    assert np.array_equal(np.asarray(strip)[:, :32], np.asarray(first))
    assert thumbnail_strip(tmp_path / "ok", 10**6) is None
    mimic = attach_source(
        ds, DataSource("mimic-cxr", "PhysioNet Credentialed Health Data License 1.5.0", False, "", "")
    )
    with pytest.raises(LicenceError, match="mimic-cxr"):
        export_thumbnails(bank, mimic, tmp_path / "no", progress=False)
    assert not (tmp_path / "no").exists()  # refused before writing anything


def test_ground_truth_check_matches_sklearn(parts):
    from sklearn.metrics import roc_auc_score

    _, ens, bank, emb = parts
    ds = open_dataset(emb.manifest.data_spec).select(emb.row_ids.tolist())
    acts = pattern_activations(ens, bank, emb.image.float()).numpy()
    r = ground_truth_check(acts, bank, ds)
    f = r["factors"]["chest_tube"]
    y = np.array(ds["gt_chest_tube"], dtype=bool)
    assert f["auroc_moderate_plus"] == pytest.approx(
        max(roc_auc_score(y, acts[:, j]) for j in range(len(bank)))
    )
    assert r["n_factors"] == 17 and 0 <= r["pure_patterns_fraction"] <= 1


def test_gallery_purity_against_planted_patterns(parts):
    from lanic_hub.data.phantom import ALL_FACTORS
    from lanic_hub.patterns.phantom_check import gallery_purity

    _, ens, bank, emb = parts
    ds = open_dataset(emb.manifest.data_spec).select(emb.row_ids.tolist())
    gt = np.stack([np.array(ds[f"gt_{f}"], dtype=bool) for f in ALL_FACTORS], 1)
    tube = ALL_FACTORS.index("chest_tube")
    rng = np.random.default_rng(0)
    planted = np.stack(
        [
            gt[:, tube] * rng.uniform(1, 2, len(gt)),  # fires exactly on the tube's images
            np.where(gt[:, tube], 1.0, 2.0) * (rng.random(len(gt)) < 0.5),  # prefers images without
            np.zeros(len(gt)),  # never fires
        ],
        1,
    )
    share, which, chance = gallery_purity(planted, gt, gallery=5)
    assert share[0] == 1.0 and which[0] == tube
    # the 5 strongest of the second are tube-free images: whatever it over-represents, it is not the tube
    assert which[1] != tube and which[2] == -1 and share[2] == 0.0
    # the chance level is the same statistic on random rows of the same size, in [0, 1]
    assert ((chance >= 0) & (chance <= 1)).all() and chance[2] == 0.0
    # against a hand count: the share of the top-5 rows carrying the most over-represented factor
    acts = pattern_activations(ens, bank, emb.image.float()).numpy()
    s, w, _ = gallery_purity(acts, gt, gallery=5)
    p = int(np.argmax((acts > 0).sum(0)))
    top = np.argsort(-acts[:, p], kind="stable")[:5]
    assert s[p] == pytest.approx(gt[top, w[p]].mean())
    assert w[p] == int(np.argmax(gt[top].mean(0) - gt.mean(0)))


def test_cli_patterns_and_explain_end_to_end(tiny_model, tiny_embedded, tmp_path):
    import shutil

    from lanic_hub.data.images import load_image

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    for f in ("patterns.json", "patterns.safetensors"):
        (model / f).unlink()
    cli = [sys.executable, "-m", "lanic_hub.cli"]
    r = subprocess.run(
        cli
        + [
            "patterns",
            "--model",
            str(model),
            "--embeddings",
            str(tiny_embedded / "emb"),
            "--min-support",
            "2",
            "--cos-threshold",
            "0.3",
            "--corr-threshold",
            "0.3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((model / "patterns.json").read_text())["meta"]["config"]["min_support"] == 2
    emb = load_embeddings(tiny_embedded / "emb")
    ds = open_dataset(emb.manifest.data_spec)
    img = tmp_path / "phantom.png"
    load_image(ds[0]["image"]).save(img)
    r = subprocess.run(
        cli + ["explain", "--model", str(model), "--json", str(img)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["source"] == str(img) and len(doc["findings"]) == 5
    for f in doc["findings"]:
        parts_sum = f["bias"] + sum(p["contribution"] for p in f["patterns"]) + f["unbanked"] + f["error"]
        assert parts_sum == pytest.approx(f["logit"], abs=1e-4)
        # what the explanation asserts: concepts (named or null) that add up to the same logit
        concepts_sum = f["bias"] + sum(c["contribution"] for c in f["concepts"]) + f["error"]
        assert concepts_sum == pytest.approx(f["logit"], abs=1e-5)
        assert all(set(c) >= {"name", "contribution"} for c in f["concepts"])
    assert (model / "concepts.json").is_file()  # `lanic-hub patterns` fitted the concept directions
    bad = tmp_path / "bad.tsv"
    bad.write_text("rib fracture\tbones\n")
    r = subprocess.run(
        cli
        + [
            "patterns",
            "--model",
            str(model),
            "--embeddings",
            str(tiny_embedded / "emb"),
            "--vocabulary",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2 and "unknown category 'bones'" in r.stderr


def test_ms_with_embeddings_from_another_encoder(parts, tiny_embedded, tiny_biomedclip, tmp_path):
    import shutil

    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.embed import embed_dataset
    from lanic_hub.patterns import BankConfig
    from lanic_hub.patterns.build import build_bank

    _, ens, _, emb = parts
    folder, bert, _ = tiny_biomedclip
    other_dir = tmp_path / "other-clip"
    shutil.copytree(folder, other_dir)
    shutil.copytree(bert, other_dir / "text_config")
    ds = open_dataset(emb.manifest.data_spec)
    embed_dataset(
        ds,
        load_backbone(f"local-dir:{other_dir}"),
        tmp_path / "emb2",
        num_workers=0,
        text=False,
        progress=False,
    )
    cfg = BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3)
    bank = build_bank(
        ens, tiny_embedded / "emb", ds, config=cfg, ms_embeddings=tmp_path / "emb2", progress=False
    )
    assert str(other_dir) in bank.meta.ms_encoder and "same encoder" not in bank.meta.ms_encoder
    e2 = torch.nn.functional.normalize(load_embeddings(tmp_path / "emb2").image.double(), dim=1)
    acts = pattern_activations(ens, bank, emb.image.float()).double()
    ms = ms_scores(acts, e2)
    assert [p.ms for p in bank.patterns] == pytest.approx(ms.tolist(), abs=1e-4)
    with pytest.raises(Exception, match="other rows"):
        sub = ds.select(range(100))
        embed_dataset(
            sub,
            load_backbone(f"local-dir:{other_dir}"),
            tmp_path / "emb3",
            num_workers=0,
            text=False,
            progress=False,
        )
        build_bank(
            ens, tiny_embedded / "emb", ds, config=cfg, ms_embeddings=tmp_path / "emb3", progress=False
        )


def test_a_pluggable_annotator_relabels_patterns(parts):
    import copy

    from lanic_hub.patterns import Annotation, PatternEvidence, annotate_patterns

    _, _, bank, _ = parts

    class FirstSentence:  # an annotator that names a pattern after its most typical sentence
        def annotate(self, evidence: list[PatternEvidence]) -> list[Annotation | None]:
            return [
                Annotation(e.typical_sentences[0], "artifact", "custom", 1.0, 0.0, source="test")
                if e.typical_sentences
                else None
                for e in evidence
            ]

    pats = copy.deepcopy(bank.patterns)
    n = annotate_patterns(pats, FirstSentence())
    with_sentences = [p for p in bank.patterns if p.typical_sentences]
    assert n == len(with_sentences) > 0
    for old, new in zip(bank.patterns, pats, strict=True):
        if old.typical_sentences:
            assert new.name == old.typical_sentences[0] and new.annotation["source"] == "test"
        else:
            assert new.name == old.name


def test_sample_tables_equal_the_dense_activations_on_the_sample_rows(parts, tiny_embedded):
    """The builder keeps the sample rows' activations as sparse column-sorted tables; any block
    of columns read back equals the dense codes (latents) and the explain path's pattern
    activations (candidate patterns) on those rows, and the label AUROCs read from the table
    equal sklearn's on the dense columns."""
    from sklearn.metrics import roc_auc_score

    from lanic_hub.patterns import phases as B
    from lanic_hub.patterns.bank import BankConfig, pattern_activations_from_codes
    from lanic_hub.patterns.store import RowStore

    _, ens, _, emb = parts
    cfg = BankConfig(sample_rows=37, batch_size=16)
    store = RowStore(tiny_embedded / "emb")
    sample = B.sample_rows(len(store), cfg)
    stream = B.Stream(store, store, cfg.batch_size, False)
    scan = B.score_latents(ens, stream, sample, cfg)
    cand = B.merge_across_members(ens, scan, len(sample.pos), cfg, False)
    pscan = B.score_patterns(ens, stream, sample, cand, scan, cfg.gallery_size)

    pos = {int(r): i for i, r in enumerate(emb.row_ids)}
    x = emb.image.float()[[pos[int(r)] for r in store.row_ids[sample.pos]]]
    z = ens.dense_codes(x).reshape(len(x), -1)
    want = z[:, cand.alive_ids]
    assert cand.profiles.shape == tuple(want.shape)
    assert torch.equal(cand.profiles.dense(), want)
    A = want.shape[1]
    for a, b in ((0, 1), (3, 17), (A - 5, A), (A, A)):
        assert torch.equal(cand.profiles.block(a, b), want[:, a:b])
    v, i = ens.encode(x)
    acts = pattern_activations_from_codes(v, i, ens.cfg.n_latents, cand.pattern_of, cand.merge.support)
    assert torch.equal(pscan.on_sample.dense(), acts)

    y = np.arange(len(x)) % 3 == 0  # a label on about a third of the rows
    au, lab, full = B._purity(pscan.on_sample, y[:, None], ["third"], chunk=7)
    for j in range(acts.shape[1]):
        col = acts[:, j].numpy()
        if (col > 0).any():
            assert full[j, 0] == pytest.approx(roc_auc_score(y, col))
            assert lab[j] == 0 and au[j] == full[j, 0]
        else:
            assert np.isnan(au[j]) and lab[j] == -1
