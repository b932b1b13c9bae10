"""The removal table's arithmetic against hand-made figures, and, on a tiny world with a planted
shortcut, removal by ground truth winning back more than random removal."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lanic_hub.evaluation.removal_suite import scr
from lanic_hub.evaluation.shortcut import _over_seeds, run_shortcut_suite
from lanic_hub.patterns import BankConfig


def test_scr_against_hand_made_figures():
    assert scr(0.80, 0.90, 1.00) == pytest.approx(0.5)  # half the gap to the control won back
    assert scr(0.80, 0.80, 0.90) == 0.0
    assert scr(0.80, 0.95, 0.90) == pytest.approx(1.5)  # past the control model
    assert scr(0.80, 0.75, 0.90) == pytest.approx(-0.5)  # worse than before
    assert math.isnan(scr(0.8, 0.9, 0.8))  # no gap: undefined, never a division by zero


def test_over_seeds_gives_mean_spread_and_each_seed():
    def one(s, a):
        return {
            "removal": {
                "concept": {
                    "by_split": {
                        "decoupled": {
                            "scr": s,
                            "auroc_before": 0.8,
                            "auroc_after": a,
                            "auroc_control": 0.9,
                            "collateral_max": 0.01,
                        }
                    }
                }
            }
        }

    r = _over_seeds({0: one(0.2, 0.82), 1: one(0.6, 0.86), 2: one(1.0, 0.90)})
    v = r["concept"]["decoupled"]
    assert v["scr"]["mean"] == pytest.approx(0.6) and v["scr"]["spread"] == pytest.approx(
        np.std([0.2, 0.6, 1.0])
    )
    assert v["auroc_after"]["per_seed"] == {"0": 0.82, "1": 0.86, "2": 0.90}


@pytest.fixture(scope="module")
def mini_phantom_clip(tmp_path_factory):
    """A phantom CLIP trained on 1,500 phantoms for 4 epochs (about 25 s): the smallest that sees
    a chest tube (the session's 1-epoch one does not, so no shortcut can be learned through it)."""
    from dataclasses import replace

    from lanic_hub.backbone.phantom_clip import PhantomClipConfig, ensure_phantom_clip

    cfg = replace(
        PhantomClipConfig(), n_images=1500, epochs=4, check_train=300, check_test=200, min_probe_auroc=0.0
    )
    return ensure_phantom_clip(cfg, root=tmp_path_factory.mktemp("mini-clip"), progress=False)


def test_a_planted_shortcut_is_removed_better_by_ground_truth_than_at_random(mini_phantom_clip, tmp_path):
    """The whole suite on a small world (600 phantoms, 8 members trained to the preset's steps,
    400 test phantoms per split, 20 pairs). The shortcut model learned the tube: on the
    anti-coupled images its AUROC is below the control model's."""
    kw = dict(
        shortcut="chest_tube:Atelectasis:0.9:train+validate",
        n=600,
        backbone=f"local-dir:{mini_phantom_clip}",
        members=8,
        # a small backbone's members agree less than real ones: merge thresholds loosened (as tiny_model)
        patterns=BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3),
        test_n=400,
        pairs=20,
        progress=False,
    )
    run_shortcut_suite(tmp_path, **kw, log=lambda *a: None)
    doc = json.loads((tmp_path / "shortcut.json").read_text())
    # run again with the same settings: the measured seed is reused, not measured again
    said = []
    again = run_shortcut_suite(tmp_path, **kw, log=said.append)
    assert any("reusing" in m for m in said) and again["removal"] == doc["removal"]
    assert again["seconds"] == doc["seconds"] > 1  # the measured time is kept, not the reuse's
    rem = doc["removal"]
    assert set(rem) == {
        "concept", "reference-set", "reference-set-concepts", "reference-concept", "oracle", "random",
        "leace", "retrain-head", "factor-absent",
    }  # fmt: skip
    for name, v in rem.items():
        assert "error" not in v, (name, v)
        assert {"scr", "auroc_before", "auroc_after", "collateral_max", "removed"} <= set(v)
        for b in v["by_split"].values():
            if name != "random":  # random: the mean of its draws' SCRs
                assert b["scr"] == pytest.approx(scr(b["auroc_before"], b["auroc_after"], b["auroc_control"]))
            assert b["collateral_max"] == pytest.approx(max(abs(x) for x in b["collateral"].values()))
            assert b["collateral_loss_max"] == pytest.approx(
                max([0.0, *(-x for x in b["collateral"].values())])
            )
    anti = {m: v["by_split"]["anti-coupled"] for m, v in rem.items()}
    assert anti["random"]["auroc_before"] < anti["random"]["auroc_control"]  # the shortcut was learned
    # ground truth beats chance: on the images where the shortcut misleads, and on the pairs
    assert anti["oracle"]["auroc_after"] > anti["random"]["auroc_after"]
    # (a ratio, not a fixed gap: the tiny world's figures move with a machine's float arithmetic;
    # measured 0.050 against 0.030 on one machine, where a fixed gap of 0.03 failed)
    assert rem["oracle"]["pair_effect_removed"] > 1.5 * rem["random"]["pair_effect_removed"]
    assert anti["concept"]["scr"] > anti["random"]["scr"] + 0.5  # the concept named for the tube
    # a concept of the reference label itself ("Support Devices" for a tube) beats chance too
    assert rem["reference-concept"]["removed"] == ["labelled Support Devices"]
    assert anti["reference-concept"]["scr"] > anti["random"]["scr"]
    # the reference set's concept level chooses the concept named for the tube first
    assert rem["reference-set-concepts"]["removed"][0] == rem["concept"]["removed"][0]
    # the reference row: the same test images rendered again without the tube
    assert anti["factor-absent"]["auroc_after"] > anti["factor-absent"]["auroc_before"]
    assert "pair_effect_removed" not in rem["factor-absent"]
    from lanic_hub.backbone.embed import load_embeddings

    saved = torch.load(tmp_path / "removal-test" / "anti-coupled" / "emb-without-chest_tube.pt")
    x = load_embeddings(tmp_path / "removal-test" / "anti-coupled" / "emb").image.float()
    changed_rows = (saved["x"] != x).any(1).numpy()
    assert changed_rows.sum() == anti["factor-absent"]["images_with_factor"] > 0
    assert len(rem["random"]["removed"]) == 10 and all(len(r) == 5 for r in rem["random"]["removed"])
    # the anti-coupled images carry the tube exactly where atelectasis is absent
    from lanic_hub.data.open import open_dataset

    ds = open_dataset(f"hf:{tmp_path / 'removal-test' / 'anti-coupled' / 'hf'}")
    assert all(a != b for a, b in zip(ds["gt_chest_tube"], ds["gt_atelectasis"], strict=True))
    md = (tmp_path / "shortcut.md").read_text()
    assert "### Removal" in md and "| concept |" in md
    # the changed model, saved with the suite's figures on its card
    from lanic_hub import LanICModel

    changed = LanICModel.from_pretrained(rem["concept"]["model_folder"])
    assert changed.config.removed["concepts"] == ["chest_tube"]
    assert (
        "| retrain-head |" in (tmp_path / "shortcut" / "model-without-chest_tube" / "README.md").read_text()
    )


