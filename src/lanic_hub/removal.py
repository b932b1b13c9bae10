"""Taking items out of a LanIC model through its exact decomposition (shortcut removal).

A model's logit splits exactly (:mod:`lanic_hub.explain`)::

    logit_c = bias_c + Σ_items contribution_item,c + error_c

where the items are bank patterns and loose latents, or, one level up, report concepts (plus the
reference and the residual). A model *without* a set of items predicts::

    logit'_c = logit_c - Σ_{removed items} contribution_item,c

and keeps its error term as it is (the SAEBench SCR convention: only what the dictionary explains
can be taken out). Items are removed at one level: concepts, or patterns and latents (the two
levels split the same sum, so removing from both would count some of it twice).

The removal is recorded in ``config.json`` (``removed``) and on the model card, and survives
``save_pretrained`` / ``from_pretrained``::

    model = LanICModel.from_pretrained("runs/quickstart/model")
    fixed = model.without(concepts=["chest tube"], reason="a shortcut for Atelectasis")
    fixed.save_pretrained("runs/no-tube")

Choosing the items without ground truth: by a concept's name, or from a labelled reference set
(:func:`items_from_reference`: the patterns whose contribution differs most between images with
and without a label, e.g. CheXpert's "Support Devices"). Writing a changed model folder and
measuring it: :mod:`lanic_hub.removal_io`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import ConfigError

MIN_SHARE = 0.25
"""A reference set chooses items scoring at least this share of the top item's score."""


class RemovalError(ConfigError):
    """An item to remove is unknown to the model, or the request mixes levels."""


