"""Removing a shortcut, measured by the accuracy it wins back (the ``phantom-shortcut`` suite's
second table; SHIFT, Marks et al. 2024; SAEBench's spurious-correlation removal, SCR).

The shortcut world's model learned a coupling (default: a chest tube with atelectasis). Each
method below takes something out of it, and is judged on test images where the coupling does not
hold: a *decoupled* set (the factor drawn independently) and an *anti-coupled* one (the factor
exactly where the finding is absent). For the finding::

    normalised SCR = (A_after - A_before) / (A_control - A_before)

where A_control is the AUROC of the control world's model (trained without the coupling) on the
same images: 0 wins nothing back, 1 wins back all the control model has. The collateral is the
largest change of another finding's AUROC, and the pair effect is the share of the factor's own
effect on the finding's logit (the same image rendered with and without it) that the removal
takes away. The methods, each with the same budget of removed items where that applies:

- ``concept``: the concept named for the factor (what a reader of the explanation removes);
- ``reference-set``: the patterns whose contribution differs most between the world's
  train+validate images with and without a label (the report's "Support Devices" for a device,
  the factor's hand label for an artifact), within the strata of the finding's own label, kept
  while their score is at least a quarter of the top one (:func:`~lanic_hub.removal.items_from_reference`);
- ``reference-set-concepts``: the same choice among the report concepts;
- ``reference-concept``: a concept of the label itself, fitted on the same images: the label's
  coefficient when the embeddings are regressed on every finding's report label and the label
  (:func:`~lanic_hub.removal.fit_reference_concept`);
- ``oracle``: the patterns whose ground-truth factor is the shortcut (ranked the same way);
- ``random``: random non-context patterns (the mean over draws, with the spread);
- ``leace``: LEACE (Belrose et al. 2023, EleutherAI's concept-erasure) of the same label from the
  embeddings, fitted on the same images;
- ``retrain-head``: the finding's output unit retrained on the hidden layer with the four
  (factor, finding) groups weighted equally (deep feature reweighting; the upper reference: it
  uses the ground-truth factor).

Beside them, one reference that is not a method: ``factor-absent``, the shortcut model on the same
test images rendered again without the factor (the phantom world can; a real dataset cannot). It
is what taking out exactly the factor's effect, and nothing else, wins back: where its SCR is far
below 1, the rest of the gap to the control model is not the factor's, and no removal of it can
win that back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..data.phantom import truth
from ..data.phantom.case import DEVICE_FACTORS

METHODS = (
    "concept",
    "reference-set",
    "reference-set-concepts",
    "reference-concept",
    "oracle",
    "random",
    "leace",
    "retrain-head",
)
BUDGET = 5
RANDOM_DRAWS = 10


@dataclass
class TestSet:
    name: str
    x: torch.Tensor
    """(N, d) embeddings."""
    gt: np.ndarray
    """(N, C) bool ground truth of each finding."""
    factor: np.ndarray
    """(N,) bool: the image carries the shortcut factor."""
    x_without: torch.Tensor | None = None
    """(N, d) the same images with the factor switched off (re-rendered; the phantom world only)."""


@dataclass
class Reference:
    """The labelled images the methods may learn from: the shortcut world's train+validate."""

    x: torch.Tensor
    label: np.ndarray
    """(N,) bool: the label a user has (a device report label, or a hand label)."""
    label_name: str
    finding_label: np.ndarray
    """(N,) bool: the finding's own report label (the strata)."""
    gt_factor: np.ndarray
    gt_finding: np.ndarray
    findings: np.ndarray | None = None
    """(N, C) the report labels of every finding (U-Zeros): what a concept of the label is fitted
    beside (:func:`~lanic_hub.removal.fit_reference_concept`)."""


def scr(a_before: float, a_after: float, a_control: float) -> float:
    """Normalised SCR: the share of the gap to the control model that the removal wins back."""
    den = a_control - a_before
    return (a_after - a_before) / den if abs(den) > 1e-12 else float("nan")


def _aurocs(logits: np.ndarray, gt: np.ndarray) -> list[float]:
    return [
        float(roc_auc_score(gt[:, j], logits[:, j])) if 0 < gt[:, j].sum() < len(gt) else float("nan")
        for j in range(gt.shape[1])
    ]


Logits = Callable[[torch.Tensor], np.ndarray]


