"""The measurement, on embeddings only: each item's ground-truth factor, how each moved logit's
change is shared out over items and rest parts, the per-factor and per-group figures, how well
the embedding itself carries each factor, and naming precision."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ...constants import FINDINGS
from ...data.phantom import ALL_FACTORS, ARTIFACT_FACTORS, DEVICE_FACTORS, FINDING_FACTORS
from ...patterns.phantom_check import gallery_purity
from ...transcoders.analysis import auroc_matrix
from .attribution import Parts
from .pairs import CounterfactualConfig, Pair


def assign_factors(
    acts: np.ndarray, gt: np.ndarray, factors: tuple[str, ...], at: float
) -> tuple[list[str | None], np.ndarray]:
    """Each item's ground-truth factor: the factor its activation detects best, if that AUROC is
    at least ``at`` (else None); and the (I,) best AUROCs."""
    if acts.shape[1] == 0:
        return [], np.zeros(0)
    au = np.nan_to_num(auroc_matrix(acts, gt), nan=-1.0)  # (I, F)
    au[~(acts > 0).any(0)] = -1.0  # an item that never fires detects nothing
    best = au.argmax(1)
    top = au.max(1)
    return [factors[j] if a >= at else None for j, a in zip(best, top, strict=True)], top


@torch.no_grad()
def pair_changes(att, e_on: torch.Tensor, e_off: torch.Tensor, batch: int = 256, on_parts=None):
    """(Δlogit (N, C), Δitems (N, I, C), {part: Δ (N, C)}) of every pair, in batches.
    ``on_parts``: called with each batch's :class:`Parts` of the 'with' images, for figures of
    the explanations themselves (so those are not computed a second time)."""
    dl, di, dr = [], [], {}
    for a in range(0, len(e_on), batch):
        on, off = att.parts(e_on[a : a + batch]), att.parts(e_off[a : a + batch])
        if on_parts is not None:
            on_parts(on)
        dl.append(on.logits - off.logits)
        di.append(on.items - off.items)
        for k in on.rest:
            dr.setdefault(k, []).append(on.rest[k] - off.rest[k])
    return torch.cat(dl), torch.cat(di), {k: torch.cat(v) for k, v in dr.items()}


def change_shares(
    d_items: torch.Tensor,
    d_rest: dict[str, torch.Tensor],
    factor_items: torch.Tensor,
    named_items: torch.Tensor,
    top: int = 3,
    dense_items: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """For moved logits given as Δitems (n, I) and Δrest {part: (n,)}: the shares of the absolute
    change on the factor's items, the named items and each rest part, and whether a named item
    (or a factor item) is among the ``top`` largest changes. ``factor_items`` / ``named_items`` are
    (I,) bool masks."""
    a_items = d_items.abs()
    a_rest = {k: v.abs() for k, v in d_rest.items()}
    total = a_items.sum(1) + sum(a_rest.values(), torch.zeros(len(d_items)))
    safe = total.clamp(min=1e-12)
    delta = d_items.sum(1) + sum(d_rest.values(), torch.zeros(len(d_items)))
    sign = torch.where(delta >= 0, 1.0, -1.0) / delta.abs().clamp(min=1e-12)
    out = {
        "factor_share": (a_items * factor_items).sum(1) / safe,
        "named_share": (a_items * named_items).sum(1) / safe,
        "signed_named_share": (d_items * named_items).sum(1) * sign,
        **{f"{k}_share": v / safe for k, v in a_rest.items()},
    }
    if dense_items is not None:  # the context patterns (dense: on most images)
        out["context_share"] = (a_items * dense_items).sum(1) / safe
    # the largest changes among items and the rest parts (a rest part can never be a hit)
    full = torch.cat([a_items, *[v.unsqueeze(1) for v in a_rest.values()]], dim=1)
    pad = torch.zeros(len(a_rest), dtype=torch.bool)
    k = min(top, full.shape[1])
    idx = full.topk(k, dim=1).indices if k else torch.zeros(len(full), 0, dtype=torch.long)
    out["named_hit"] = torch.cat([named_items, pad])[idx].any(1)
    out["factor_hit"] = torch.cat([factor_items, pad])[idx].any(1)
    return out


def evaluate_method(
    att,
    e_on: torch.Tensor,
    e_off: torch.Tensor,
    pairs: list[Pair],
    item_factor: list[str | None],
    cfg: CounterfactualConfig,
    factors: tuple[str, ...] = ALL_FACTORS,
    findings: tuple[str, ...] = FINDINGS,
    visible: set[str] | None = None,
) -> dict[str, Any]:
    """Per factor: causal effect on each finding, and how the moved logits' change is shared out.
    ``visible``: the factors the embedding itself carries (probe AUROC on e >= ``visible_at``);
    the group figures are also given over those alone."""
    named_items = torch.tensor([c is not None for c in att.concepts], dtype=torch.bool)
    mass: list[torch.Tensor] = []
    dl, di, dr = pair_changes(
        att, e_on, e_off, on_parts=lambda p: mass.append(named_mass_shares(p, named_items))
    )
    fac = np.array([p.factor for p in pairs])
    out: dict[str, Any] = {"factors": {}}
    all_hits, all_shares, all_context = [], [], []
    per_factor: dict[str, dict[str, torch.Tensor]] = {}
    for f in factors:
        rows = np.where(fac == f)[0]
        fmask = torch.tensor([x == f for x in item_factor], dtype=torch.bool)
        nmask = torch.tensor([c == f for c in att.concepts], dtype=torch.bool)
        dense = getattr(att, "dense", None)
        dmask = torch.tensor(dense, dtype=torch.bool) if dense is not None else None
        r: dict[str, Any] = {
            "pairs": len(rows),
            "items_of_factor": int(fmask.sum()),
            "items_named_after_it": int(nmask.sum()),
            "effect": {},
        }
        shares: dict[str, list] = {}
        for c, name in enumerate(findings):
            d = dl[rows, c]
            moved = d.abs() > cfg.moved_at
            r["effect"][name] = {
                "mean_abs_delta_logit": float(d.abs().mean()) if len(d) else 0.0,
                "moved_share": float(moved.float().mean()) if len(d) else 0.0,
            }
            if moved.any():
                sel = torch.as_tensor(rows)[moved]
                s = change_shares(
                    di[sel, :, c], {k: v[sel, c] for k, v in dr.items()}, fmask, nmask, cfg.top, dmask
                )
                for k, v in s.items():
                    shares.setdefault(k, []).append(v.float())
        moved_any = max((v["moved_share"] for v in r["effect"].values()), default=0.0)
        r["eligible"] = moved_any >= cfg.eligible_at
        r["moved_logits"] = int(sum(len(v) for v in shares.get("factor_share", [])))
        if shares:
            cat = {k: torch.cat(v) for k, v in shares.items()}
            per_factor[f] = cat
            r["median_factor_share"] = float(cat["factor_share"].median())
            r["median_named_share"] = float(cat["named_share"].median())
            r["median_signed_named_share"] = float(cat["signed_named_share"].median())
            r["named_top_hit_rate"] = float(cat["named_hit"].float().mean())
            r["factor_top_hit_rate"] = float(cat["factor_hit"].float().mean())
            for k in [*dr, *(["context"] if dmask is not None else [])]:
                r[f"mean_{k}_share"] = float(cat[f"{k}_share"].mean())
            all_hits.append(cat["named_hit"].float())
            all_shares.append(cat["factor_share"])
            if "context_share" in cat:
                all_context.append(cat["context_share"])
        r["passes"] = bool(
            r["eligible"]
            and r.get("median_factor_share", 0.0) >= cfg.target_share
            and r.get("named_top_hit_rate", 0.0) >= cfg.target_hit
        )
        out["factors"][f] = r
    judged = [f for f, r in out["factors"].items() if r["eligible"]]
    out["eligible_factors"] = judged
    out["passing_factors"] = [f for f in judged if out["factors"][f]["passes"]]
    out["named_top_hit_rate_all"] = float(torch.cat(all_hits).mean()) if all_hits else None
    out["median_factor_share_all"] = float(torch.cat(all_shares).median()) if all_shares else None
    out["moved_logits"] = int(sum(len(x) for x in all_hits))
    out["mean_context_share_all"] = float(torch.cat(all_context).mean()) if all_context else None
    out["groups"] = group_figures(per_factor, judged)
    if visible is not None:
        out["visible_factors"] = sorted(visible)
        out["groups_visible"] = group_figures(per_factor, [f for f in judged if f in visible])
    out["median_named_mass"] = float(torch.cat([m.flatten() for m in mass]).median()) if mass else None
    return out


#: Factor groups of the targets. Artifacts count only where the reports name them: the phantom
#: reports (``data.phantom.report.write_report``) state the view (portable AP), rotation and
#: exposure, never collimation or the laterality marker, so no report concept can name those two.
GROUPS: dict[str, tuple[str, ...]] = {
    "findings": FINDING_FACTORS,
    "devices": DEVICE_FACTORS,
    "artifacts": tuple(f for f in ARTIFACT_FACTORS if f not in ("laterality_marker", "collimation")),
}


def group_figures(per_factor: dict[str, dict[str, torch.Tensor]], judged: list[str]) -> dict[str, Any]:
    """Median named share, median signed named share and named top-3 hit rate over the moved
    logits of each factor group's judged factors (and of all of them)."""
    out = {}
    for g, fs in [*GROUPS.items(), ("all", tuple(f for gs in GROUPS.values() for f in gs))]:
        cats = [per_factor[f] for f in fs if f in per_factor and f in judged]
        if not cats:
            out[g] = {"moved_logits": 0}
            continue
        ns = torch.cat([c["named_share"] for c in cats])
        out[g] = {
            "moved_logits": len(ns),
            "median_named_share": float(ns.median()),
            "median_signed_named_share": float(torch.cat([c["signed_named_share"] for c in cats]).median()),
            "named_top_hit_rate": float(torch.cat([c["named_hit"].float() for c in cats]).mean()),
        }
    return out


