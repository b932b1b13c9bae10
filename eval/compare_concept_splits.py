"""Ways to split an explanation over input-level concepts, judged by the counterfactual suite.

Every candidate keeps bias + items + error = logit exactly: an active latent is linear in e, so
its contribution splits over any exact decomposition ``e = m + Σ_j a_j D_j + r`` of the image.
The candidates differ in the dictionary (D, a):

- report concept directions (the model's own, :mod:`lanic_hub.patterns.concepts`), with ridge
  and read-out variants;
- a TopK SAE on e (an input-level dictionary), its latents named from the training reports by the
  pattern naming rule (:mod:`lanic_hub.patterns.naming`);
- the ceiling: directions fitted on ground-truth factors.

and, with ``--retrained`` (the model's classifier held fixed, a new ensemble of ``--members``
trained on the model's training images, with its own bank named from the reports):

- a control: the same Matryoshka TopK ensemble, retrained as is;
- (b) transcoders that must also reconstruct e: the target is ``[h, s·e]`` with
  ``s² = λ Var(h) / Var(e)``, so the loss is ``(FVU_h + λ FVU_e) / (1 + λ)`` per level; only the
  h half of each decoder row is kept for the explanation (``lanic-hub train --input-weight λ``
  trains the model's own ensemble this way);
- (c) a skip transcoder: ``h ≈ A e + a + Σ z U``, with the affine skip fitted first by least
  squares and the transcoders trained on what it leaves; the skip is an unnamed item at the
  pattern level and splits linearly (hence exactly, and equal to its Shapley split) over the
  concept directions at the concept level.

Each retrained ensemble is judged at the pattern level (its bank's report names) and at the
concept level (the model's concept directions, Shapley).

    python eval/compare_concept_splits.py --run runs/quickstart [--out runs/concept-splits] [--retrained]
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
    BankAttributor,
    ConceptAttributor,
    CounterfactualConfig,
    Parts,
    draw_pairs,
    embed_images,
    evaluate_method,
    ground_truth_directions,
    named_concepts,
    phantom_split,
    render_pairs,
)
from lanic_hub.patterns.concepts import ConceptDirections, fit_concept_directions
from lanic_hub.patterns.naming import NamingRule, concept_support
from lanic_hub.transcoders import TranscoderConfig
from lanic_hub.transcoders.fidelity import hidden_part, with_input_target
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


# ----------------------------------------------------------------------------- retrained candidates


def affine_skip(x: torch.Tensor, h: torch.Tensor, ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (d, H), a (H,)): the least-squares affine map h ≈ x A + a (a small ridge on A)."""
    mx, mh = x.mean(0), h.mean(0)
    xc, hc = x - mx, h - mh
    gram = xc.T @ xc + ridge * len(x) * torch.eye(x.shape[1])
    A = torch.linalg.solve(gram, xc.T @ hc)
    return A, mh - mx @ A


class SkipClassifier(torch.nn.Module):
    """The model's classifier seen by a skip transcoder's bank and explanations: ``hidden`` is what
    the transcoders reconstruct, h minus the affine skip; the head is the model's own."""

    def __init__(self, clf, A: torch.Tensor, a: torch.Tensor, centre: torch.Tensor) -> None:
        super().__init__()
        self.clf, self.A, self.a, self.centre = clf, A, a, centre
        self.fc1, self.fc2 = clf.fc1, clf.fc2

    def skip(self, e: torch.Tensor) -> torch.Tensor:
        return e.float() @ self.A + self.a

    def skip_item(self, e: torch.Tensor) -> torch.Tensor:
        """(B, C) the skip's item ``W2 A (e - ē)`` (ē: the training mean); its constant
        ``W2 (A ē + a)`` belongs to the bias, as the transcoders' ``b_dec`` (the mean of h) does."""
        return (e.float() - self.centre) @ self.A @ self.fc2.weight.T

    def hidden(self, e: torch.Tensor) -> torch.Tensor:
        return self.clf.hidden(e) - self.skip(e)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.clf.head(h)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.clf(e)


class SkipBankAttributor(BankAttributor):
    """A skip transcoder's bank explanation: its patterns, plus the skip term ``W2 (A e + a)`` as
    one unnamed item (so bias + items + unbanked + error is the model's logit: the error is
    ``W2 (h - A e - a - ĥ)``, what the transcoders miss of what the skip leaves)."""

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        from lanic_hub.explain import decomposition_by_pattern

        sc = self.clf
        d = decomposition_by_pattern(sc, self.ens, self.bank, e)
        items = torch.cat([d.patterns, sc.skip_item(e).unsqueeze(1)], dim=1)
        return Parts(sc.clf(e), items, {"unbanked": d.unbanked, "error": d.error})

    @property
    def dense(self) -> list[bool]:
        return super().dense + [True]

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        a = super().activations(e)
        return torch.cat([a, torch.ones(len(e), 1)], dim=1)


