"""Transcoder variants judged by the counterfactual suite, with the classifier held fixed.

On a quickstart run's embeddings and classifier, each variant trains its own ensemble (on the same
stream the quickstart trains on: train images plus report and sentence texts, and optionally
extra phantoms the classifier never saw), builds its pattern bank, and is measured by
``phantom-counterfactual`` (no baselines). The table says which design choices move the figures
that matter: the median share of a moved logit carried by the removed factor's patterns, and the
named top-3 hit rate.

    python eval/compare_counterfactual_variants.py --run runs/quickstart --members 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lanic_hub.records import EvalResults

#: name -> (TranscoderConfig overrides, TrainConfig overrides, extra phantoms for the transcoders)
VARIANTS: dict[str, tuple[dict, dict, int]] = {
    "default (Matryoshka 8/32/256, k=8, random init)": ({}, {}, 0),
    "encoder init from data rows": ({"encoder_init": "data"}, {}, 0),
    "plain TopK (one level)": ({"levels": (256,)}, {}, 0),
    "plain TopK, data init": ({"levels": (256,), "encoder_init": "data"}, {}, 0),
    "k = 4": ({"k": 4}, {}, 0),
    "k = 16": ({"k": 16}, {}, 0),
    "JumpReLU (L0 1e-2)": ({"activation": "jumprelu"}, {}, 0),
    "JumpReLU (L0 5e-2)": ({"activation": "jumprelu", "l0_coef": 0.05}, {}, 0),
    "JumpReLU (L0 5e-2), plain": ({"activation": "jumprelu", "l0_coef": 0.05, "levels": (256,)}, {}, 0),
    "+10k phantoms": ({}, {}, 10000),
    "+10k phantoms, plain TopK": ({"levels": (256,)}, {}, 10000),
    "+10k phantoms, plain TopK, data init": ({"levels": (256,), "encoder_init": "data"}, {}, 10000),
    "+10k phantoms, JumpReLU, data init": ({"activation": "jumprelu", "encoder_init": "data"}, {}, 10000),
    "+10k phantoms, L = 1024 plain, data init": (
        {"n_latents": 1024, "levels": (1024,), "encoder_init": "data"},
        {},
        10000,
    ),
}


def extra_embeddings(run: Path, n: int, out: Path) -> torch.Tensor:
    """Image embeddings of ``n`` phantoms of seed 5000 by the run's backbone (cached in ``out``)."""
    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.embed import embed_dataset, load_embeddings, read_manifest
    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.phantom import export

    folder = out / f"extra-{n}"
    if not (folder / "emb" / "manifest.json").is_file():
        hf = export(folder / "ph", n, seed=5000, mimic=False, num_proc=2, progress=False)["hf"]
        man = read_manifest(run / "embeddings")
        embed_dataset(
            open_dataset(f"hf:{hf}"),
            load_backbone(man.backbone.spec),
            folder / "emb",
            num_workers=2,
            text=False,
            progress=False,
            data_spec=f"hf:{hf}",
        )
    return load_embeddings(folder / "emb").image.float()


def run_variant(run: Path, name: str, members: int, out: Path) -> dict:
    from dataclasses import replace

    from lanic_hub.backbone.embed import load_embeddings
    from lanic_hub.classifier import macro_auroc
    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.schema import label_matrix
    from lanic_hub.evaluation.counterfactual import run_counterfactual_suite
    from lanic_hub.modeling import LanICModel
    from lanic_hub.patterns.build import build_bank
    from lanic_hub.training import PRESETS, load_trained, text_stream
    from lanic_hub.transcoders import TrainConfig, TranscoderConfig, fidelity, train_ensemble

    over, train_over, extra = VARIANTS[name]
    t0 = time.perf_counter()
    clf, _ = load_trained(run / "train")
    emb = load_embeddings(run / "embeddings")
    ds = open_dataset(emb.manifest.data_spec)
    split = np.array(ds.select(emb.row_ids.tolist())["split"])
    x = emb.image.float()
    tr, te = np.where(split == "train")[0], np.where(split == "test")[0]
    x_fit = torch.cat([x[tr], text_stream(emb, x[tr], set(emb.row_ids[tr].tolist()))])
    if extra:
        x_fit = torch.cat([x_fit, extra_embeddings(run, extra, out)])
    with torch.no_grad():
        h_fit, h_te = clf.hidden(x_fit), clf.hidden(x[te])
    p = PRESETS["phantom"]
    tcfg = TranscoderConfig(
        d_in=x.shape[1], d_out=h_fit.shape[1], **{**p["ensemble"], "n_members": members, **over}
    )
    # 20 passes over the stream (the quickstart's 260 steps on its own rows, 1,040 with +10k)
    schedule = replace(TrainConfig(**p["train"]), steps=None, epochs=20, **train_over)
    ens, rep = train_ensemble(x_fit, h_fit, tcfg, schedule, progress=False)
    y, m = label_matrix(ds.select(emb.row_ids[te].tolist()))
    with torch.no_grad():
        v, i = ens.encode(x[te])
        path = macro_auroc(clf.head(ens.decode(v, i).mean(1)).numpy(), y, m)[0]
    bank = build_bank(ens, run / "embeddings", ds, data_spec=emb.manifest.data_spec, progress=False)
    folder = out / name.replace(" ", "_").replace("/", "-")
    LanICModel.from_components(clf, ens, bank).save_pretrained(folder / "model")
    cf = run_counterfactual_suite(
        [str(folder / "model")], folder / "cf", baselines=False, progress=False, log=lambda *a: None
    )
    r = EvalResults.read(cf["written"][0]).metrics.counterfactual
    fid = fidelity(ens, x[te], h_te)
    return {
        "variant": name,
        "members": members,
        "stream_rows": len(x_fit),
        "steps": rep["steps"],
        "fvu": float(np.mean(fid["fvu"][str(tcfg.n_latents)])),
        "dead_train": float(np.mean(fidelity(ens, x_fit, h_fit)["dead_fraction"])),
        "ensemble_path_auroc": path,
        "patterns": len(bank),
        "passing": f"{len(r['passing_factors'])} / {len(r['eligible_factors'])}",
        "median_factor_share": r["median_factor_share_all"],
        "named_top3_hit": r["named_top_hit_rate_all"],
        "items_with_a_factor": r["items_with_a_factor"],
        "mean_error_share": float(np.mean([f.get("mean_error_share", 0) for f in r["factors"].values()])),
        "mean_unbanked_share": float(
            np.mean([f.get("mean_unbanked_share", 0) for f in r["factors"].values()])
        ),
        "mean_context_share": r["mean_context_share_all"],
        "context_patterns": sum(bool(p.dense) for p in bank.patterns),
        "seconds": round(time.perf_counter() - t0),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart", help="a quickstart run folder (embeddings, train)")
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--out", default="runs/counterfactual-variants")
    ap.add_argument("--only", nargs="*", default=None, help="variants whose names contain these words")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in VARIANTS if not args.only or any(o in n for o in args.only)]
    rows = []
    for n in names:
        rows.append(run_variant(Path(args.run), n, args.members, out))
        print(json.dumps(rows[-1]), flush=True)
    (out / "variants.json").write_text(json.dumps(rows, indent=1))
    cols = [
        "variant",
        "stream_rows",
        "steps",
        "fvu",
        "dead_train",
        "ensemble_path_auroc",
        "patterns",
        "passing",
        "median_factor_share",
        "named_top3_hit",
        "items_with_a_factor",
        "context_patterns",
        "mean_context_share",
        "mean_error_share",
        "mean_unbanked_share",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in rows:
        lines.append(
            "| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
        )
    (out / "variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