@dataclass(frozen=True)
class Removal:
    """What a model leaves out: concept keys, or bank pattern ids and ``(member, latent)`` pairs."""

    concepts: tuple[str, ...] = ()
    patterns: tuple[int, ...] = ()
    latents: tuple[tuple[int, int], ...] = ()
    reason: str = ""
    """Why (free text, shown on the card)."""
    chosen_by: str = ""
    """How the items were chosen ("concept name", "reference set: ...", "by hand")."""
    history: tuple[dict[str, Any], ...] = field(default=())
    """Earlier removals merged into this one, each as its own dict (a model changed twice)."""

    def __bool__(self) -> bool:
        return bool(self.concepts or self.patterns or self.latents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concepts": list(self.concepts),
            "patterns": list(self.patterns),
            "latents": [list(x) for x in self.latents],
            "reason": self.reason,
            "chosen_by": self.chosen_by,
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Removal:
        if not d:
            return cls()
        try:
            return cls(
                concepts=tuple(str(k) for k in d.get("concepts", ())),
                patterns=tuple(int(p) for p in d.get("patterns", ())),
                latents=tuple((int(t), int(i)) for t, i in d.get("latents", ())),
                reason=str(d.get("reason", "")),
                chosen_by=str(d.get("chosen_by", "")),
                history=tuple(d.get("history", ())),
            )
        except (TypeError, ValueError) as exc:
            raise RemovalError(f"config.json 'removed': malformed ({exc}): {d!r}") from exc

    def describe(self, model) -> str:
        """One line: what is left out, by name."""
        parts = []
        if self.concepts:
            names = (
                dict(zip(model.concepts.keys, model.concepts.names, strict=True)) if model.concepts else {}
            )
            parts.append("concepts " + ", ".join(repr(names.get(k, k)) for k in self.concepts))
        if self.patterns:
            parts.append("patterns " + ", ".join(f"{p} ({model.patterns[p].name!r})" for p in self.patterns))
        if self.latents:
            parts.append(f"{len(self.latents)} latents")
        return "; ".join(parts) or "nothing"


def _nearest(word: str, options: list[str]) -> str:
    lower = {o.lower(): o for o in reversed(options)}  # the first spelling of each
    shown = [lower[o] for o in difflib.get_close_matches(word.lower(), list(lower), n=5, cutoff=0.4)]
    return f"nearest: {', '.join(repr(o) for o in shown)}" if shown else f"known: {', '.join(options[:12])}"


def resolve(
    model,
    concepts=(),
    patterns=(),
    latents=(),
    reason: str = "",
    chosen_by: str = "",
) -> Removal:
    """Check the requested items against ``model`` and return them as a :class:`Removal` (merged
    with what the model already leaves out). Concepts by key or name (any case); patterns by id,
    or by name (every pattern carrying it); latents as ``(member, latent)``."""
    concepts = [concepts] if isinstance(concepts, str) else list(concepts)
    patterns = [patterns] if isinstance(patterns, (str, int)) else list(patterns)
    keys: list[str] = []
    if concepts:
        cd = model.concepts
        if cd is None:
            raise RemovalError(
                "this model has no concept directions (built before them): remove patterns instead, "
                "or rebuild its bank (lanic-hub patterns)"
            )
        by = {k.lower(): k for k in cd.keys} | {n.lower(): k for n, k in zip(cd.names, cd.keys, strict=True)}
        for c in concepts:
            k = by.get(str(c).lower().strip())
            if k is None:
                raise RemovalError(
                    f"unknown concept {c!r}; {_nearest(str(c), list(cd.names) + list(cd.keys))}"
                )
            keys.append(k)
    pids: list[int] = []
    P = len(model.patterns)
    for p in patterns:
        if isinstance(p, (int, np.integer)) or (isinstance(p, str) and p.strip().isdigit()):
            q = int(p)
            if not 0 <= q < P:
                raise RemovalError(f"pattern {q} does not exist: the bank has patterns 0..{P - 1}")
            pids.append(q)
        else:
            hits = [x.id for x in model.patterns if x.name.lower() == str(p).lower().strip()]
            if not hits:
                names = sorted({x.name for x in model.patterns})
                raise RemovalError(f"no pattern is named {p!r}; {_nearest(str(p), names)}")
            pids += hits
    T, L = model.ensemble.cfg.n_members, model.ensemble.cfg.n_latents
    lat = []
    for x in latents:
        t, i = (int(v) for v in x)
        if not (0 <= t < T and 0 <= i < L):
            raise RemovalError(
                f"latent ({t}, {i}) does not exist: the ensemble has {T} members of {L} latents"
            )
        lat.append((t, i))
    old = model.removal
    new = Removal(
        concepts=tuple(dict.fromkeys([*old.concepts, *keys])),
        patterns=tuple(dict.fromkeys([*old.patterns, *pids])),
        latents=tuple(dict.fromkeys([*old.latents, *lat])),
        reason="; ".join(x for x in (old.reason, reason) if x),
        chosen_by="; ".join(x for x in (old.chosen_by, chosen_by) if x),
        history=(*old.history, old.to_dict()) if old else (),
    )
    if new.concepts and (new.patterns or new.latents):
        raise RemovalError(
            "remove concepts, or patterns and latents, not both: the two levels split the same "
            "contributions, so some would be taken out twice"
        )
    if not new:
        raise RemovalError("nothing to remove: give concepts, patterns or latents")
    return new


def latent_mask(model, removal: Removal) -> torch.Tensor:
    """(T*L,) bool: the latents a pattern/latent removal takes out."""
    T, L = model.ensemble.cfg.n_members, model.ensemble.cfg.n_latents
    mask = torch.zeros(T * L, dtype=torch.bool)
    for p in removal.patterns:
        for t, i in model.patterns[p].members:
            mask[t * L + i] = True
    for t, i in removal.latents:
        mask[t * L + i] = True
    return mask


@torch.no_grad()
def removed_contributions(
    model, e: torch.Tensor, removal: Removal | None = None, chunk: int = 1024
) -> torch.Tensor:
    """(B, C) the summed contribution of the removed items to each logit of embeddings ``e``: what
    the changed model subtracts (zeros when nothing is removed)."""
    from .decomposition import latent_contributions
    from .transcoders.ensemble import flat_latents

    removal = model.removal if removal is None else removal
    e = e.to(model.device, model.dtype).reshape(-1, model.config.d_in)
    C = len(model.config.findings)
    if not removal:
        return torch.zeros(len(e), C, dtype=e.dtype, device=e.device)
    if removal.concepts:
        idx = torch.tensor([model.concepts.keys.index(k) for k in removal.concepts])
        return concept_contributions(model, e, chunk)[:, idx, :].sum(1).to(e.dtype)
    out = torch.zeros(len(e), C, dtype=e.dtype, device=e.device)
    ens, U, bias = model.ensemble, model.logit_weights, model.encoder_bias
    mask = latent_mask(model, removal).to(e.device)
    for a in range(0, len(e), chunk):
        v, i = ens.encode(e[a : a + chunk].float(), bias=bias)
        hit = mask[flat_latents(i, ens.cfg.n_latents)]  # (b, T, k)
        out[a : a + chunk] = (latent_contributions(v, i, U) * hit.unsqueeze(-1)).sum((1, 2)).to(out.dtype)
    return out


@torch.no_grad()
def concept_contributions(model, e: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(B, K, C) float32: each report concept's contribution to each logit of embeddings ``e``
    (the concept level of the exact decomposition, :func:`~lanic_hub.explain.decomposition_by_concept`).
    Removing concepts subtracts the sum of their columns."""
    from .explain import decomposition_by_concept

    if model.concepts is None:
        raise RemovalError("this model has no concept directions")
    e = e.to(model.device, model.dtype).reshape(-1, model.config.d_in)
    ens, U, bias = model.ensemble, model.logit_weights, model.encoder_bias
    parts = []
    for a in range(0, len(e), chunk):
        x = e[a : a + chunk].float()
        v, i = ens.encode(x, bias=bias)
        parts.append(decomposition_by_concept(model.concepts, x, v, i, U, ens, bias).concepts.float())
    return torch.cat(parts) if parts else torch.zeros(0, len(model.concepts.keys), len(model.config.findings))


@torch.no_grad()
def _both_classes(label) -> np.ndarray:
    """``label`` as bools, refused unless the reference set has images with and without it."""
    label = np.asarray(label).astype(bool)
    if label.all() or not label.any():
        raise RemovalError(
            "the reference set needs images with and without the label "
            f"(got {int(label.sum())} of {len(label)})"
        )
    return label


def items_from_reference(
    model,
    e: torch.Tensor,
    label: np.ndarray,
    finding: str,
    budget: int = 5,
    level: str = "patterns",
    strata: np.ndarray | None = None,
    min_share: float = MIN_SHARE,
) -> tuple[list, dict[str, Any]]:
    """The items whose contribution to ``finding`` differs most between reference images with
    the label (e.g. a device) and without it: the mean contribution among labelled images minus
    the mean among the others, largest first (an item that raises the finding more when the
    label is there). ``strata`` (e.g. the finding's own label): the difference is taken within
    each stratum and averaged by its size, so that items of the finding itself, which differ
    only because the label and the finding co-occur, are not chosen; at the concept level the
    finding's own concept is never chosen. ``level``: "patterns" (bank
    pattern ids) or "concepts" (concept keys). At most ``budget`` items are chosen, and only those
    scoring at least ``min_share`` of the top score: where one item stands far above the rest (the
    chest tube concept scores 1.77, the next concept 0.20, on the shortcut world of seed 0), the
    rest are not the label's. Returns (items, a report of the scores)."""
    from .explain import decomposition_by_pattern

    if level not in ("patterns", "concepts"):
        raise RemovalError(f"level {level!r}: choose 'patterns' or 'concepts'")
    if level == "concepts" and model.concepts is None:
        raise RemovalError("this model has no concept directions: choose patterns from the reference set")
    label = _both_classes(label)
    c = list(model.config.findings).index(finding)
    e = e.to(model.device, model.dtype).reshape(-1, model.config.d_in).float()
    per = []
    for a in range(0, len(e), 1024):
        parts = decomposition_by_pattern(
            model.classifier,
            model.ensemble,
            model.bank,
            e[a : a + 1024],
            U=model.logit_weights,
            encoder_bias=model.encoder_bias,
            concepts=model.concepts if level == "concepts" else None,
        )
        per.append(parts.concept.concepts[:, :, c] if level == "concepts" else parts.patterns[:, :, c])
    contrib = torch.cat(per).double().numpy()
    groups = np.zeros(len(label), dtype=int) if strata is None else np.unique(strata, return_inverse=True)[1]
    diff, weight = np.zeros(contrib.shape[1]), 0
    for g in np.unique(groups):
        s_ = groups == g
        if label[s_].any() and (~label[s_]).any():
            diff += s_.sum() * (contrib[s_ & label].mean(0) - contrib[s_ & ~label].mean(0))
            weight += s_.sum()
    if weight == 0:
        raise RemovalError("no stratum of the reference set has images both with and without the label")
    diff /= weight
    # never the finding's own concept: a shortcut's removal keeps the finding's evidence (a label
    # that co-occurs with the finding beyond its report label would otherwise choose it)
    own = finding.lower().replace(" ", "_")
    excluded = [own] if level == "concepts" and own in model.concepts.keys else []
    for k in excluded:
        diff[model.concepts.keys.index(k)] = -np.inf
    order = np.argsort(-diff)[:budget]
    if not len(order):
        raise RemovalError(f"the model has no {level} to choose from")
    if not 0.0 <= min_share <= 1.0:
        raise RemovalError(f"min_share must be in [0, 1], got {min_share}")
    if min_share > 0:
        if diff[order[0]] <= 0:
            raise RemovalError(f"no item contributes more to {finding} with the label than without it")
        order = order[diff[order] >= min_share * diff[order[0]]]
    if level == "concepts":
        items = [model.concepts.keys[j] for j in order]
    else:
        items = [int(j) for j in order]
    report = {
        "level": level,
        "with_label": int(label.sum()),
        "without_label": int((~label).sum()),
        "score": "mean contribution with the label minus without"
        + (", within the strata of the finding's label" if strata is not None else ""),
        "items": [{"item": it, "score": float(diff[j])} for it, j in zip(items, order, strict=True)],
        "next": [
            {"item": model.concepts.keys[j] if level == "concepts" else int(j), "score": float(diff[j])}
            for j in np.argsort(-diff)[len(items) : len(items) + 3]
            if np.isfinite(diff[j])
        ],
        "min_share": min_share,
        "excluded": excluded,
    }
    return items, report


def fit_reference_concept(
    model,
    e: torch.Tensor,
    label: np.ndarray,
    name: str,
    *,
    covariates: np.ndarray | None = None,
    check_share: float = 0.2,
    seed: int = 0,
    ridge: float = 1e-3,
):
    """A copy of ``model`` whose concept directions include one fitted on a labelled image set.
    Its direction is the label's coefficient when the embeddings are regressed (ridge least
    squares) on an intercept, ``covariates`` (N, m) and the label, on a seeded ``1 - check_share``
    of the rows: what the label adds with the covariates held fixed. Give the set's finding labels
    as covariates: a device or artifact co-occurs with findings, and a plain mean difference
    (no covariates) carries them along (on the shortcut world's portable marker it took out
    pleural effusion evidence too). Covariates are shrunk like the label (ridge): give them on its
    scale (0/1 labels, or standardised values). The name is checked on the other rows
    (:meth:`~lanic_hub.patterns.concepts.ConceptDirections.with_direction`). The concept's key is
    ``"labelled " + name``; remove it with ``.without(concepts=[key])``. Returns (model, report)."""
    if model.concepts is None:
        raise RemovalError("this model has no concept directions to add a concept to")
    label = _both_classes(label)
    if not 0 < check_share < 1:
        raise RemovalError(f"check_share must be in (0, 1), got {check_share}")
    n = len(label)
    cov = np.zeros((n, 0)) if covariates is None else np.asarray(covariates, dtype=float).reshape(n, -1)
    key = f"labelled {name}"
    check = np.zeros(n, bool)
    check[np.random.default_rng(seed).permutation(n)[: max(1, round(check_share * n))]] = True
    fit = torch.from_numpy(~check)
    E = e.reshape(n, -1).double()[fit]
    X = torch.from_numpy(np.column_stack([np.ones(n), cov, label.astype(float)])[~check])
    if not (label[~check].any() and (~label[~check]).any()):
        raise RemovalError("the reference set's fitting rows need images both with and without the label")
    reg = ridge * len(X) * torch.eye(X.shape[1], dtype=torch.float64)
    reg[0, 0] = 0.0  # the intercept is not shrunk
    direction = torch.linalg.solve(X.T @ X + reg, X.T @ E)[-1]
    fitted = (
        f"{int((label & ~check).sum())} images with '{name}' and {int((~label & ~check).sum())} without"
        + (f", {cov.shape[1]} covariates held fixed" if cov.shape[1] else "")
    )
    concepts = model.concepts.with_direction(
        key, direction, e.reshape(n, -1)[torch.from_numpy(check)].float(), label[check], fitted_on=fitted
    )
    sup = concepts.support[-1]
    return model.with_concepts(concepts), {
        "key": key,
        "fitted_on": fitted,
        "checked_on": f"{int(check.sum())} held-out rows of the reference set",
        "auroc": sup["auroc"],
        "named": sup["named"],
        "covariates": int(cov.shape[1]),
    }