class SkipConceptAttributor(ConceptAttributor):
    """A skip transcoder at the concept level: the sparse part split by the concept directions'
    Shapley values, the skip term by its linear split (exact, and equal to its Shapley values:
    it is linear in e), its constant part on the reference."""

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        from lanic_hub.explain import decomposition_by_pattern

        sc, c = self.clf, self.directions
        d = decomposition_by_pattern(sc, self.ens, self.bank, e, concepts=c)
        W2 = sc.fc2.weight
        y, r = c.split(e)
        per = y.unsqueeze(-1) * (c.directions.float() @ sc.A @ W2.T).unsqueeze(0)  # (B, K, C)
        ref = (c.mean.float() - sc.centre) @ sc.A @ W2.T
        res = r.float() @ sc.A @ W2.T
        cd = d.concept
        return Parts(
            sc.clf(e),
            cd.concepts + per,
            {
                "reference": cd.reference + ref,
                "residual": cd.residual + res,
                "error": d.error,
            },
        )


# ----------------------------------------------------------------------------- unnormalised features


@torch.no_grad()
def unnormalised_features(bb, images, batch: int = 128) -> torch.Tensor:
    """(N, d) the image tower's features u before the L2 norm (e = u / ‖u‖), from images or
    dataset rows' ``image`` values, through the backbone's own preprocessing."""
    from PIL import Image

    from lanic_hub.data.images import load_image

    def pil(im):
        return Image.fromarray(im).convert("RGB") if isinstance(im, np.ndarray) else load_image(im)

    out = []
    for a in range(0, len(images), batch):
        x = torch.stack([bb.preprocess(pil(im)) for im in images[a : a + batch]])
        out.append(bb.model.encode_image(x.to(bb.device)).float().cpu())
    return torch.cat(out)


class UnnormalisedConceptAttributor(ConceptAttributor):
    """Concept directions fitted in the unnormalised features, ``u = μ + Σ ŷ_k β_k + r``, and the
    model's item contributions split by Shapley values whose coalition S is the film
    ``normalise(μ + Σ_{p in S} part_p)``: the full coalition is ``u / ‖u‖ = e`` itself, so each
    permutation telescopes and the split is exact. ``parts`` takes u, not e."""

    @torch.no_grad()
    def parts(self, u: torch.Tensor) -> Parts:
        import torch.nn.functional as F

        from lanic_hub.decomposition import latent_contributions, latent_logit_weights
        from lanic_hub.explain import decomposition_by_pattern
        from lanic_hub.patterns.concepts import shapley_over_concepts

        clf, ens, c = self.clf, self.ens, self.directions
        e = F.normalize(u.float(), dim=-1)
        d = decomposition_by_pattern(clf, ens, self.bank, e)
        bias, U = ens.encoder_bias(), latent_logit_weights(ens.W_dec, clf.fc2.weight)

        def items_of(x: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [
                    latent_contributions(*ens.encode(F.normalize(x[a : a + 512], dim=-1), bias=bias), U).sum(
                        (1, 2)
                    )
                    for a in range(0, len(x), 512)
                ]
            )

        phi, phi_r, ref, _ = shapley_over_concepts(items_of, c, u, c.permutations)
        return Parts(
            d.logits, phi, {"reference": ref.expand(len(u), -1), "residual": phi_r, "error": d.error}
        )

    @torch.no_grad()
    def activations(self, u: torch.Tensor) -> torch.Tensor:
        return self.directions.presence(u)


def unnormalised_variants(model, on, off, tr_rows, assign_rows, gt) -> dict[str, tuple]:
    """The report directions and the ground-truth ceiling fitted in u (before the L2 norm), each
    with the (u_on, u_off) of the pairs it is judged on."""
    bb = model.backbone
    u_on, u_off = unnormalised_features(bb, on), unnormalised_features(bb, off)
    split = np.array(tr_rows["split"])
    fit_pos, chk_pos = np.where(split == "train")[0], np.where(split == "validate")[0]
    x = ConceptExtractor()

    def part(pos):
        sub = tr_rows.select(pos.tolist())
        return unnormalised_features(bb, sub["image"]), x.table(sub["report"])

    u_fit, t_fit = part(fit_pos)
    u_chk, t_chk = part(chk_pos)
    d = ConceptDirections.fit(
        u_fit, t_fit, u_chk, t_chk, fitted_on="train rows (u)", checked_on="validate rows (u)"
    )
    d.attribution, d.permutations = "shapley", 8
    gtd = ground_truth_directions(unnormalised_features(bb, assign_rows["image"]), gt)
    gtd.attribution, gtd.permutations = "shapley", 8
    out = {}
    for name, dirs in (
        ("report directions in u (before the L2 norm), OLS read-out, Shapley over normalised films", d),
        ("ceiling: ground-truth directions in u, Shapley over normalised films", gtd),
    ):
        att = UnnormalisedConceptAttributor(name, model.classifier, model.ensemble, model.bank, dirs)
        out[name] = (att, (u_on, u_off))
    return out


