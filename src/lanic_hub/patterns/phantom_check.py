"""Do the bank's patterns recover the phantom world's true factors? (benchmark and tests)

The figures, on rows of a phantom dataset with ground truth:

1. **detection**: for every factor (5 findings, 6 devices, 6 artifacts), the best bank pattern's
   AUROC against the factor's presence, findings at moderate or higher severity (severity >= 0.5
   vs absent; milder cases left out) and over all severities;
2. **naming**: for how many factors a pattern *named after the factor* (its vocabulary concept is
   the factor) detects it (AUROC >= ``detect_at`` at moderate+);
3. **purity**: the fraction of bank patterns whose AUROC against their best factor is >= 0.8;
   and, beside it, **gallery purity**: the fraction whose gallery (the ``gallery`` images they fire
   on most) is at least 0.8 one factor, with the same fraction for random galleries of the same
   sizes as its chance level. The AUROC test cannot pass a rare pattern: one that fires on 2% of
   the images and only on a factor's positives covers few of them, so its AUROC is about
   0.5 + 0.5 x (the share of positives it fires on); the gallery test asks what its images show;
4. and, as naming accuracy from the patterns' side: of the patterns that detect a factor
   (AUROC >= 0.9, all severities), the fraction whose name's concept is that factor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.phantom import ALL_FACTORS, FINDING_FACTORS, truth
from ..transcoders.analysis import auroc_matrix
from .bank import PatternBank, pattern_activations_from_codes


@torch.no_grad()
def pattern_activations(ens, bank: PatternBank, e: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """(N, P) pattern activations: the mean of the member latents' activations."""
    out = []
    for a in range(0, len(e), batch):
        v, i = ens.encode(e[a : a + batch].float())
        out.append(pattern_activations_from_codes(v, i, ens.cfg.n_latents, bank.latent_pattern, bank.support))
    return torch.cat(out) if out else torch.zeros(0, len(bank))


def gallery_purity(
    acts: np.ndarray, gt: np.ndarray, gallery: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pattern (column of ``acts`` (N, P)), over its gallery (the up to ``gallery`` rows it
    fires on most, positive activations only): the share of the gallery carrying the factor most
    over-represented in it (share minus the factor's base rate in ``gt`` (N, F)), that factor's
    index (-1 for a pattern that never fires, share 0), and the same share for a random gallery
    of the same size (the chance level, from ``seed``)."""
    base = gt.mean(0)
    rng = np.random.default_rng(seed)
    P = acts.shape[1]
    share, which, chance = np.zeros(P), np.full(P, -1), np.zeros(P)
    for p in range(P):
        a = acts[:, p]
        fire = np.flatnonzero(a > 0)
        if not len(fire):
            continue
        top = fire[np.argsort(-a[fire], kind="stable")][:gallery]
        sh = gt[top].mean(0)
        which[p] = int(np.argmax(sh - base))
        share[p] = sh[which[p]]
        r = gt[rng.choice(len(gt), size=len(top), replace=False)].mean(0)
        chance[p] = r[int(np.argmax(r - base))]
    return share, which, chance


def ground_truth_check(
    acts: np.ndarray,
    bank: PatternBank,
    rows,
    detect_at: float = 0.95,
    pure_at: float = 0.8,
    gallery: int = 20,
) -> dict[str, Any]:
    """The figures from pattern activations ``acts`` (N, P) on dataset ``rows`` (with gt_*)."""
    gt = truth.presence(rows)
    all_sev = auroc_matrix(acts, gt)  # (P, F)
    moderate = all_sev.copy()
    for j, f in enumerate(ALL_FACTORS):
        if f in FINDING_FACTORS:
            sev = truth.severity(rows, f)
            keep = ~gt[:, j] | (sev >= 0.5)
            moderate[:, j] = auroc_matrix(acts[keep], gt[keep, j : j + 1])[:, 0]
    from .bank import is_named

    concepts = [p.concept if is_named(p) else None for p in bank.patterns]  # abstentions name nothing
    factors: dict[str, Any] = {}
    for j, f in enumerate(ALL_FACTORS):
        col = np.nan_to_num(moderate[:, j], nan=-1)
        best = int(np.argmax(col)) if len(col) else -1
        named = [p for p, c in enumerate(concepts) if c == f]
        best_named = max(named, key=lambda p: col[p]) if named else None
        factors[f] = {
            "best_pattern": best,
            "best_pattern_name": bank.patterns[best].name if best >= 0 else None,
            "auroc_moderate_plus": float(col[best]) if best >= 0 else None,
            "auroc_all_severities": float(np.nan_to_num(all_sev[:, j], nan=-1).max()) if len(col) else None,
            "patterns_named_after_it": len(named),
            "best_named_auroc": float(col[best_named]) if best_named is not None else None,
        }
    filled = np.where(np.isnan(all_sev), -1, all_sev)
    best_factor = filled.max(1) if len(all_sev) else np.zeros(0)
    which = filled.argmax(1) if len(all_sev) else np.zeros(0, dtype=int)
    pure = np.where(best_factor >= 0.9)[0]
    g_share, _, g_chance = gallery_purity(acts, gt, gallery)
    named_pure = [concepts[p] == ALL_FACTORS[which[p]] for p in pure]
    detected = sum(
        v["auroc_moderate_plus"] is not None and v["auroc_moderate_plus"] >= detect_at
        for v in factors.values()
    )
    named_ok = sum(
        v["best_named_auroc"] is not None and v["best_named_auroc"] >= detect_at for v in factors.values()
    )
    return {
        "rows": len(acts),
        "patterns": len(bank),
        "detect_at": detect_at,
        "factors_detected": detected,
        "factors_named_correctly": named_ok,
        "factors": factors,
        "pure_patterns_fraction": float(np.mean(best_factor >= pure_at)) if len(best_factor) else 0.0,
        "gallery_pure_fraction": float(np.mean(g_share >= pure_at)) if len(g_share) else 0.0,
        "gallery_pure_fraction_chance": float(np.mean(g_chance >= pure_at)) if len(g_share) else 0.0,
        "gallery": gallery,
        "patterns_detecting_a_factor": len(pure),
        "named_after_the_factor_they_detect": float(np.mean(named_pure)) if named_pure else None,
        "pure_at": pure_at,
        "n_factors": len(ALL_FACTORS),
    }
