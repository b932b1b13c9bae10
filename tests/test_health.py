"""Health checks: a broken run is flagged loudly, with its likely cause; a good one passes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from lanic_hub.health import (
    EMBEDDED_DEFAULT,
    bank_checks,
    embedded_default_checks,
    failed,
    format_warning,
    training_checks,
)
from lanic_hub.records import TrainingReport


def _report(clf=0.86, probe=0.86, path=0.859, fvu=0.11, steps=260, rows=3123, positives=40, L=256, k=8):
    return TrainingReport.from_dict(
        {
            "measured_on": "test split",
            "auroc": {"classifier": {"macro": clf}, "ensemble_path": {"macro": path}},
            "baselines": {"linear_probe": {"macro": probe}},
            "fidelity": {"fvu_mean": {str(L): fvu}},
            "ensemble": {
                "steps": steps,
                "config": {"k": k, "n_latents": L},
                "multimodal": {"stream_rows": rows, "image_rows": 1475},
            },
            "labels": {s: {"Edema": {"positive": positives, "labelled": 300}} for s in ("train", "test")},
        }
    )


def test_the_documented_default_passes_every_check():
    checks = training_checks(_report()) + bank_checks({"selected": 162, "alive": 4704, "merged": 1579})
    assert not failed(checks) and format_warning(checks) == ""
    lo_hi = {k: (lo + hi) / 2 for k, (lo, hi) in EMBEDDED_DEFAULT.items()}
    rep = _report(
        clf=lo_hi["classifier_macro_auroc"],
        path=lo_hi["ensemble_path_macro_auroc"],
        fvu=lo_hi["fvu_full_level"],
    )
    assert not failed(embedded_default_checks(rep, {"selected": int(lo_hi["patterns"])}))


@pytest.mark.parametrize(
    "kw, name, cause",
    [
        ({"clf": 0.49, "probe": 0.52}, "classifier_auroc", "under-trained or unsuitable backbone"),
        ({"clf": 0.663, "probe": 0.711}, "classifier_vs_linear_probe", "Likely cause"),
        ({"fvu": 0.97, "steps": 70}, "fvu", "a schedule too short (70 optimiser steps)"),
        ({"path": 0.80}, "ensemble_path_auroc", "the explained logits lose accuracy"),
        ({"steps": 70}, "schedule", "a schedule too short"),
        ({"rows": 900, "L": 2048, "k": 32}, "data_per_latent", "the paper preset is sized for"),
        ({"clf": 0.5, "probe": 0.9, "positives": 3}, "classifier_auroc", "Edema (3 positives in train)"),
    ],
)
def test_each_out_of_band_figure_is_named_with_its_cause(kw, name, cause):
    bad = failed(training_checks(_report(**kw)))
    hit = [c for c in bad if c["name"] == name]
    assert hit, [c["name"] for c in bad]
    assert cause in hit[0]["message"]
    assert "WARNING" in format_warning(bad) and cause in format_warning(bad)


def test_no_patterns_and_few_patterns():
    (zero,) = bank_checks({"selected": 0, "alive": 10, "merged": 10})
    assert not zero.ok and "no pattern passed" in zero.message
    (few,) = bank_checks({"selected": 7})
    assert not few.ok and "mostly 'outside the bank'" in few.message


def test_the_embedded_default_out_of_its_documented_range():
    """The issue's busy-machine quickstart: AUROC 0.663 and 59 patterns."""
    bad = failed(embedded_default_checks(_report(clf=0.663, path=0.65), {"selected": 59}))
    assert {c["name"] for c in bad} == {
        "embedded_default_classifier_macro_auroc",
        "embedded_default_ensemble_path_macro_auroc",
        "embedded_default_patterns",
    }
    assert all("under-trained phantom CLIP" in c["message"] for c in bad)


@pytest.fixture(scope="module")
def random_backbone_run(tmp_path_factory):
    """A deliberately broken run: a phantom CLIP whose weights never moved from their random
    initialisation (lr 0), embedding 240 phantoms; classifier + a 4-member ensemble trained on it."""
    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.embed import embed_dataset
    from lanic_hub.backbone.phantom_clip import PhantomClipConfig, ensure_phantom_clip
    from lanic_hub.data.phantom import PhantomConfig, export, load_phantom_dataset
    from lanic_hub.training import train_from_embeddings

    root = tmp_path_factory.mktemp("broken")
    cfg = replace(
        PhantomClipConfig(), n_images=64, epochs=1, lr=0.0, batch_size=32, check_train=80, check_test=40
    )
    cfg = replace(cfg, min_probe_auroc=0.0)
    clip = ensure_phantom_clip(cfg, root=root / "cache", progress=False, num_proc=1)
    world = PhantomConfig(prevalence_scale=2.0, split_fractions=(0.6, 0.2, 0.2))
    hf = export(root / "ph", 240, seed=4, cfg=world, mimic=False, progress=False)["hf"]
    embed_dataset(
        load_phantom_dataset(hf),
        load_backbone(f"local-dir:{clip}"),
        root / "emb",
        num_workers=0,
        text=False,
        progress=False,
        data_spec=f"hf:{hf}",
    )
    # 20 steps: the schedule an epoch budget gave such a small run (the checks are about it)
    rep = train_from_embeddings(root / "emb", root / "train", n_members=4, steps=20, progress=False)
    return root, rep


def test_a_random_backbone_run_is_flagged(random_backbone_run):
    root, rep = random_backbone_run
    bad = {c["name"]: c for c in failed(rep.health)}
    assert rep.auroc.classifier.macro < 0.7  # what the checks are about
    assert "classifier_auroc" in bad and "fvu" in bad
    assert "under-trained or unsuitable backbone" in bad["classifier_auroc"]["message"]
    saved = json.loads((root / "train" / "fidelity.json").read_text())
    assert saved["health"] == rep.health


def test_train_cli_says_so_loudly_and_strict_fails(random_backbone_run, capsys):
    from lanic_hub.cli import main

    root, _ = random_backbone_run
    out = Path(root) / "train-cli"
    args = ["train", "--embeddings", str(root / "emb"), "--out", str(out), "--members", "2", "--epochs", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "WARNING:" in err and "health check" in err and "near chance" in err
    shutil.rmtree(out)
    assert main([*args, "--strict"]) == 3


def test_a_plateau_run_is_judged_by_its_held_out_curve():
    rep = _report()
    conv = {"curve": [[100, 0.05], [200, 0.04]], "measured_on": "2048 held-out rows", "tol": 0.01}
    rep.ensemble.convergence = {**conv, "converged": True, "plateau_step": 200, "decay": [200, 240]}
    ok = [c for c in training_checks(rep) if c.name == "converged"]
    assert ok and ok[0].ok and "plateau at step 200 (2048 held-out rows)" in ok[0].message
    rep.ensemble.convergence = {**conv, "converged": False, "plateau_step": None, "decay": [216, 260]}
    bad = [c for c in failed(training_checks(rep)) if c["name"] == "converged"]
    assert bad and "still falling at the maximum of 260 steps" in bad[0]["message"]