def retrained_variants(model, x: torch.Tensor, members: int, emb_dir: Path, ds, spec: str, log=print):
    """(name, attributor) rows of the retrained candidates: control, (b) at two weights, (c)."""
    from dataclasses import fields, replace

    from lanic_hub.patterns import BankConfig
    from lanic_hub.patterns.build import build_bank
    from lanic_hub.training import preset_schedule

    clf, bb = model.classifier, model.backbone
    with torch.no_grad():
        h = clf.hidden(x)
    cfg = replace(model.ensemble.cfg, n_members=members, first_member=0, d_out=h.shape[1])
    schedule = preset_schedule(cfg)
    known = {f.name for f in fields(BankConfig)}
    bank_cfg = BankConfig(**{k: v for k, v in model.bank_meta.config.items() if k in known})

    def bank_of(ens, clf_seen, name):
        t = time.perf_counter()
        b = build_bank(ens, emb_dir, ds, config=bank_cfg, backbone=bb, data_spec=spec, progress=False)
        n_named = sum(c is not None for c in named_concepts(b.patterns))
        log(f"  {name}: bank of {len(b)} patterns, {n_named} named ({time.perf_counter() - t:.0f} s)")
        return b

    def var(v: torch.Tensor) -> float:
        return float((v - v.mean(0)).pow(2).sum(1).mean())

    out = []
    for name, lam in (
        ("control: the same ensemble retrained", 0.0),
        ("(b) also reconstructs e, λ=1", 1.0),
        ("(b) also reconstructs e, λ=0.25", 0.25),
    ):
        t = time.perf_counter()
        if lam:
            target, s = with_input_target(x, h, lam)
            ens, _ = train_ensemble(x, target, replace(cfg, d_out=target.shape[1]), schedule, progress=False)
            with torch.no_grad():
                v, i = ens.encode(x)
                rec = ens.decode(v, i).mean(1)
            H = h.shape[1]
            fvu_h = float((rec[:, :H] - h).pow(2).sum(1).mean()) / var(h)
            fvu_e = float((rec[:, H:] / s - x).pow(2).sum(1).mean()) / var(x)
            ens = hidden_part(ens, H).eval()
        else:
            ens, _ = train_ensemble(x, h, cfg, schedule, progress=False)
            with torch.no_grad():
                v, i = ens.encode(x)
                fvu_h, fvu_e = (
                    float((ens.decode(v, i).mean(1) - h).pow(2).sum(1).mean()) / var(h),
                    float("nan"),
                )
        label = f"{name} (T={members}; train FVU_h {fvu_h:.3f}" + (f", FVU_e {fvu_e:.3f})" if lam else ")")
        log(f"  {label}: trained ({time.perf_counter() - t:.0f} s)")
        b = bank_of(ens, clf, name)
        out.append(
            (f"{label}, bank patterns", BankAttributor(label, clf, ens, b, named_concepts(b.patterns)))
        )
        out.append((f"{label}, concepts (Shapley)", ConceptAttributor(label, clf, ens, b, model.concepts)))

    t = time.perf_counter()
    A, a = affine_skip(x, h)
    sc = SkipClassifier(clf, A, a, x.mean(0))
    with torch.no_grad():
        hr = sc.hidden(x)
    ens, _ = train_ensemble(x, hr, cfg, schedule, progress=False)
    with torch.no_grad():
        v, i = ens.encode(x)
        fvu = float((ens.decode(v, i).mean(1) - hr).pow(2).sum(1).mean()) / var(h)
    label = (
        f"(c) skip transcoder, affine skip by least squares (skip alone FVU_h {var(hr) / var(h):.3f}; "
        f"with the transcoders {fvu:.3f}; T={members})"
    )
    log(f"  {label}: trained ({time.perf_counter() - t:.0f} s)")
    b = bank_of(ens, sc, "(c)")
    out.append(
        (
            f"{label}, bank patterns + the skip as one item",
            SkipBankAttributor(label, sc, ens, b, named_concepts(b.patterns) + [None]),
        )
    )
    out.append(
        (
            f"{label}, concepts (Shapley; the skip split linearly)",
            SkipConceptAttributor(label, sc, ens, b, model.concepts),
        )
    )
    return out


