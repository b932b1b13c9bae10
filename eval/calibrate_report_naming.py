"""Choose the report-naming thresholds on one phantom split; the suite reports precision on another.

On a quickstart run, every bank pattern is named by :func:`lanic_hub.patterns.naming.concept_support`
from the reports of the run's own phantoms (seed 0, as the bank build does) under a grid of
thresholds, and each name is checked against the ground truth of 1,000 phantoms of seed 7003
(split A, which no model saw): right when the named concept is the pattern's factor there by
gallery purity (the factor most over-represented in its 20 strongest images, carried by >= 80% of
them) or by AUROC (>= 0.9). The loosest thresholds whose precision reaches the target are the
defaults of :class:`lanic_hub.patterns.BankConfig`; the counterfactual suite then measures naming
precision on phantoms of seed 7001, which chose nothing::

    python eval/calibrate_report_naming.py --run runs/quickstart [--target 0.9]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from lanic_hub import LanICModel
from lanic_hub.backbone.embed import load_embeddings
from lanic_hub.data.concepts import ConceptExtractor
from lanic_hub.data.open import open_dataset
from lanic_hub.data.phantom import ALL_FACTORS, PhantomConfig
from lanic_hub.evaluation.counterfactual import assign_factors, gallery_factors, phantom_split
from lanic_hub.patterns.naming import NamingRule, concept_support
from lanic_hub.patterns.phantom_check import pattern_activations

GRID = {
    "min_precision": (0.7, 0.8, 0.9, 0.95),
    "min_lift": (1.5, 2.0, 3.0),
    "min_auroc": (0.8, 0.9),
    "max_other": (1.0, 0.6, 0.4),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--out", default="docs/report_naming_calibration.json")
    args = ap.parse_args()
    model = LanICModel.from_pretrained(Path(args.run) / "model")
    emb_dir = Path(model.bank_meta.embeddings)
    ds = open_dataset(json.loads((emb_dir / "manifest.json").read_text())["data_spec"])
    emb = load_embeddings(emb_dir)
    rows = ds.select(emb.row_ids.tolist())
    acts = pattern_activations(model.ensemble, model.bank, emb.image.float()).numpy()
    a_spec, a_ds, a_emb = phantom_split(
        Path(args.run) / "eval", 1000, 7003, PhantomConfig(), model.backbone, False
    )
    a = load_embeddings(a_emb)
    a_rows = a_ds.select(a.row_ids.tolist())
    gt = np.stack([np.array(a_rows[f"gt_{f}"], dtype=bool) for f in ALL_FACTORS], 1)
    a_acts = pattern_activations(model.ensemble, model.bank, a.image.float()).numpy()
    by_auroc, _ = assign_factors(a_acts, gt, ALL_FACTORS, 0.9)
    by_gallery = gallery_factors(a_acts, gt, ALL_FACTORS, 0.8)
    table = ConceptExtractor().table(rows["report"])
    dense = np.array([bool(p.dense) for p in model.patterns])
    results = []
    for mp, ml, ma, mo in itertools.product(*GRID.values()):
        rule = NamingRule(min_precision=mp, min_lift=ml, min_auroc=ma, max_other=mo)
        named = right = 0
        for j in range(acts.shape[1]):
            s = concept_support(acts[:, j], table.values, table.concepts, dense=bool(dense[j]), rule=rule)
            if s.supported:
                named += 1
                right += s.concept in (by_auroc[j], by_gallery[j])
        results.append(
            {
                "min_precision": mp,
                "min_lift": ml,
                "min_auroc": ma,
                "max_other": mo,
                "named": named,
                "precision": right / named if named else None,
            }
        )
        print(results[-1], flush=True)
    ok = [r for r in results if r["precision"] is not None and r["precision"] >= args.target]
    best = max(ok, key=lambda r: r["named"]) if ok else None
    doc = {
        "named_from": f"the reports of {rows.num_rows} phantoms of the run's own dataset ({emb_dir})",
        "chosen_on": f"the ground truth of {a_rows.num_rows} phantoms of seed 7003 ({a_spec})",
        "patterns": int(acts.shape[1]),
        "target_precision": args.target,
        "grid": results,
        "chosen": best,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    md = [
        "# Report-naming thresholds, chosen on held-out phantoms (seed 7003)",
        "",
        f"Model: `{args.run}/model` ({doc['patterns']} patterns), named from {doc['named_from']}. "
        f"Chosen on {doc['chosen_on']}: a name is "
        "right when its concept is the pattern's factor by gallery purity (>= 0.8 of its 20 strongest "
        "images carry it) or by AUROC (>= 0.9). Target on this split: precision >= "
        f"{args.target}; the counterfactual suite reports it on phantoms of seed 7001, which chose "
        "nothing. Written by `python eval/calibrate_report_naming.py`.",
        "",
        "| min gallery precision | min lift | min graded AUROC (dense) | max other concept's share | named "
        "| precision |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: -r["named"]):
        mark = " **(chosen)**" if r is best else ""
        prec = "-" if r["precision"] is None else f"{r['precision']:.3f}"
        md.append(
            f"| {r['min_precision']}{mark} | {r['min_lift']} | {r['min_auroc']} | {r['max_other']} | "
            f"{r['named']} | {prec} |"
        )
    Path(args.out).with_suffix(".md").write_text("\n".join(md) + "\n")
    print("chosen:", best)


if __name__ == "__main__":
    main()