@torch.no_grad()
def _model_logits(model) -> Logits:
    return lambda x: torch.cat(
        [model(embeddings=x[a : a + 2048]).logits.detach().float() for a in range(0, len(x), 2048)]
    ).numpy()


class ConceptParts:
    """The (N, K, C) concept contributions of each set of embeddings the suite evaluates, computed
    once per tensor and shared by every concept-level removal: the concept level's Shapley split
    is the suite's costliest step, and a model without concepts ``S`` predicts exactly the
    classifier's logits minus the sum of ``S``'s columns
    (:func:`~lanic_hub.removal.removed_contributions`)."""

    def __init__(self, model) -> None:
        self.model = model
        self._memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from ..removal import concept_contributions

        key = (x.data_ptr(), tuple(x.shape), x.dtype)
        if key not in self._memo:  # the tensor is kept with its parts, so its address is not reused
            self._memo[key] = (x, concept_contributions(self.model, x))
        return self._memo[key][1]

    def without(self, keys: list[str]) -> Logits:
        """The logits of the model without concepts ``keys``."""
        idx = [self.model.concepts.keys.index(k) for k in keys]
        base = _model_logits(self.model)
        return lambda x: base(x) - self(x)[:, idx, :].sum(1).numpy()


def methods(
    model,
    ref: Reference,
    factor: str,
    finding: str,
    *,
    budget: int = BUDGET,
    draws: int = RANDOM_DRAWS,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """{method: {"logits": [fn, ...] (one per draw), "removed": [...], "chosen_by": str}} (or
    {"error": why} for a method that cannot run on this model)."""
    from ..removal import RemovalError, fit_reference_concept, items_from_reference

    out: dict[str, dict[str, Any]] = {}
    parts = ConceptParts(model) if model.concepts is not None else None
    # concept: the concept whose key is the factor (its name is what the explanation shows)
    try:
        cm = model.without(concepts=[factor], chosen_by="concept name", reason=f"shortcut for {finding}")
        k = model.concepts.keys.index(factor)
        out["concept"] = {
            "logits": [parts.without([factor])],  # = cm's own logits, from the shared concept split
            "removed": [model.concepts.names[k]],
            "model": cm,
            # whether held-out reports support the concept's name (a reader sees it named only then)
            "named": bool(model.concepts.named[k]),
        }
    except (RemovalError, ValueError) as exc:
        out["concept"] = {"error": f"no concept for {factor}: {exc}"}
    # reference set: the user's label, within the strata of the finding's own label
    try:
        items, rep = items_from_reference(
            model, ref.x, ref.label, finding, budget, "patterns", strata=ref.finding_label
        )
        rm = model.without(patterns=items, chosen_by=f"reference set ({ref.label_name})")
        out["reference-set"] = {
            "logits": [_model_logits(rm)],
            "removed": [f"{p} ({model.patterns[p].name})" for p in items],
            "scores": rep["items"],
        }
    except RemovalError as exc:
        out["reference-set"] = {"error": str(exc)}
    # the same, one level up: the report concepts whose contribution differs most
    try:
        items, rep = items_from_reference(
            model, ref.x, ref.label, finding, budget, "concepts", strata=ref.finding_label
        )
        out["reference-set-concepts"] = {
            "logits": [parts.without(items)],
            "removed": [model.concepts.names[model.concepts.keys.index(k)] for k in items],
            "scores": rep["items"] + rep["next"],
        }
    except RemovalError as exc:
        out["reference-set-concepts"] = {"error": str(exc)}
    # a concept of the label itself, fitted on the reference images within the finding's strata
    try:
        fm, fit = fit_reference_concept(
            model, ref.x, ref.label, "Support Devices" if factor in DEVICE_FACTORS else factor,
            covariates=ref.findings,
        )  # fmt: skip
        out["reference-concept"] = {
            "logits": [ConceptParts(fm).without([fit["key"]])],
            "removed": [fit["key"]],
            "fitted": fit,
        }
    except RemovalError as exc:
        out["reference-concept"] = {"error": str(exc)}
    # oracle: ground-truth patterns of the factor, ranked by the same difference with perfect labels
    gt_ids = {p.id for p in model.patterns if (p.best_factor or {}).get("factor") == factor}
    if gt_ids:
        ranked, _ = items_from_reference(
            model, ref.x, ref.gt_factor, finding, len(model.patterns), "patterns", strata=ref.gt_finding,
            min_share=0.0,
        )  # fmt: skip
        pick = [p for p in ranked if p in gt_ids][:budget]  # the bank's patterns of that factor
        om = model.without(patterns=pick, chosen_by="ground truth (oracle)")
        out["oracle"] = {
            "logits": [_model_logits(om)],
            "removed": [f"{p} ({model.patterns[p].name})" for p in pick],
            "ground_truth_patterns": len(gt_ids),
        }
    else:
        out["oracle"] = {"error": f"no pattern's ground-truth factor is {factor}"}
    # random: non-context patterns, several draws
    pool = [p.id for p in model.patterns if not p.dense]
    rng = np.random.default_rng(seed)
    fns, removed = [], []
    for _ in range(draws if pool else 0):
        pick = sorted(rng.choice(pool, size=min(budget, len(pool)), replace=False).tolist())
        fns.append(_model_logits(model.without(patterns=pick, chosen_by="random")))
        removed.append(pick)
    out["random"] = {"logits": fns, "removed": removed} if pool else {"error": "the bank has no patterns"}
    # LEACE: erase the same label from the embeddings, fitted on the same images
    from concept_erasure import LeaceEraser

    eraser = LeaceEraser.fit(ref.x.double(), torch.from_numpy(ref.label.astype(np.float64)).unsqueeze(1))
    base = _model_logits(model)
    out["leace"] = {
        "logits": [lambda x: base(eraser(x.double()).float())],
        "removed": [f"the linear information on '{ref.label_name}' in the embeddings"],
    }
    # retrain the finding's head unit on the hidden layer, the four groups weighted equally
    out["retrain-head"] = _retrained_head(model, ref, finding)
    return out


def _retrained_head(model, ref: Reference, finding: str) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    c = list(model.config.findings).index(finding)
    with torch.no_grad():
        h = model.classifier.hidden(ref.x.float()).numpy()
    groups = ref.gt_factor.astype(int) * 2 + ref.gt_finding.astype(int)
    counts = np.bincount(groups, minlength=4)
    if (counts == 0).any():
        return {"error": f"a (factor, finding) group is empty among the reference images: {counts.tolist()}"}
    w = (len(groups) / (4 * counts))[groups]
    lr = LogisticRegression(C=1.0, max_iter=5000).fit(h, ref.gt_finding.astype(int), sample_weight=w)
    base = _model_logits(model)

    def logits(x: torch.Tensor) -> np.ndarray:
        out = base(x)
        with torch.no_grad():
            out[:, c] = lr.decision_function(model.classifier.hidden(x.float()).numpy())
        return out

    return {"logits": [logits], "removed": [], "groups": counts.tolist()}


def removal_table(
    model,
    control,
    found: dict[str, dict[str, Any]],
    tests: list[TestSet],
    finding: str,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The figures of each method on each test set (SCR, AUROC before / after / control,
    collateral) and on the counterfactual pairs (the share of the factor's effect removed).
    Per method, the top-level keys are the first test set's (decoupled); ``by_split`` has all."""
    c = list(model.config.findings).index(finding)
    before, ctrl = _model_logits(model), _model_logits(control)
    base = {t.name: (_aurocs(before(t.x), t.gt), _aurocs(ctrl(t.x), t.gt)) for t in tests}
    if pairs is not None:
        on, off = pairs
        d_before = before(on)[:, c] - before(off)[:, c]
    if tests and all(t.x_without is not None for t in tests):
        found = {
            **found,
            "factor-absent": {
                "logits": [before],
                "input": "without",
                "removed": ["the factor itself (the test images rendered again without it)"],
            },
        }
    res: dict[str, Any] = {}
    for name, m in found.items():
        if "error" in m:
            res[name] = {"error": m["error"]}
            continue
        by_split = {}
        for t in tests:
            a0, ac = base[t.name]
            x = t.x_without if m.get("input") == "without" else t.x
            runs = [_aurocs(fn(x), t.gt) for fn in m["logits"]]
            after = np.nanmean(np.array(runs), axis=0).tolist()
            scrs = [scr(a0[c], r[c], ac[c]) for r in runs]
            others = [j for j in range(len(a0)) if j != c]
            coll = {model.config.findings[j]: after[j] - a0[j] for j in others}
            by_split[t.name] = {
                "aurocs_before": dict(zip(model.config.findings, a0, strict=True)),
                "aurocs_after": dict(zip(model.config.findings, after, strict=True)),
                "scr": float(np.mean(scrs)),
                "scr_spread": float(np.std(scrs)) if len(scrs) > 1 else 0.0,
                "auroc_before": a0[c],
                "auroc_after": after[c],
                "auroc_control": ac[c],
                "collateral": coll,
                "collateral_max": max((abs(v) for v in coll.values()), default=0.0),
                "collateral_loss_max": max((-v for v in coll.values() if v < 0), default=0.0),
                "images": len(t.x),
                "images_with_factor": int(t.factor.sum()),
            }
        entry = {**by_split[tests[0].name], "by_split": by_split}
        entry["removed"] = m["removed"]
        if pairs is not None and m.get("input") != "without":
            shares = []
            for fn in m["logits"]:
                d_after = fn(on)[:, c] - fn(off)[:, c]
                shares.append(1.0 - float(d_after.mean()) / float(d_before.mean()))
            entry["pair_effect_removed"] = float(np.mean(shares))
            entry["pair_effect_before"] = float(d_before.mean())
        for k in ("scores", "ground_truth_patterns", "groups", "named"):
            if k in m:
                entry[k] = m[k]
        res[name] = entry
    return res


def reference_label(factor: str) -> tuple[str, str]:
    """(column, what it is) of the label a user has for the factor: the report's "Support
    Devices" for a device, a hand label (the ground truth) for an artifact."""
    if factor in DEVICE_FACTORS:
        return "Support Devices", "the report label 'Support Devices'"
    return truth.column(factor), f"a hand label of '{factor}'"


def markdown(r: dict[str, Any]) -> list[str]:
    """The removal table of one seed's results (lines)."""
    rem = r.get("removal") or {}
    if not rem:
        return []
    splits = next((list(v["by_split"]) for v in rem.values() if "by_split" in v), [])
    lines = [
        "",
        f"### Removal (budget {r.get('budget', BUDGET)} items; seed {r['seed']})",
        "",
        f"Measured on {', '.join(f'{s} ({rem_images(rem, s)} test phantoms)' for s in splits)}: fresh "
        "phantoms no model saw, AUROC against the ground truth. SCR = (after - before) / (control - before). "
        "Collateral: the largest AUROC change of another finding (in brackets: the largest loss). "
        "Pair effect removed: the share of the "
        f"factor's mean effect on the finding's logit (the same image with and without it, "
        f"{r.get('pairs', 0)} pairs) that the removal takes away."
        + (
            " factor-absent is a reference, not a method: the shortcut model on the same test images "
            "rendered again without the factor (what taking out exactly the factor's effect wins back)."
            if "factor-absent" in rem
            else ""
        ),
        "",
        "| method | "
        + " | ".join(f"SCR {s} | AUROC {s}: before -> after (control)" for s in splits)
        + " | collateral max (largest loss) | pair effect removed | removed |",
        "|---|" + "---|---|" * len(splits) + "---|---|---|",
    ]
    for name, v in rem.items():
        if "error" in v:
            lines.append(f"| {name} | " + " | ".join(["-", "-"] * len(splits)) + f" | - | - | {v['error']} |")
            continue
        cells = []
        for s in splits:
            b = v["by_split"][s]
            spread = f" ± {b['scr_spread']:.2f}" if b.get("scr_spread") else ""
            cells += [
                f"{b['scr']:.2f}{spread}",
                f"{b['auroc_before']:.3f} -> {b['auroc_after']:.3f} ({b['auroc_control']:.3f})",
            ]
        coll = max(v["by_split"][s]["collateral_max"] for s in splits)
        loss = max(v["by_split"][s].get("collateral_loss_max", float("nan")) for s in splits)
        removed = v["removed"]
        shown = (
            f"{len(removed)} draws of {len(removed[0])} patterns"
            if removed and isinstance(removed[0], list)
            else ", ".join(map(str, removed)) or "-"
        )
        pe = v.get("pair_effect_removed")
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {coll:.3f} ({loss:.3f}) | "
            + ("-" if pe is None or math.isnan(pe) else f"{pe:.0%}")
            + f" | {shown} |"
        )
    return lines


def rem_images(rem: dict[str, Any], split: str) -> int:
    return next((v["by_split"][split]["images"] for v in rem.values() if "by_split" in v), 0)
