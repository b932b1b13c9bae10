"""The suite's run: draw and render the pairs once, then for each model (and, for the first, the
baselines) assign factors, measure, and write one results file per method and the leaderboard."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ... import smoke
from ...backbone.embed import load_embeddings
from ...constants import FINDINGS
from ...constants import VERSION as __version__
from ...data.phantom import ALL_FACTORS, PhantomConfig, truth
from ...modeling import LanICModel
from ...records.results import EvalResults
from ..leaderboard import write_leaderboard
from ..records import SCHEMA_VERSION
from ..runner import write_results
from .attribution import BankAttributor, ConceptAttributor, ground_truth_directions, named_concepts
from .baselines import baseline_attributors
from .metrics import (
    assign_factors,
    embedding_figures,
    evaluate_method,
    gallery_factors,
    naming_precision,
    naming_precision_either,
)
from .pairs import CounterfactualConfig, draw_pairs, embed_images, phantom_split, render_pairs
from .report import SUITE, markdown


def smoke_sized(cfg: CounterfactualConfig | None = None) -> CounterfactualConfig:
    """The suite's draw: ``cfg`` (None: the default), or a few pairs per factor in smoke mode
    (:mod:`lanic_hub.smoke`)."""
    cfg = cfg or CounterfactualConfig()
    if not smoke.active():
        return cfg
    return replace(
        cfg,
        pairs_per_factor=min(cfg.pairs_per_factor, 4),
        assign_n=min(cfg.assign_n, 200),
        baseline_n=min(cfg.baseline_n, smoke.PHANTOMS),
    )


def run_counterfactual_suite(
    models: list[str],
    out,
    *,
    cfg: CounterfactualConfig | None = None,
    world: PhantomConfig | None = None,
    baselines: bool = True,
    baseline_members: int | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Evaluate each model (and, for the first, the baselines) on the same counterfactual pairs;
    write one results JSON per method under ``<out>/results/phantom-counterfactual/`` and the
    leaderboard."""

    cfg = smoke_sized(cfg)
    world = world or PhantomConfig()
    out = Path(out)
    t0 = time.perf_counter()
    pairs = draw_pairs(cfg, world)
    on_imgs, off_imgs = render_pairs(pairs, cfg, world, progress)
    t_render = time.perf_counter() - t0
    log(
        f"{SUITE}: {len(pairs)} pairs ({len({p.index for p in pairs})} cases, "
        f"{len({p.index for p in pairs}) + len(pairs)} images) rendered in {t_render:.0f} s"
    )
    written, failed = [], {}
    for n_model, mid in enumerate(models):
        t1 = time.perf_counter()
        model = LanICModel.from_pretrained(mid)
        bb = model.backbone
        e_on, e_off = embed_images(bb, on_imgs), embed_images(bb, off_imgs)
        a_spec, a_ds, a_emb = phantom_split(out, cfg.assign_n, cfg.seed + 1, world, bb, progress)
        emb = load_embeddings(a_emb)
        x_assign = emb.image.float()
        rows = a_ds.select(emb.row_ids.tolist())
        gt = truth.presence(rows)
        emb_fig = embedding_figures(e_on, e_off, pairs, x_assign, gt)
        methods: list[tuple[str, Any, str]] = [
            (
                f"LanIC model (bank patterns) [{mid}]",
                BankAttributor(
                    "LanIC model (bank patterns)",
                    model.classifier,
                    model.ensemble,
                    model.bank,
                    named_concepts(model.patterns),
                ),
                "lanic",
            )
        ]
        if model.concepts is not None:
            methods.append(
                (
                    f"LanIC model (report concepts) [{mid}]",
                    ConceptAttributor(
                        "LanIC model (report concepts)",
                        model.classifier,
                        model.ensemble,
                        model.bank,
                        model.concepts,
                    ),
                    "lanic",
                )
            )
        methods.append(
            (
                f"ceiling: ground-truth concept directions [{mid}]",
                ConceptAttributor(
                    "ceiling: ground-truth concept directions",
                    model.classifier,
                    model.ensemble,
                    model.bank,
                    ground_truth_directions(x_assign, gt),
                ),
                "ceiling",
            )
        )
        if baselines and n_model == 0:
            tb = time.perf_counter()
            methods += [
                (f"{a.name} [{mid}]", a, "baseline")
                for a in baseline_attributors(model, out, cfg, world, baseline_members, progress, log)
            ]
            log(f"  baselines built in {time.perf_counter() - tb:.0f} s")
        for name, att, kind in methods:
            t2 = time.perf_counter()
            acts_assign = att.activations(x_assign).numpy()
            item_factor, _ = assign_factors(acts_assign, gt, ALL_FACTORS, cfg.assign_auroc)
            item_gallery = gallery_factors(acts_assign, gt, ALL_FACTORS, cfg.gallery_purity)
            visible = {
                f for f, v in emb_fig.items() if (v.get("probe_auroc_on_pairs") or 0.0) >= cfg.visible_at
            }
            res = evaluate_method(att, e_on, e_off, pairs, item_factor, cfg, visible=visible)
            res["method"] = att.name
            res["items"] = len(att.concepts)
            res["named_items"] = sum(c is not None for c in att.concepts)
            res["items_with_a_factor"] = sum(f is not None for f in item_factor)
            res["naming"] = naming_precision(att.concepts, item_factor)
            res["naming_gallery"] = naming_precision(att.concepts, item_gallery)
            res["naming_either"] = naming_precision_either(att.concepts, item_factor, item_gallery)
            res["embedding"] = emb_fig
            doc = _results_doc(
                name,
                kind,
                res,
                cfg,
                world,
                pairs,
                a_spec,
                time.perf_counter() - t2 + (time.perf_counter() - t1 if kind == "lanic" else 0),
            )
            written.append(str(write_results(out, SUITE, name, doc)))
    board = write_leaderboard(out, SUITE, render=markdown)
    return {
        "written": written,
        "failed": failed,
        "leaderboard": board,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _results_doc(name, kind, res, cfg, world, pairs, assign_spec, seconds) -> EvalResults:
    doc = {
        "schema": SCHEMA_VERSION,
        "model": {"id": name, "revision": None, "kind": kind},
        "suite": SUITE,
        "findings": list(FINDINGS),
        "dataset": {
            "spec": f"phantom counterfactual pairs (seed {cfg.seed}, {cfg.pairs_per_factor} per factor); "
            f"item factors assigned on {assign_spec}",
            "fingerprint": None,
            "split": "pairs",
            "rows": 2 * len(pairs),
        },
        "config": asdict(cfg),
        "world": world.to_dict(),
        "lanic_hub": __version__,
        "seed": cfg.seed,
        "seconds": round(seconds, 2),
        "metrics": {"counterfactual": res},
    }
    return EvalResults.from_dict(doc, f"{SUITE} results of {name}")
