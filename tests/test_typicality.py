"""The out-of-distribution guard: calibrated false alarms, flags on unlike images, in every output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanic_hub.typicality import fit_typicality


def test_the_threshold_keeps_its_false_alarm_rate_and_flags_far_points():
    g = torch.Generator().manual_seed(0)
    cov = torch.randn(16, 16, generator=g)
    draw = lambda n: torch.randn(n, 16, generator=g) @ cov * 0.1 + 3.0  # noqa: E731
    ref, rep = fit_typicality(draw(4000), draw(2000), false_alarm=0.01)
    fresh = ref.outside(draw(20000)).float().mean()
    assert 0.005 < float(fresh) < 0.02, fresh
    assert rep["fit_rows"] == 4000 and rep["calibration_rows"] == 2000 and rep["threshold"] == ref.threshold
    far = draw(100) + 5.0
    assert bool(ref.outside(far).all())
    # the distance is the squared Mahalanobis distance to the fitted mean and covariance
    x = draw(3)
    d = x - ref.mean
    assert torch.allclose(ref.distance(x), ((d @ ref.precision) * d).sum(1))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small but trained model (the shared tiny phantom CLIP, 3 steps on 96 images, cannot tell a
    radiograph from a phantom): a phantom CLIP of 36 steps on 800 phantoms, then the pipeline on 800
    more with 4 members trained 40 steps."""
    from dataclasses import replace

    from lanic_hub import LanICModel
    from lanic_hub.backbone.phantom_clip import PhantomClipConfig, ensure_phantom_clip
    from lanic_hub.patterns import BankConfig
    from lanic_hub.pipeline import EmbedOptions, PipelineConfig, TrainOptions, run_pipeline

    root = tmp_path_factory.mktemp("ood")
    clip_cfg = replace(
        PhantomClipConfig(), n_images=800, epochs=3, batch_size=64, check_train=120, check_test=80
    )
    clip = ensure_phantom_clip(replace(clip_cfg, min_probe_auroc=0.0), root=root / "cache", progress=False)
    cfg = PipelineConfig(
        out=str(root / "run"),
        phantom_n=800,
        backbone=f"local-dir:{clip}",
        embed=EmbedOptions(text=False),
        train=TrainOptions(members=4, steps=40),  # the guard reads embeddings, not the codes
        patterns=BankConfig(min_support=2, sample_rows=800),
        evaluate=False,
    )
    run_pipeline(cfg, progress=False, log=lambda *a: None)
    return LanICModel.from_pretrained(root / "run" / "model")


def test_ood_flags_nih_and_non_radiographs_not_held_out_phantoms(model, shared_data):
    from lanic_hub.evaluation.ood import ood_figures

    r = ood_figures(model, shared_data / "cxr_real", n_other=200, n_phantoms=200)
    assert r["non_radiographs"]["images"] == 200 and set(r["non_radiographs"]["by_kind"]) == {
        "noise",
        "text",
        "colour",
        "flat",
    }
    assert r["non_radiographs"]["flagged_share"] >= 0.9
    assert r["nih"]["images"] == 93 and r["nih"]["flagged_share"] >= 0.85
    assert r["held_out_phantoms"]["flagged_share"] <= 0.05
    cal = model.bank_meta.typicality
    assert cal["false_alarm_target"] == 0.01 and cal["fit_rows"] > 400 and cal["calibration_rows"] > 40


def test_every_prediction_and_explanation_reports_it(model, shared_data):
    nih = str(next((shared_data / "cxr_real" / "images").glob("*_1024.png")))
    p = model.predict(nih)
    assert p.out_of_distribution is True and p.typicality_distance > model.config.typicality_threshold
    assert "unlike the images the model was trained on" in repr(p) and set(p) == set(model.config.findings)
    ex = model.explain(nih)
    assert ex.out_of_distribution and ex.notes[0].startswith("WARNING: this image is unlike")
    text = ex.render()
    assert text.index("WARNING: this image is unlike") < text.index("probability")
    assert ex.to_dict()["out_of_distribution"] is True
    out = model(embeddings=model.embed_images([nih]))
    assert out.typicality_distance.shape == (1,) and bool(out.out_of_distribution[0])
    from lanic_hub.data.phantom import generate

    st = next(iter(generate(1, seed=7200, progress=False)))
    assert model.explain(st.image).out_of_distribution is False
    np.testing.assert_allclose(sum(model.predict(st.image).values()), sum(model.predict(st.image).values()))