@torch.no_grad()
def check_exact(att, e: torch.Tensor) -> float:
    """The largest spread over images of ``logits - items - rest`` (the bias, one number per
    finding for an exact split); raises if it is not float rounding."""
    p = att.parts(e)
    bias = p.logits - p.items.sum(1) - sum(p.rest.values())
    spread = float((bias - bias[:1]).abs().max())
    if spread > 1e-4 * (1 + float(p.logits.abs().max())):
        raise RuntimeError(f"{att.name}: the split does not add up (bias spreads by {spread:.3g})")
    return spread


def _mean_share(r: dict, part: str) -> float:
    vals = [v.get(f"mean_{part}_share", np.nan) for v in r["factors"].values() if v.get("moved_logits")]
    return float(np.nanmean(vals)) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--out", default="runs/concept-splits")
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="only the report directions and the ceiling")
    ap.add_argument(
        "--retrained", action="store_true", help="also the retrained candidates (b), (c) and their control"
    )
    ap.add_argument("--only-retrained", action="store_true", help="only the retrained candidates")
    ap.add_argument("--members", type=int, default=40, help="ensemble size T of the retrained candidates")
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
    _, a_ds, a_emb = phantom_split(run / "eval", cfg.assign_n, cfg.seed + 1, world, bb, progress=False)
    emb = load_embeddings(a_emb)
    x_assign = emb.image.float()
    rows = a_ds.select(emb.row_ids.tolist())
    gt = np.stack([np.array(rows[f"gt_{f}"], dtype=bool) for f in ALL_FACTORS], 1)

    train_emb = Path(model.bank_meta.embeddings)
    ds = open_dataset(json.loads((train_emb / "manifest.json").read_text())["data_spec"])
    tr = load_embeddings(train_emb)
    tr_rows = ds.select(tr.row_ids.tolist())
    train_pos = np.array(tr_rows["split"]) == "train"
    x_train = tr.image.float()[torch.from_numpy(train_pos)]
    table = ConceptExtractor().table(np.array(tr_rows["report"], dtype=object)[train_pos].tolist())

    directions: dict[str, object] = {}
    for readout in () if args.only_retrained else ("ols", "gls"):
        for attribution, perms in (("linear", 0), ("shapley", 8)):
            d = fit_concept_directions(train_emb, ds, log=lambda *a: None, readout=readout)
            d.attribution, d.permutations = attribution, perms
            label = "per-image linear map" if attribution == "linear" else f"Shapley, {perms} permutations"
            directions[f"report directions, {readout.upper()} read-out, {label}"] = d
    if not (args.quick or args.only_retrained):
        clipped = Clipped(
            **{f: getattr(model.concepts, f) for f in ("keys", "mean", "directions", "readout")}
        )
        clipped.support, clipped.meta, clipped.attribution = (
            model.concepts.support,
            model.concepts.meta,
            "linear",
        )
        directions["report directions, OLS read-out clipped at 0, linear"] = clipped
        for L, k in ((512, 16),):
            sae, fvu = train_sae(x_train, L, k, steps=1500)
            names = name_sae(sae, x_train, table.values, table.concepts, NamingRule())
            directions[f"TopK SAE on e (L={L}, k={k}, FVU {fvu:.3f}), report-named, linear"] = SAEDictionary(
                sae, names
            )
    for attribution in () if args.only_retrained else ("linear", "shapley"):
        d = ground_truth_directions(x_assign, gt)
        d.attribution = attribution
        directions[f"ceiling: ground-truth directions, {attribution}"] = d
    variants = {
        name: ConceptAttributor(name, model.classifier, model.ensemble, model.bank, d)
        for name, d in directions.items()
    }
    inputs = {name: (e_on, e_off) for name in variants}
    if not (args.quick or args.only_retrained):
        for name, att in unnormalised_variants(model, on, off, tr_rows, rows, gt).items():
            variants[name], inputs[name] = att
    if args.retrained or args.only_retrained:
        spec = json.loads((train_emb / "manifest.json").read_text())["data_spec"]
        for name, att in retrained_variants(model, x_train, args.members, train_emb, ds, spec):
            variants[name], inputs[name] = att, (e_on, e_off)

    rows_out = []
    for name, att in variants.items():
        x_on, x_off = inputs[name]
        check_exact(att, x_on[:64])
        item_factor = [None] * len(att.concepts)
        r = evaluate_method(att, x_on, x_off, pairs, item_factor, cfg)
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
            "mean |Δ| shares (reference, residual, unbanked, error)": " / ".join(
                f"{_mean_share(r, p):.3f}" for p in ("reference", "residual", "unbanked", "error")
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