def named_mass_shares(p: Parts, named: torch.Tensor) -> torch.Tensor:
    """(B, C) the share of each explanation's absolute contribution mass (items and rest parts;
    the error left out) carried by the ``named`` (I,) items."""
    a = p.items.abs()
    rest = sum((v.abs() for k, v in p.rest.items() if k != "error"), torch.zeros_like(p.logits))
    return (a * named.view(1, -1, 1)).sum(1) / (a.sum(1) + rest).clamp(min=1e-12)


def embedding_figures(
    e_on: torch.Tensor,
    e_off: torch.Tensor,
    pairs: list[Pair],
    e_assign: torch.Tensor,
    gt_assign: np.ndarray,
    factors: tuple[str, ...] = ALL_FACTORS,
) -> dict[str, dict[str, float]]:
    """Per factor: a linear probe on e (fitted on the assignment split) scoring the pair images
    (with: positive, without: negative), and the mean embedding shift between the two renders,
    also relative to the mean distance between random images."""
    fac = np.array([p.factor for p in pairs])
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(e_assign), generator=g)
    typical = float((e_assign - e_assign[perm]).norm(dim=1).mean())
    out = {}
    for j, f in enumerate(factors):
        rows = np.where(fac == f)[0]
        y = gt_assign[:, j]
        r: dict[str, float] = {}
        if 0 < y.sum() < len(y) and len(rows):
            clf = LogisticRegression(C=1.0, max_iter=2000).fit(e_assign.numpy(), y)
            s = np.concatenate(
                [clf.decision_function(e_on[rows].numpy()), clf.decision_function(e_off[rows].numpy())]
            )
            r["probe_auroc_on_pairs"] = float(
                roc_auc_score(np.r_[np.ones(len(rows)), np.zeros(len(rows))], s)
            )
        shift = (e_on[rows] - e_off[rows]).norm(dim=1)
        r["embedding_shift"] = float(shift.mean()) if len(rows) else 0.0
        r["shift_vs_random_pair"] = r["embedding_shift"] / typical if typical > 0 else float("nan")
        out[f] = r
    return out


