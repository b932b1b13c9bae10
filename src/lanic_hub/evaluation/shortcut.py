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
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..constants import PHANTOM_N
from ..data.phantom import truth
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
    present = truth.presence_of(rows, factor)
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
    n: int = PHANTOM_N,
    seed: int = 0,
    seeds: tuple[int, ...] | None = None,
    backbone: str = "phantom",
    members: int | None = None,
    patterns=None,
    removal: bool = True,
    test_n: int = 5000,
    pairs: int = 200,
    resume: bool = True,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Build the shortcut and the control world's models, ask whether the explanations reveal
    the shortcut, and (``removal``) take it out with each method of
    :mod:`~lanic_hub.evaluation.removal_suite`, judged on ``test_n`` fresh decoupled and
    anti-coupled phantoms and ``pairs`` counterfactual pairs. ``patterns``: the pattern bank's
    :class:`~lanic_hub.patterns.BankConfig` (default: the pipeline's). ``seeds``: several world seeds
    (each in ``out/seed-<s>``), summarised in ``over_seeds``; default: ``seed`` alone, in ``out``.
    ``resume``: a seed whose results an earlier run of this suite version left with the same
    settings is not measured again (the worlds' pipelines resume by themselves)."""
    out = Path(out)
    t0 = time.perf_counter()
    seeds = tuple(seeds or (seed,))

    def one(s: int, folder: Path) -> dict[str, Any]:
        settings = {"shortcut": shortcut, "n": n, "seed": s, "backbone": backbone, "members": members,
                    "patterns": repr(patterns), "removal": removal, "test_n": test_n,
                    "pairs": pairs}  # fmt: skip
        done = folder / "shortcut.json"
        if resume and done.is_file():  # a seed finished by an earlier run of the same suite and settings
            prev = json.loads(done.read_text())
            if prev.get("suite_version") == SUITE_VERSION and prev.get("settings") == settings:
                log(f"== seed {s}: reusing {done} (same settings; --redo to measure again) ==")
                return prev
        args = (shortcut, n, s, backbone, members, patterns, removal, test_n, pairs, progress, log)
        res = _one_seed(folder, *args) | {"suite_version": SUITE_VERSION, "settings": settings}
        write_text_atomic(done, json.dumps(res, indent=1))
        return res

    if len(seeds) == 1:
        res = one(seeds[0], out)  # its own "seconds": the seed's measured time, also when reused
    else:
        per = {s: one(s, out / f"seed-{s}") for s in seeds}
        res = {**per[seeds[0]], "seeds": list(seeds), "over_seeds": _over_seeds(per)}
        res["seconds"] = round(time.perf_counter() - t0, 1)  # this run's (each seed's is in its folder)
    write_text_atomic(out / "shortcut.json", json.dumps(res, indent=1))
    write_text_atomic(out / "shortcut.md", markdown(res))
    return res


SUITE_VERSION = 5
"""Incremented when a change makes earlier per-seed results incomparable (2: factor-absent and the
concept-level reference set; 3: the reference set never chooses the finding's own concept; 4: the
reference-concept row; 5: that concept fitted with the findings' labels held fixed)."""


def _one_seed(
    out, shortcut, n, seed, backbone, members, patterns, removal, test_n, pairs, progress, log
) -> dict[str, Any]:
    from ..backbone.embed import embed_dataset, load_embeddings
    from ..data.open import open_dataset
    from ..data.phantom import PhantomConfig, ShortcutSpec, export
    from ..modeling import LanICModel
    from ..stages import PipelineConfig, TrainOptions, build_model

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
    models = {}
    for world, shortcuts in worlds.items():
        log(f"== {world} world ==")
        cfg = PipelineConfig(
            out=str(out / world),
            phantom_n=n,
            phantom_seed=seed,
            phantom_shortcuts=shortcuts,
            backbone=backbone,
            train=TrainOptions(members=members),
            **({"patterns": patterns} if patterns is not None else {}),
            counterfactual_pairs=0,  # this suite asks its own question of the two models
        )
        build_model(cfg, progress=progress, log=log)  # this suite evaluates the two models itself
        model = LanICModel.from_pretrained(out / world / "model")
        models[world] = model
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
        gt = truth.column(truth.finding_factor(spec.finding))

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
    res["seconds_worlds"] = round(time.perf_counter() - t0, 1)  # both pipelines (cached stages are skipped)
    if removal:
        t1 = time.perf_counter()
        res |= _removal(out, spec, seed, models, test_n, pairs, progress, log)
        res["seconds_removal"] = round(time.perf_counter() - t1, 1)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(out / "shortcut.json", json.dumps(res, indent=1))  # this seed's, as soon as it is done
    write_text_atomic(out / "shortcut.md", markdown(res))
    return res


def _removal(out: Path, spec, seed: int, models, test_n: int, pairs: int, progress, log) -> dict[str, Any]:
    """The removal table of one seed (:mod:`~lanic_hub.evaluation.removal_suite`), and the
    shortcut model without the factor's concept, saved with its measured card."""
    from ..backbone.embed import embed_dataset, load_embeddings
    from ..data.open import open_dataset
    from ..data.phantom import PhantomConfig, ShortcutSpec, export
    from ..data.phantom.config import SPLITS
    from ..data.schema import label_matrix
    from . import removal_suite as R

    model, control = models["shortcut"], models["control"]
    gt_cols = [truth.column(truth.finding_factor(f)) for f in model.config.findings]
    factor_col = truth.column(spec.factor)

    def embedded(name: str, cfg: PhantomConfig):
        folder = out / "removal-test" / name
        if not (folder / "hf").is_dir():
            export(folder, test_n, 10_000 + seed, cfg, mimic=False, progress=progress)
        ds = open_dataset(f"hf:{(folder / 'hf').resolve()}")
        embed_dataset(ds, model.backbone, folder / "emb", num_workers=0, text=False, progress=progress)
        emb = load_embeddings(folder / "emb")
        rows = ds.select(emb.row_ids.tolist()).select_columns([*gt_cols, factor_col, "split"])
        gt = np.array([rows[c] for c in gt_cols], dtype=bool).T
        carries = np.array(rows[factor_col], dtype=bool)
        x = emb.image.float()
        x_without = _without_factor(
            folder, spec.factor, 10_000 + seed, cfg, emb.row_ids.numpy(), np.array(rows["split"]), carries, x,
            model.backbone, progress,
        )  # fmt: skip
        return R.TestSet(name, x, gt, carries, x_without)

    log(f"== removal: {test_n} decoupled and {test_n} anti-coupled test phantoms ==")
    anti = ShortcutSpec(spec.factor, spec.finding, 1.0, SPLITS, anti=True)
    tests = [
        embedded("decoupled", PhantomConfig()),
        embedded("anti-coupled", PhantomConfig(shortcuts=(anti,))),
    ]
    # the reference images: the shortcut world's train+validate, with the labels a user has
    emb = load_embeddings(out / "shortcut" / "embeddings")
    ds = open_dataset(f"hf:{(out / 'shortcut' / 'phantoms' / 'hf').resolve()}")
    rows = ds.select(emb.row_ids.tolist()).remove_columns("image")
    keep = np.where(np.isin(np.array(rows["split"]), ["train", "validate"]))[0]
    ref_rows = rows.select(keep.tolist())
    col, what = R.reference_label(spec.factor)
    y, _ = label_matrix(ref_rows, policy="U-Zeros", findings=(spec.finding,))
    y_all, _ = label_matrix(ref_rows, policy="U-Zeros")
    ref = R.Reference(
        x=emb.image.float()[torch.from_numpy(keep)],
        label=np.array(ref_rows[col], dtype=float) == 1.0,
        label_name=what,
        finding_label=y[:, 0] == 1,
        findings=y_all.astype(float),
        gt_factor=np.array(ref_rows[factor_col], dtype=bool),
        gt_finding=truth.presence_of(ref_rows, truth.finding_factor(spec.finding)),
    )
    pair_x = None
    if pairs:
        from .counterfactual import CounterfactualConfig, draw_pairs, embed_images, render_pairs

        cf = dataclasses.replace(CounterfactualConfig(), pairs_per_factor=pairs, seed=20_000 + seed)
        drawn = draw_pairs(cf, PhantomConfig(), factors=(spec.factor,))
        on, off = render_pairs(drawn, cf, PhantomConfig(), progress=progress)
        pair_x = (embed_images(model.backbone, on), embed_images(model.backbone, off))
    found = R.methods(model, ref, spec.factor, spec.finding, seed=seed)
    table = R.removal_table(model, control, found, tests, spec.finding, pair_x)
    if "model" in found.get("concept", {}):  # the changed model, with the suite's figures on its card
        from ..removal_io import write_changed_model

        cm = found["concept"]["model"]
        d = table["concept"]["by_split"]["decoupled"]
        cm.bank_meta.removal_measured = {
            "measured_on": f"{test_n} decoupled test phantoms of seed {10_000 + seed} (ground truth), "
            "lanic-eval --suite phantom-shortcut",
            "auroc": {f: [d["aurocs_before"][f], d["aurocs_after"][f]] for f in model.config.findings},
            "suite": "\n".join(
                R.markdown({"removal": table, "seed": seed, "pairs": pairs, "budget": R.BUDGET})[2:]
            ),
        }
        dest = out / "shortcut" / f"model-without-{spec.factor}"
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        write_changed_model(out / "shortcut" / "model", cm, dest, measure=False, log=log)
        table["concept"]["model_folder"] = str(dest)
    return {
        "removal": table,
        "budget": R.BUDGET,
        "pairs": pairs,
        "test_phantoms": test_n,
        "reference_set": f"the shortcut world's train+validate images ({len(keep)}), labelled by {what}",
    }


def _without_factor(
    folder: Path, factor: str, seed: int, world, ids, splits, carries, x: torch.Tensor, bb, progress: bool
) -> torch.Tensor:
    """``x`` with each image that carries ``factor`` replaced by the embedding of the same phantom
    rendered again without it (cached in ``folder``). The first such image is also rendered again
    as it was: its embedding must match the stored one, or the re-render is not the same image."""
    from ..errors import DataError
    from .counterfactual import embed_images, render_without

    path = folder / f"emb-without-{factor}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved["ids"].numel() == len(ids) and bool((saved["ids"] == torch.as_tensor(ids)).all()):
            return saved["x"]
    at = np.where(carries)[0]
    if not len(at):
        return x
    idx = [int(ids[a]) for a in at]
    same = embed_images(bb, render_without(idx[:1], [str(splits[at[0]])], "", seed, world))
    if float(torch.nn.functional.cosine_similarity(same[0], x[at[0]], dim=0)) < 0.999:
        raise DataError(
            f"{folder}: phantom {idx[0]} rendered again does not match its stored embedding; "
            "the test set was made by another version of the renderer: delete the folder to redo it"
        )
    imgs = render_without(idx, [str(splits[a]) for a in at], factor, seed, world, progress=progress)
    out = x.clone()
    out[torch.from_numpy(at)] = embed_images(bb, imgs)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"ids": torch.as_tensor(ids), "x": out}, tmp)
    os.replace(tmp, path)
    return out