def test_a_phantom_rendered_again_without_a_factor_is_the_same_image_but_that_factor(tmp_path):
    """render_without re-draws the exported phantoms: with nothing switched off it gives the very
    pixels export wrote; with the chest tube switched off it changes exactly the images with a tube."""
    import io

    from PIL import Image

    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.phantom import PhantomConfig, ShortcutSpec, export
    from lanic_hub.data.phantom.config import SPLITS
    from lanic_hub.evaluation.counterfactual import render_without

    world = PhantomConfig(shortcuts=(ShortcutSpec("chest_tube", "Atelectasis", 1.0, SPLITS, anti=True),))
    export(tmp_path, 12, 3, world, mimic=False, progress=False)
    ds = open_dataset(f"hf:{tmp_path / 'hf'}")
    idx, splits = list(range(12)), list(ds["split"])
    stored = [np.array(Image.open(io.BytesIO(im["bytes"]))) for im in ds["image"]]  # stored undecoded
    again = render_without(idx, splits, "", 3, world, num_proc=1)
    assert all(np.array_equal(a, b) for a, b in zip(again, stored, strict=True))
    off = render_without(idx, splits, "chest_tube", 3, world, num_proc=1)
    tube = np.array(ds["gt_chest_tube"], dtype=bool)
    assert 0 < tube.sum() < 12
    assert [not np.array_equal(a, b) for a, b in zip(off, stored, strict=True)] == tube.tolist()