def naming_precision(concepts: list[str | None], item_factor: list[str | None]) -> dict[str, Any]:
    """Among named items, the share whose name's concept is the factor they detect best (at the
    assignment AUROC); and the coverage: named items, and the items with a factor that are named
    after it."""
    named = [c is not None for c in concepts]
    right = [c is not None and c == f for c, f in zip(concepts, item_factor, strict=True)]
    with_factor = [f is not None for f in item_factor]
    return {
        "named": int(sum(named)),
        "items": len(concepts),
        "precision": float(sum(right) / sum(named)) if any(named) else None,
        "items_with_a_factor": int(sum(with_factor)),
        "named_after_their_factor": int(sum(right)),
        "coverage_of_items_with_a_factor": float(sum(right) / sum(with_factor)) if any(with_factor) else None,
    }


def gallery_factors(
    acts: np.ndarray, gt: np.ndarray, factors: tuple[str, ...], at: float, gallery: int = 20
) -> list[str | None]:
    """Each item's factor by what its images show: the factor most over-represented in its
    gallery (its ``gallery`` strongest activations), when at least ``at`` of the gallery carries
    it (:func:`~lanic_hub.patterns.phantom_check.gallery_purity`); a rare, pure item passes, which
    the AUROC assignment never lets it do."""
    if acts.shape[1] == 0:
        return []
    share, which, _ = gallery_purity(acts, gt, gallery=gallery)
    return [factors[w] if w >= 0 and sh >= at else None for sh, w in zip(share, which, strict=True)]


def naming_precision_either(
    concepts: list[str | None], by_auroc: list[str | None], by_gallery: list[str | None]
) -> dict[str, Any]:
    """Among named items, the share whose name is their factor by either assignment (AUROC, or
    gallery purity)."""
    named = [c is not None for c in concepts]
    right = [c is not None and c in (a, g) for c, a, g in zip(concepts, by_auroc, by_gallery, strict=True)]
    return {
        "named": int(sum(named)),
        "precision": float(sum(right) / sum(named)) if any(named) else None,
        "named_after_their_factor": int(sum(right)),
    }
