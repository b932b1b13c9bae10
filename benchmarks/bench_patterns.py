"""Pattern bank on the phantom world: ground-truth recovery, naming, purity, patterns per prediction.

Needs a trained phantom model and its embeddings, e.g. from the main job::

    lanic-hub quickstart --out runs/quickstart      # or: lanic-hub train + lanic-hub patterns
    python -m benchmarks patterns                   # LANIC_BENCH_RUN=runs/quickstart by default

Builds the bank twice (naming from the gallery, and from the encoder direction), times the build,
checks the bank against the ground truth on the test split, measures how many patterns carry 90%
of each prediction, and the linear-time MS against the pairwise definition. Writes
docs/patterns_phantom.md and .json.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def _ms_pairwise(acts: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """The definition through the N x N similarity matrix (O(N² d))."""
    lo, hi = acts.min(0).values, acts.max(0).values
    a = (acts - lo) / (hi - lo).clamp(min=1e-12)
    G = e @ e.T
    G.fill_diagonal_(0)
    num = ((G @ a) * a).sum(0)
    s1, s2 = a.sum(0), (a * a).sum(0)
    return num / (s1 * s1 - s2)


def _ms_timing(acts: torch.Tensor, e: torch.Tensor, what: str, repeats: int = 3) -> dict:
    """Median seconds of the linear-time MS and of the pairwise definition on the same input."""
    from lanic_hub.patterns import ms_scores

    tl, tp = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        a = ms_scores(acts, e)
        tl.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = _ms_pairwise(acts, e)
        tp.append(time.perf_counter() - t)
    return {
        "data": what,
        "rows": len(acts),
        "patterns": acts.shape[1],
        "linear_s_median": float(np.median(tl)),
        "pairwise_s_median": float(np.median(tp)),
        "ratio_pairwise_over_linear": float(np.median(tp) / np.median(tl)),
        "max_abs_difference": float(torch.nan_to_num((a.double() - b.double()).abs(), nan=0.0).max()),
    }


def main() -> dict:
    from lanic_hub.backbone.embed import load_embeddings
    from lanic_hub.data.open import open_dataset
    from lanic_hub.explain import decomposition_by_pattern
    from lanic_hub.patterns import BankConfig
    from lanic_hub.patterns.build import build_bank
    from lanic_hub.patterns.phantom_check import ground_truth_check, pattern_activations
    from lanic_hub.trained import load_trained

    run = Path(os.environ.get("LANIC_BENCH_RUN", "runs/quickstart"))
    model, embeddings = run / "train", run / "embeddings"
    if not (model / "ensemble.safetensors").is_file():
        print(f"no trained model in {model}: run `lanic-hub quickstart --out {run}` first (skipped)")
        return {"skipped": f"no trained model in {model}"}
    clf, ens = load_trained(model)
    emb = load_embeddings(embeddings)
    ds = open_dataset(emb.manifest.data_spec)
    sub = ds.select(emb.row_ids.tolist()).remove_columns("image")
    te = np.where(np.array(sub["split"]) == "test")[0]
    x = emb.image.float()
    out: dict = {
        "measured_on": f"{emb.manifest.data_spec} ({len(x)} phantoms); bank built on all rows, "
        f"checks on the test split ({len(te)} rows)",
        "ensemble": {"members": ens.T, "latents": ens.cfg.n_latents, "k": ens.cfg.k},
    }
    from lanic_hub.backbone import load_backbone

    bb = load_backbone(emb.manifest.backbone.spec)
    banks = {}
    for naming in ("both", "gallery", "direction"):
        t = time.perf_counter()
        banks[naming] = build_bank(
            ens, embeddings, ds, config=replace(BankConfig(), naming=naming), backbone=bb
        )
        out.setdefault("build_seconds", {})[naming] = round(time.perf_counter() - t, 1)
    bank = banks["both"]
    out["counts"] = bank.meta.counts
    rows_te = sub.select(te)
    for naming, b in banks.items():
        acts = pattern_activations(ens, b, x[te]).numpy()
        for at in (0.95, 0.9):
            r = ground_truth_check(acts, b, rows_te, detect_at=at)
            out.setdefault("ground_truth", {})[f"{naming}@{at}"] = {
                k: v for k, v in r.items() if k != "factors"
            }
            if naming == "both" and at == 0.95:
                out["factors"] = r["factors"]
    parts = decomposition_by_pattern(clf, ens, bank, x[te])
    n = parts.n_cover.float().numpy()
    mass_unbanked = float(
        parts.unbanked.abs().sum() / (parts.patterns.abs().sum() + parts.unbanked.abs().sum())
    )
    out["patterns_per_prediction"] = {
        "definition": "fewest items (bank patterns, or unbanked latents one by one) holding 90% of the "
        "absolute contribution mass, per test image and finding",
        "median": float(np.median(n)),
        "p10": float(np.percentile(n, 10)),
        "p90": float(np.percentile(n, 90)),
        "fraction_in_20_50": float(np.mean((n >= 20) & (n <= 50))),
        "unbanked_share_of_mass": mass_unbanked,
    }
    ms = np.array([p["ms"] for p in bank.patterns], dtype=float)
    coh = np.array([np.nan if p["text_coherence"] is None else p["text_coherence"] for p in bank.patterns])
    out["scores"] = {
        "ms_median": float(np.nanmedian(ms)),
        "ms_dataset_baseline": float((x.sum(0).norm() ** 2 - len(x)) / (len(x) ** 2 - len(x))),
        "ms_encoder": bank.meta.ms_encoder,
        "text_coherence_median": float(np.nanmedian(coh)),
        "text_coherence_random_gallery": bank.meta.text_coherence_random_baseline,
        "support_median": float(np.median([p["support"] for p in bank.patterns])),
    }
    # linear-time MS vs the pairwise definition, side by side, on this bank and at growing N
    acts = pattern_activations(ens, bank, x)
    out["ms_speed"] = [_ms_timing(acts, torch.nn.functional.normalize(x, dim=1), "phantom bank")]
    g = torch.Generator().manual_seed(0)
    for n in (4000, 8000, 16000, 20000):  # resampled rows of the same activations and embeddings
        idx = torch.randint(0, len(x), (n,), generator=g)
        noise = 0.05 * torch.randn(n, x.shape[1], generator=g)
        out["ms_speed"].append(
            _ms_timing(acts[idx], torch.nn.functional.normalize(x[idx] + noise, dim=1), "resampled rows")
        )
    Path("docs").mkdir(exist_ok=True)
    Path("docs/patterns_phantom.json").write_text(json.dumps(out, indent=1))
    Path("docs/patterns_phantom.md").write_text(_markdown(out))
    print(_markdown(out))
    return out


def _markdown(r: dict) -> str:
    g = r["ground_truth"]
    lines = [
        "# The pattern bank on the phantom world",
        "",
        f"Measured on {r['measured_on']}. Ensemble: T = {r['ensemble']['members']}, "
        f"L = {r['ensemble']['latents']}, k = {r['ensemble']['k']}. "
        "Written by `python -m benchmarks patterns`.",
        "",
        f"Stages: {r['counts']['latents']} latents, {r['counts']['alive']} alive, {r['counts']['merged']} "
        f"merged patterns, **{r['counts']['selected']} selected**. Build: {r['build_seconds']['both']} s.",
        "",
        "| naming | factors detected (AUROC >= 0.95, moderate+) | named after the factor and detecting it "
        "(>= 0.95 / >= 0.9) | patterns with purity >= 0.8 (AUROC on one factor) | patterns whose "
        "top-20 gallery is >= 0.8 one factor (random galleries) | patterns detecting a factor (>= 0.9) "
        "named after it |",
        "|---|---|---|---|---|---|",
    ]
    for naming in ("both", "gallery", "direction"):
        a, b = g[f"{naming}@0.95"], g[f"{naming}@0.9"]
        lines.append(
            f"| {naming} | {a['factors_detected']}/{a['n_factors']} | {a['factors_named_correctly']} / "
            f"{b['factors_named_correctly']} of {a['n_factors']} | {a['pure_patterns_fraction']:.2f} | "
            f"{a['gallery_pure_fraction']:.2f} ({a['gallery_pure_fraction_chance']:.2f}) | "
            f"{a['named_after_the_factor_they_detect']:.2f} of {a['patterns_detecting_a_factor']} |"
        )
    lines += [
        "",
        "| factor | best pattern | AUROC moderate+ | AUROC all severities | best pattern named after it |",
        "|---|---|---|---|---|",
    ]
    for f, v in r["factors"].items():
        bn = "-" if v["best_named_auroc"] is None else f"{v['best_named_auroc']:.3f}"
        lines.append(
            f"| {f} | {v['best_pattern_name']} | {v['auroc_moderate_plus']:.3f} | "
            f"{v['auroc_all_severities']:.3f} | {bn} |"
        )
    p = r["patterns_per_prediction"]
    s = r["scores"]
    lines += [
        "",
        f"Patterns per prediction ({p['definition']}): median {p['median']:.0f}, 10th-90th percentile "
        f"{p['p10']:.0f}-{p['p90']:.0f}; {100 * p['fraction_in_20_50']:.0f}% of predictions in 20-50. "
        f"Latents outside the bank carry {100 * p['unbanked_share_of_mass']:.1f}% of the contribution mass.",
        "",
        f"MS median {s['ms_median']:.3f} (dataset mean pairwise similarity "
        f"{s['ms_dataset_baseline']:.3f}; "
        f"encoder: {s['ms_encoder']}). Text coherence median {s['text_coherence_median']:.3f} vs "
        f"{s['text_coherence_random_gallery']:.3f} for random galleries. "
        f"Median support {s['support_median']:.0f}.",
        "",
        "MonoSemanticity, linear-time vs the pairwise definition (float32, same input, medians of 3):",
        "",
        "| data | rows | patterns | linear | pairwise | pairwise / linear | max difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in r["ms_speed"]:
        lines.append(
            f"| {m['data']} | {m['rows']} | {m['patterns']} | {m['linear_s_median'] * 1e3:.0f} ms | "
            f"{m['pairwise_s_median'] * 1e3:.0f} ms | {m['ratio_pairwise_over_linear']:.1f} | "
            f"{m['max_abs_difference']:.1e} |"
        )
    lines += [
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
