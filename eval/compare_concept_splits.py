"""Ways to split an explanation over input-level concepts, judged by the counterfactual suite.

Every candidate keeps bias + items + error = logit exactly: an active latent is linear in e, so
its contribution splits over any exact decomposition ``e = m + Σ_j a_j D_j + r`` of the image.
The candidates differ in the dictionary (D, a):

- report concept directions (the model's own, :mod:`lanic_hub.patterns.concepts`), with ridge
  and read-out variants;
- a TopK SAE on e (an input-level dictionary), its latents named from the training reports by the
  pattern naming rule (:mod:`lanic_hub.patterns.naming`);
- the ceiling: directions fitted on ground-truth factors.

All on the suite's pairs, with the model's classifier and ensemble held fixed::

    python eval/compare_concept_splits.py --run runs/quickstart [--out runs/concept-splits]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lanic_hub import LanICModel
from lanic_hub.backbone.embed import load_embeddings
from lanic_hub.data.concepts import ConceptExtractor
from lanic_hub.data.open import open_dataset
from lanic_hub.data.phantom import ALL_FACTORS, PhantomConfig
from lanic_hub.evaluation.counterfactual import (
    ConceptAttributor,
    CounterfactualConfig,
    _split,
    draw_pairs,
    embed_images,
    evaluate_method,
    ground_truth_directions,
    render_pairs,
)
from lanic_hub.patterns.concepts import ConceptDirections, fit_concept_directions
from lanic_hub.patterns.naming import NamingRule, concept_support
from lanic_hub.transcoders import TranscoderConfig
from lanic_hub.transcoders.train import TrainConfig, train_ensemble


@dataclass
class Clipped(ConceptDirections):
    """Report directions whose read-out is clipped at 0 (a concept is present or not, never
    negatively so); the residual takes the rest, so the split stays exact."""

    def presence(self, e: torch.Tensor) -> torch.Tensor:
        return super().presence(e).clamp(min=0)


class SAEDictionary:
    """A TopK SAE on e as the split's dictionary: e = b + Σ_j a_j D_j + ε, its latents named
    after report concepts by the pattern naming rule."""

    def __init__(self, sae, keys: list[str | None]) -> None:
        self.sae = sae
        self.mean = sae.b_dec[0].detach().float()
        self.directions = sae.W_dec[0].detach().float()
        self.keys = tuple(k or f"latent {j}" for j, k in enumerate(keys))
        self.names = list(self.keys)
        self.named = torch.tensor([k is not None for k in keys])

    def presence(self, e: torch.Tensor) -> torch.Tensor:
        return self.sae.dense_codes(e.float())[:, 0]

    def split(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.presence(e)
        return a, e.float() - self.mean - a @ self.directions


def train_sae(x: torch.Tensor, n_latents: int, k: int, steps: int, seed: int = 0):
    cfg = TranscoderConfig(
        d_in=x.shape[1],
        d_out=x.shape[1],
        n_latents=n_latents,
        k=k,
        n_members=1,
        levels=(n_latents,),
        seed=seed,
    )
    sae, _ = train_ensemble(x, x, cfg, TrainConfig(steps=steps, batch_size=256), progress=False)
    sae = sae.eval()
    with torch.no_grad():
        v, i = sae.encode(x)
        fvu = float((sae.decode(v, i)[:, 0] - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    return sae, fvu


def name_sae(sae, x: torch.Tensor, table_values: np.ndarray, keys: tuple[str, ...], rule: NamingRule):
    z = sae.dense_codes(x)[:, 0].numpy()
    freq = (z > 0).mean(0)
    out = []
    for j in range(z.shape[1]):
        s = concept_support(z[:, j], table_values, keys, dense=bool(freq[j] > 0.5), rule=rule)
        out.append(s.concept if s.supported else None)
    return out


def _mean_share(r: dict, part: str) -> float:
    vals = [v.get(f"mean_{part}_share", np.nan) for v in r["factors"].values() if v.get("moved_logits")]
    return float(np.nanmean(vals)) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--out", default="runs/concept-splits")
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="only the report directions and the ceiling")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = LanICModel.from_pretrained(run / "model")
    bb = model.backbone
    cfg = CounterfactualConfig(pairs_per_factor=args.pairs)
    world = PhantomConfig()
    pairs = draw_pairs(cfg, world)
    on, off = render_pairs(pairs, cfg, world)
    e_on, e_off = embed_images(bb, on), embed_images(bb, off)
    _, a_ds, a_emb = _split(run / "eval", cfg.assign_n, cfg.seed + 1, world, bb, progress=False)
    emb = load_embeddings(a_emb)
    x_assign = emb.image.float()
    rows = a_ds.select(emb.row_ids.tolist())
    gt = np.stack([np.array(rows[f"gt_{f}"], dtype=bool) for f in ALL_FACTORS], 1)

    train_emb = Path(model.bank_meta["embeddings"])
    ds = open_dataset(json.loads((train_emb / "manifest.json").read_text())["data_spec"])
    tr = load_embeddings(train_emb)
    tr_rows = ds.select(tr.row_ids.tolist())
    train_pos = np.array(tr_rows["split"]) == "train"
    x_train = tr.image.float()[torch.from_numpy(train_pos)]
    table = ConceptExtractor().table(np.array(tr_rows["report"], dtype=object)[train_pos].tolist())

    variants: dict[str, object] = {}
    for readout in ("ols", "gls"):
        for attribution, perms in (("linear", 0), ("shapley", 8)):
            d = fit_concept_directions(train_emb, ds, log=lambda *a: None, readout=readout)
            d.attribution, d.permutations = attribution, perms
            label = "per-image linear map" if attribution == "linear" else f"Shapley, {perms} permutations"
            variants[f"report directions, {readout.upper()} read-out, {label}"] = d
    if not args.quick:
        clipped = Clipped(
            **{f: getattr(model.concepts, f) for f in ("keys", "mean", "directions", "readout")}
        )
        clipped.support, clipped.meta, clipped.attribution = (
            model.concepts.support,
            model.concepts.meta,
            "linear",
        )
        variants["report directions, OLS read-out clipped at 0, linear"] = clipped
        for L, k in ((512, 16),):
            sae, fvu = train_sae(x_train, L, k, steps=1500)
            names = name_sae(sae, x_train, table.values, table.concepts, NamingRule())
            variants[f"TopK SAE on e (L={L}, k={k}, FVU {fvu:.3f}), report-named, linear"] = SAEDictionary(
                sae, names
            )
    for attribution in ("linear", "shapley"):
        d = ground_truth_directions(x_assign, gt)
        d.attribution = attribution
        variants[f"ceiling: ground-truth directions, {attribution}"] = d

    rows_out = []
    for name, d in variants.items():
        att = ConceptAttributor(name, model.classifier, model.ensemble, model.bank, d)
        item_factor = [None] * len(att.concepts)
        r = evaluate_method(att, e_on, e_off, pairs, item_factor, cfg)
        g = r["groups"]
        row = {
            "variant": name,
            "named items": int(sum(c is not None for c in att.concepts)),
            **{
                f"{k} share / signed / hit": f"{g[k].get('median_named_share', 0):.3f} / "
                f"{g[k].get('median_signed_named_share', 0):.3f} / {g[k].get('named_top_hit_rate', 0):.3f}"
                for k in ("findings", "devices", "artifacts", "all")
            },
            "named mass": f"{r['median_named_mass']:.3f}",
            "mean |Δ| shares (reference, residual, error)": " / ".join(
                f"{_mean_share(r, p):.3f}" for p in ("reference", "residual", "error")
            ),
        }
        rows_out.append(row)
        print(row, flush=True)
    head = list(rows_out[0])
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows_out]
    (out / "concept_splits.md").write_text("\n".join(md) + "\n")
    (out / "concept_splits.json").write_text(json.dumps(rows_out, indent=1))
    print("\n".join(md))
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
