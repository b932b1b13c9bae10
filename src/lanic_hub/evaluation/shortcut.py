"""The failure-mode suite ``phantom-shortcut``: do explanations reveal a shortcut the model learned?

Two phantom worlds are built with the whole pipeline, identical but for one coupling: in the
*shortcut* world a device or artifact appears exactly with a finding (strength 0.9) in the
train and validate splits; the *control* world has no coupling. Both models are tested on their
own (decoupled) test split, and on the same test images with the coupling switched on.

Per world we report:

- the classifier's AUROC for the finding on coupled vs decoupled test images (the drop is what
  the shortcut costs when it stops holding);
- on test images that carry the shortcut factor, the share of the finding's positive
  contribution carried by *shortcut patterns*, defined two ways: by ground truth (the pattern's
  best factor is the shortcut factor) and by language (its name's concept is the factor);
- the hit rate: how often a shortcut pattern is among the top 5 contributors to the finding;
- the same two figures on the coupled test images that carry the factor (there are more).

An explanation method that works shows a large share and hit rate in the shortcut world and
small ones in the control world.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..utils.io import write_text_atomic

DEFAULT_SHORTCUT = "chest_tube:Atelectasis:0.9:train+validate"


@torch.no_grad()
def shortcut_figures(model, x: torch.Tensor, rows, factor: str, finding: str, top: int = 5) -> dict[str, Any]:
    """The share and hit-rate figures of one model on test images ``x`` (with ground truth ``rows``)."""
    from ..explain import decomposition_by_pattern
    from ..patterns.bank import is_named

    c = list(model.config.findings).index(finding)
    pats = model.patterns
    gt_pats = [p.id for p in pats if (p.best_factor or {}).get("factor") == factor]
    named = [p.id for p in pats if p.concept == factor and is_named(p)]
    present = np.array(rows[f"gt_{factor}"], dtype=bool)
    out: dict[str, Any] = {
        "images_with_factor": int(present.sum()),
        "shortcut_patterns_by_ground_truth": len(gt_pats),
        "shortcut_patterns_by_name": len(named),
    }
    if not present.any():
        return out
    parts = decomposition_by_pattern(
        model.classifier, model.ensemble, model.bank, x[torch.as_tensor(present)]
    )
    contrib = parts.patterns[:, :, c]  # (n, P)
    pos = contrib.clamp(min=0)
    total = pos.sum(1) + parts.unbanked[:, c].clamp(min=0)
    topk = contrib.topk(min(top, contrib.shape[1]), dim=1).indices if contrib.shape[1] else None
    for name, ids in (("ground_truth", gt_pats), ("name", named)):
        if not ids or topk is None:
            out[f"share_{name}"], out[f"hit_rate_top{top}_{name}"] = 0.0, 0.0
            continue
        sel = torch.tensor(ids)
        share = pos[:, sel].sum(1) / total.clamp(min=1e-12)
        hit = (topk.unsqueeze(-1) == sel).any(-1).any(-1)
        out[f"share_{name}"] = float(share.mean())
        out[f"hit_rate_top{top}_{name}"] = float(hit.float().mean())
    return out


def run_shortcut_suite(
    out: str | Path,
    *,
    shortcut: str = DEFAULT_SHORTCUT,
    n: int = 2000,
    seed: int = 0,
    backbone: str = "phantom",
    members: int | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    from ..backbone.embed import embed_dataset, load_embeddings
    from ..data.open import open_dataset
    from ..data.phantom import PhantomConfig, ShortcutSpec, export
    from ..modeling import LanICModel
    from ..stages import PipelineConfig, TrainOptions, build_model

    out = Path(out)
    spec = ShortcutSpec.parse(shortcut)
    t0 = time.perf_counter()
    worlds = {"shortcut": (shortcut,), "control": ()}
    res: dict[str, Any] = {
        "coupling": dataclasses.asdict(spec),
        "phantoms": n,
        "seed": seed,
        "measured_on": "each world's own test split (decoupled), and its images with the coupling on",
    }
    # the test images with the coupling switched on (same world seed: only the factor differs)
    coupled_cfg = PhantomConfig(shortcuts=(dataclasses.replace(spec, splits=("train", "validate", "test")),))
    coupled_hf = out / "coupled-test" / "hf"
    if not coupled_hf.is_dir():
        export(coupled_hf.parent, n, seed, coupled_cfg, mimic=False, progress=progress)
    for world, shortcuts in worlds.items():
        log(f"== {world} world ==")
        cfg = PipelineConfig(
            out=str(out / world),
            phantom_n=n,
            phantom_seed=seed,
            phantom_shortcuts=shortcuts,
            backbone=backbone,
            train=TrainOptions(members=members),
            counterfactual_pairs=0,  # this suite asks its own question of the two models
        )
        build_model(cfg, progress=progress, log=log)  # this suite evaluates the two models itself
        model = LanICModel.from_pretrained(out / world / "model")
        emb = load_embeddings(out / world / "embeddings")
        ds = open_dataset(f"hf:{(out / world / 'phantoms' / 'hf').resolve()}")
        rows = ds.select(emb.row_ids.tolist()).remove_columns("image")
        te = np.where(np.array(rows["split"]) == "test")[0]
        x_te = emb.image.float()[te]
        cds = open_dataset(f"hf:{coupled_hf.resolve()}")
        cemb_dir = out / "coupled-test" / f"emb-{world}"
        embed_dataset(cds, model.backbone, cemb_dir, num_workers=0, text=False, progress=progress)
        cemb = load_embeddings(cemb_dir)
        crows = cds.select(cemb.row_ids.tolist()).remove_columns("image")
        cte = np.where(np.array(crows["split"]) == "test")[0]
        c = list(model.config.findings).index(spec.finding)
        gt = f"gt_{spec.finding.lower().replace(' ', '_')}"

        a_dec = _finding_auroc(model, c, x_te, rows.select(te), gt)
        a_cou = _finding_auroc(model, c, cemb.image.float()[cte], crows.select(cte), gt)
        res[world] = {
            "auroc_coupled_test": a_cou,
            "auroc_decoupled_test": a_dec,
            "auroc_drop": a_cou - a_dec,
            **shortcut_figures(model, x_te, rows.select(te), spec.factor, spec.finding),
            "on_coupled_test": shortcut_figures(
                model, cemb.image.float()[cte], crows.select(cte), spec.factor, spec.finding
            ),
        }
    res["seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(out / "shortcut.json", json.dumps(res, indent=1))
    write_text_atomic(out / "shortcut.md", markdown(res))
    return res


@torch.no_grad()
def _finding_auroc(model, c: int, x: torch.Tensor, rows, gt: str) -> float:
    """The classifier's AUROC for finding ``c`` against ground-truth presence."""
    s = model.classifier(x)[:, c].numpy()
    y = np.array(rows[gt], dtype=int)
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def markdown(r: dict[str, Any]) -> str:
    s = r["coupling"]
    lines = [
        "# Failure-mode suite: phantom-shortcut",
        "",
        f"Shortcut: `{s['factor']}` appears exactly with **{s['finding']}** "
        f"(strength {s['strength']}) in the "
        f"{' and '.join(s['splits'])} splits of the shortcut world; the control world has no coupling. "
        f"{r['phantoms']} phantoms per world (seed {r['seed']}). Measured on {r['measured_on']}.",
        "",
        "| world | AUROC coupled test | AUROC decoupled test | drop | images with the factor | "
        "share of positive evidence: ground-truth shortcut patterns | ... named after the factor | "
        "hit rate top 5 (ground truth) | hit rate top 5 (name) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w, v in [(w, r.get(w)) for w in ("shortcut", "control")] + [
        (f"{w}, coupled test images", {**r[w], **r[w]["on_coupled_test"]})
        for w in ("shortcut", "control")
        if w in r
    ]:
        if not v:
            continue
        lines.append(
            f"| {w} | {v['auroc_coupled_test']:.3f} | {v['auroc_decoupled_test']:.3f} | "
            f"{v['auroc_drop']:+.3f} | "
            f"{v['images_with_factor']} | {v.get('share_ground_truth', 0):.3f} | "
            f"{v.get('share_name', 0):.3f} | "
            f"{v.get('hit_rate_top5_ground_truth', 0):.3f} | {v.get('hit_rate_top5_name', 0):.3f} |"
        )
    lines += [
        "",
        "Rows 1-2: images of the decoupled test split that carry the factor. Rows 3-4: the same figures on "
        "the test images with the coupling switched on (more images carry the factor there); the AUROC "
        "columns repeat rows 1-2.",
    ]
    return "\n".join(lines) + "\n"