def _over_seeds(per: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (standard deviation) over seeds of each method's SCR, AUROC after and
    collateral, per test split, with the per-seed values."""
    out: dict[str, Any] = {}
    first = next(iter(per.values())).get("removal") or {}
    for m in first:
        for split in first[m].get("by_split") or {}:
            for k in (
                "scr",
                "auroc_before",
                "auroc_after",
                "auroc_control",
                "collateral_max",
                "collateral_loss_max",
            ):
                vals = [
                    r["removal"][m]["by_split"][split][k]
                    for r in per.values()
                    if k in r["removal"][m].get("by_split", {}).get(split, {})
                ]
                if not vals:
                    continue
                out.setdefault(m, {}).setdefault(split, {})[k] = {
                    "mean": float(np.mean(vals)),
                    "spread": float(np.std(vals)),
                    "per_seed": dict(zip(map(str, per), vals, strict=True)),
                }
    return out


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
    from .removal_suite import markdown as removal_markdown

    lines += removal_markdown(r)
    if r.get("over_seeds"):
        lines += ["", f"Over seeds {r['seeds']} (mean ± standard deviation):", ""]
        lines += [
            "| method | split | SCR | AUROC after | collateral max | collateral, largest loss |",
            "|---|---|---|---|---|---|",
        ]
        for m, by in r["over_seeds"].items():
            for split, v in by.items():
                ms = {k: f"{x['mean']:.3f} ± {x['spread']:.3f}" for k, x in v.items() if k != "scr"}
                lines.append(
                    f"| {m} | {split} | {v['scr']['mean']:.2f} ± {v['scr']['spread']:.2f} | "
                    f"{ms['auroc_after']} | {ms['collateral_max']} | {ms.get('collateral_loss_max', '-')} |"
                )
    return "\n".join(lines) + "\n"
