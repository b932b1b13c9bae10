"""The counterfactual suite ``phantom-counterfactual``: when a factor moves a logit, does the
explanation put the change on the patterns that stand for that factor, named for it?

A phantom case that carries a factor is rendered twice, with it and with ``Case.without(factor)``:
the same anatomy, noise and everything else, so the difference between the two logits is that
factor's causal effect. An explanation splits each logit exactly into items (bank patterns) plus
the latents outside the bank plus the ensemble's error, so the change splits too::

    Δlogit = Σ_items Δcontribution + Δunbanked + Δerror

For each factor and finding whose logit moved by more than ``moved_at``, we report how the
absolute change ``Σ|Δcontribution| + |Δunbanked| + |Δerror|`` is shared out:

- **factor share**: the share on items whose ground-truth factor is this one (an item's factor is
  the factor its activation detects best, by AUROC >= ``assign_auroc`` on a separate split);
- **named share**: the share on items *named* after the factor (their vocabulary concept is the
  factor; an item below the naming threshold is unnamed and never counts);
- **named top-3 hit**: whether such an item is among the 3 largest changes (items, unbanked, error);
- the shares of the unbanked latents and of the error.

Beside each factor: how well the embedding itself carries it (a linear probe on e, trained on the
separate split and tested on the pairs), and how far the embedding moves between the two renders,
so that a factor the backbone cannot see is told apart from one the transcoders fail to isolate.

Every method explains its own logit on the same pairs: the LanIC model (its bank) and baselines
(the same ensemble's raw latents without merging; a single TopK transcoder; plain-TopK and JumpReLU
ensembles; a TopK SAE on the embeddings with a sparse probe). Pure functions here take embeddings;
:func:`run_counterfactual_suite` draws, renders and embeds. Any phantom world works (the shortcut
world too): pass its :class:`~lanic_hub.data.phantom.PhantomConfig`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch

from .. import smoke
from ..constants import FINDINGS
from ..data.phantom import ALL_FACTORS, ARTIFACT_FACTORS, DEVICE_FACTORS, FINDING_FACTORS, PhantomConfig
from ..data.schema import dataset_fingerprint
from ..patterns.record import Pattern


@dataclass(frozen=True)
class CounterfactualConfig:
    """How the suite draws its pairs and what it counts."""

    pairs_per_factor: int = 40
    """Cases per factor, each rendered with and without it (17 factors: 680 pairs, ~1,200 images)."""
    seed: int = 7000
    """Seed of the pair cases (never used in training: the quickstart uses 0, the phantom CLIP 1000-1002)."""
    assign_n: int = 1000
    """Phantoms (seed ``seed + 1``) on which each item's ground-truth factor is assigned."""
    baseline_n: int = 2000
    """Phantoms (seed ``seed + 2``) the baselines are trained on (the model's classifier's hidden layer)."""
    moved_at: float = 0.5
    """A logit moved when |Δlogit| exceeds this."""
    assign_auroc: float = 0.9
    """An item stands for the factor it detects best when that AUROC reaches this."""
    visible_at: float = 0.85
    """A factor the embedding carries: a linear probe on e separates its pairs at this AUROC; the
    others are limits of the backbone, reported apart."""
    gallery_purity: float = 0.8
    """An item stands for the factor most over-represented in its top-20 gallery when at least
    this share of the gallery carries it (the fairer assignment, reported beside the AUROC one)."""
    top: int = 3
    """The hit rate looks at this many largest changes."""
    eligible_at: float = 0.1
    """A factor is judged when some finding's logit moves in at least this share of its pairs."""
    target_share: float = 0.5
    """Pass: the median factor share reaches this ..."""
    target_hit: float = 0.8
    """... and a pattern named after the factor is in the top 3 this often."""
    image_size: int = 224
    """Side in pixels of the rendered phantom pairs."""
    num_proc: int = 2
    """Processes rendering the pairs."""


@dataclass(frozen=True)
class Pair:
    index: int
    """Case index within the seed's stream."""
    factor: str


def draw_pairs(
    cfg: CounterfactualConfig, world: PhantomConfig | None = None, factors: tuple[str, ...] = ALL_FACTORS
) -> list[Pair]:
    """``pairs_per_factor`` cases carrying each factor, scanning the seed's case stream in order
    (cases are cheap to draw; only the chosen ones are rendered). A case may serve several factors."""
    from ..data.phantom.sampling import sample_case

    world = world or PhantomConfig()
    need = dict.fromkeys(factors, cfg.pairs_per_factor)
    out: list[Pair] = []
    i = 0
    while any(need.values()) and i < 500 * cfg.pairs_per_factor:
        case = sample_case(world, np.random.default_rng((cfg.seed, i, 1)), "test")
        for f in factors:
            if need[f] and case.factor_present(f):
                out.append(Pair(i, f))
                need[f] -= 1
        i += 1
    short = {f: cfg.pairs_per_factor - n for f, n in need.items() if n}
    if short:
        from ..errors import DataError

        raise DataError(f"the world has too few cases with {sorted(short)} among the first {i} draws")
    return out


def _render(args) -> np.ndarray:
    from ..data.phantom.render import render
    from ..data.phantom.sampling import sample_case

    index, factor, seed, world, size, split = args
    world = PhantomConfig.from_dict(world)
    case = sample_case(world, np.random.default_rng((seed, index, 1)), split)
    if factor:
        case = case.without(factor)
    return render(case, size, seed, index, world.image_noise)


def _render_all(jobs: list[tuple], num_proc: int, desc: str, progress: bool) -> list[np.ndarray]:
    """Render ``jobs`` ((index, factor to switch off or "", seed, world dict, size, split)) in order."""
    from multiprocessing import get_context

    from ..utils.progress import tqdm
    from ..utils.system import cap_workers

    n = cap_workers(num_proc, desc)
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress)
    imgs = []
    if n <= 1:
        for j in jobs:
            imgs.append(_render(j))
            bar.update()
    else:
        with get_context("fork").Pool(n) as pool:
            for im in pool.imap(_render, jobs, chunksize=8):
                imgs.append(im)
                bar.update()
    bar.close()
    return imgs


def render_pairs(
    pairs: list[Pair], cfg: CounterfactualConfig, world: PhantomConfig | None = None, progress: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(with, without) images of each pair; each case's 'with' image is rendered once."""
    d = (world or PhantomConfig()).to_dict()
    on_idx = sorted({p.index for p in pairs})
    jobs = [(i, "", cfg.seed, d, cfg.image_size, "test") for i in on_idx]
    jobs += [(p.index, p.factor, cfg.seed, d, cfg.image_size, "test") for p in pairs]
    imgs = _render_all(jobs, cfg.num_proc, "counterfactual renders", progress)
    on = dict(zip(on_idx, imgs[: len(on_idx)], strict=True))
    return [on[p.index] for p in pairs], imgs[len(on_idx) :]


def render_without(
    indices: list[int],
    splits: list[str],
    factor: str,
    seed: int,
    world: PhantomConfig,
    *,
    num_proc: int = 2,
    progress: bool = False,
) -> list[np.ndarray]:
    """Images ``indices`` of the world's phantom stream ``seed`` (as :func:`~lanic_hub.data.phantom.export`
    draws them, each in its split) rendered again with ``factor`` switched off, all else identical."""
    d = world.to_dict()
    jobs = [(i, factor, seed, d, world.image_size, s) for i, s in zip(indices, splits, strict=True)]
    return _render_all(jobs, num_proc, f"renders without {factor}", progress)


@torch.no_grad()
def embed_images(bb, images: list[np.ndarray], batch: int = 128) -> torch.Tensor:
    """Unit image embeddings through the backbone's own preprocessing (as the datasets path)."""
    from PIL import Image

    out = []
    for a in range(0, len(images), batch):
        x = torch.stack([bb.preprocess(Image.fromarray(im).convert("RGB")) for im in images[a : a + batch]])
        out.append(bb.encode_image(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, bb.embed_dim)


# ----------------------------------------------------------------------------- the methods


@dataclass
class Parts:
    """One method's exact split of its logits, for a batch: ``logits = bias + items.sum(1) + rest``."""

    logits: torch.Tensor
    """(B, C) the logits this method explains."""
    items: torch.Tensor
    """(B, I, C) each item's contribution."""
    rest: dict[str, torch.Tensor] = field(default_factory=dict)
    """(B, C) the parts that are not items: e.g. 'unbanked', 'error'."""


class Attributor(Protocol):
    """A way to explain logits item by item (the LanIC bank, raw latents, an SAE ...)."""

    name: str
    concepts: list[str | None]
    """The vocabulary concept each item is named after; None: unnamed (below the threshold)."""

    def parts(self, e: torch.Tensor) -> Parts: ...

    def activations(self, e: torch.Tensor) -> torch.Tensor:
        """(B, I) item activations, for assigning each item its ground-truth factor."""
        ...


@dataclass
class BankAttributor:
    """A classifier + transcoder ensemble explained through a pattern bank (the LanIC model, its
    raw latents as a bank without merging, or a baseline ensemble's bank)."""

    name: str
    clf: Any
    ens: Any
    bank: Any
    concepts: list[str | None]

    @property
    def dense(self) -> list[bool]:
        """Which items are context patterns (fire on most images)."""
        return [bool(p.dense) for p in self.bank.patterns]

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        from ..explain import decomposition_by_pattern

        d = decomposition_by_pattern(self.clf, self.ens, self.bank, e)
        return Parts(d.logits, d.patterns, {"unbanked": d.unbanked, "error": d.error})

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        from ..patterns.phantom_check import pattern_activations

        return pattern_activations(self.ens, self.bank, e)


@dataclass
class SparseProbeAttributor:
    """A TopK SAE on the embeddings with a sparse linear probe per finding on its latents: its own
    logits split exactly into latent contributions (the intercept is the bias)."""

    name: str
    probe: Any
    """A fitted :class:`lanic_hub.baselines.SAESparseProbe`."""
    concepts: list[str | None]
    dense: list[bool] | None = None
    """Which latents fire on most images (context)."""

    def _z(self, e: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.probe.codes(e.numpy()))

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        z = self._z(e)
        w = torch.as_tensor(np.stack([m.coef_[0] for m in self.probe.models]), dtype=z.dtype)  # (C, L)
        b = torch.as_tensor(np.array([m.intercept_[0] for m in self.probe.models]), dtype=z.dtype)
        items = z.unsqueeze(-1) * w.T.unsqueeze(0)
        return Parts(items.sum(1) + b, items, {})

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return self._z(e)


@dataclass
class ConceptAttributor:
    """The model's explanations at the concept level: its item contributions (patterns and the
    latents outside the bank) split exactly over concept directions
    (:class:`~lanic_hub.explain.ConceptDecomposition`). Items are the concepts; the reference
    (a film naming nothing) and the residual are unnamed rest parts beside the error."""

    name: str
    clf: Any
    ens: Any
    bank: Any
    directions: Any
    """A :class:`~lanic_hub.patterns.concepts.ConceptDirections`."""

    @property
    def concepts(self) -> list[str | None]:
        return [
            k if ok else None
            for k, ok in zip(self.directions.keys, self.directions.named.tolist(), strict=True)
        ]

    @torch.no_grad()
    def parts(self, e: torch.Tensor) -> Parts:
        from ..explain import decomposition_by_pattern

        d = decomposition_by_pattern(self.clf, self.ens, self.bank, e, concepts=self.directions)
        c = d.concept
        return Parts(
            d.logits, c.concepts, {"reference": c.reference, "residual": c.residual, "error": d.error}
        )

    @torch.no_grad()
    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return self.directions.presence(e)


def ground_truth_directions(e: torch.Tensor, gt: np.ndarray, factors: tuple[str, ...] = ALL_FACTORS):
    """The ceiling: concept directions fitted on ground-truth factors instead of report concepts
    (every factor named), on the assignment split."""
    from ..data.concepts import ConceptTable
    from ..patterns.concepts import ConceptDirections

    t = ConceptTable(tuple(factors), gt.astype(float))
    half = len(e) // 2
    return ConceptDirections.fit(
        e,
        t,
        e[half:],
        ConceptTable(t.concepts, t.values[half:]),
        min_auroc=0.0,
        min_positives=0,
        min_fit_positives=1,
        fitted_on="ground truth of the assignment split",
    )


# ----------------------------------------------------------------------------- the measurement


def assign_factors(
    acts: np.ndarray, gt: np.ndarray, factors: tuple[str, ...], at: float
) -> tuple[list[str | None], np.ndarray]:
    """Each item's ground-truth factor: the factor its activation detects best, if that AUROC is
    at least ``at`` (else None); and the (I,) best AUROCs."""
    from ..transcoders.analysis import auroc_matrix

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
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

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
    from ..patterns.phantom_check import gallery_purity

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


def gt_matrix(cases, factors: tuple[str, ...] = ALL_FACTORS) -> np.ndarray:
    return np.array([[c.factor_present(f) for f in factors] for c in cases], dtype=bool)


__all__ = [
    "Attributor",
    "BankAttributor",
    "CounterfactualConfig",
    "Pair",
    "Parts",
    "SparseProbeAttributor",
    "assign_factors",
    "change_shares",
    "draw_pairs",
    "embedding_figures",
    "evaluate_method",
    "render_pairs",
    "run_counterfactual_suite",
]


# ----------------------------------------------------------------------------- the suite

SUITE = "phantom-counterfactual"


def named_concepts(patterns: list[Pattern]) -> list[str | None]:
    """The concept each bank pattern is named after, None where it abstains (below the naming
    threshold, or a dense context pattern); banks from before naming thresholds count as named."""
    return [p.concept if p.named else None for p in patterns]


def _split(out, n: int, seed: int, world: PhantomConfig, bb, progress: bool):
    """A phantom split exported and embedded once (cached by backbone): (spec, dataset, embeddings dir)."""
    import hashlib
    import json

    from ..backbone.embed import embed_dataset
    from ..data.open import open_dataset
    from ..data.phantom import export

    key = hashlib.sha256(json.dumps([world.to_dict(), n, seed], sort_keys=True).encode()).hexdigest()[:10]
    hf = out / "cache" / f"phantoms-{n}-{seed}-{key}" / "hf"
    if not hf.is_dir():
        export(hf.parent, n, seed, world, mimic=False, progress=progress)
    spec = f"hf:{hf.resolve()}"
    ds = open_dataset(spec)
    ident = hashlib.sha256(
        json.dumps([bb.identity(), dataset_fingerprint(ds)], sort_keys=True).encode()
    ).hexdigest()
    folder = hf.parent / f"emb-{ident[:12]}"
    embed_dataset(ds, bb, folder, num_workers=0, text=True, progress=progress, data_spec=spec)
    return spec, ds, folder


def baseline_attributors(
    model,
    out,
    cfg: CounterfactualConfig,
    world: PhantomConfig,
    members: int | None,
    progress: bool,
    log=print,
) -> list[Any]:
    """The baselines, trained on the baseline split (the model's classifier's hidden layer) and
    given banks built on the assignment split with the model's bank settings:
    raw latents of the model's ensemble (no merging), a single TopK transcoder, plain-TopK and
    JumpReLU ensembles, and a TopK SAE on the embeddings with a sparse probe."""
    from dataclasses import replace

    from ..backbone.embed import load_embeddings
    from ..baselines import SAESparseProbe
    from ..data.schema import label_matrix
    from ..patterns import BankConfig
    from ..patterns.build import build_bank
    from ..training import preset_schedule
    from ..transcoders import train_ensemble

    bb = model.backbone
    a_spec, a_ds, a_emb = _split(out, cfg.assign_n, cfg.seed + 1, world, bb, progress)
    _, b_ds, b_emb = _split(out, cfg.baseline_n, cfg.seed + 2, world, bb, progress)
    clf, ens = model.classifier, model.ensemble
    xb = load_embeddings(b_emb).image.float()
    with torch.no_grad():
        hb = clf.hidden(xb)
    known = {f.name for f in __import__("dataclasses").fields(BankConfig)}
    bank_cfg = BankConfig(**{k: v for k, v in (model.bank_meta.get("config") or {}).items() if k in known})
    no_merge = replace(bank_cfg, cos_threshold=2.0, min_support=1, min_frequency=0.0, max_frequency=1.0)
    no_merge = replace(no_merge, min_ms=-1.0)
    schedule = preset_schedule(ens.cfg)
    T = members or ens.cfg.n_members

    def bank_of(e, config, name):
        t = time.perf_counter()
        b = build_bank(e, a_emb, a_ds, config=config, backbone=bb, data_spec=a_spec, progress=progress)
        log(f"  {name}: bank of {len(b)} items ({time.perf_counter() - t:.0f} s)")
        return b

    out_atts: list[Any] = []
    raw = bank_of(ens, no_merge, "raw latents")
    out_atts.append(BankAttributor("raw latents (no merging)", clf, ens, raw, named_concepts(raw.patterns)))
    variants = {
        "single TopK transcoder": replace(ens.cfg, n_members=1, levels=(ens.cfg.n_latents,), first_member=0),
        "plain TopK ensemble": replace(ens.cfg, n_members=T, levels=(ens.cfg.n_latents,), first_member=0),
        "JumpReLU ensemble": replace(ens.cfg, n_members=T, activation="jumprelu", first_member=0),
    }
    for name, tcfg in variants.items():
        t = time.perf_counter()
        trained, _ = train_ensemble(xb, hb, tcfg, schedule, progress=progress)
        log(f"  {name}: trained {tcfg.n_members} members ({time.perf_counter() - t:.0f} s)")
        b = bank_of(trained, no_merge if tcfg.n_members == 1 else bank_cfg, name)
        out_atts.append(BankAttributor(name, clf, trained, b, named_concepts(b.patterns)))
    y, mask = label_matrix(b_ds.select(load_embeddings(b_emb).row_ids.tolist()), policy="U-Ignore")
    sae = SAESparseProbe(n_latents=ens.cfg.n_latents, k=ens.cfg.k).fit(xb.numpy(), y, mask)
    concepts, dense = _name_sae(sae, a_emb, a_ds, bb, bank_cfg)
    out_atts.append(SparseProbeAttributor("SAE + sparse probe", sae, concepts, dense))
    return out_atts


def _name_sae(sae, emb_dir, ds, bb, bank_cfg) -> tuple[list[str | None], list[bool]]:
    """Names for SAE latents by the bank's naming and the bank's naming rule
    (:func:`lanic_hub.patterns.build.naming_decision`: report-label support, context latents
    unnamed), on the assignment split; and which latents are context (dense)."""
    from ..backbone.embed import load_embeddings
    from ..constants import CHEXPERT_LABELS
    from ..patterns.build import naming_decision
    from ..patterns.language import NAMING_TEMPLATE, name_vectors
    from ..patterns.vocabulary import load_vocabulary
    from ..transcoders.analysis import auroc_matrix

    vocab = load_vocabulary()
    emb = load_embeddings(emb_dir)
    x = emb.image.float()
    z = torch.as_tensor(sae.codes(x.numpy()))
    G = min(bank_cfg.gallery_size, len(x))
    top = z.topk(G, dim=0)
    gal = torch.stack([x[top.indices[:, j]].mean(0) for j in range(z.shape[1])])
    views = [(gal, x.mean(0)), (sae.sae.W_enc.detach().T.float()[: z.shape[1]], torch.zeros(x.shape[1]))]
    phrase = bb.encode_text([NAMING_TEMPLATE.format(p) for p in vocab.phrases]).float().cpu()
    names = name_vectors(views, phrase, vocab)
    rows = ds.select(emb.row_ids.tolist())
    labels = [c for c in CHEXPERT_LABELS if c in rows.column_names]
    Y = np.stack([np.array([v == 1 for v in rows[c]]) for c in labels], 1)
    au = auroc_matrix(z.numpy(), Y)
    freq = (z > 0).float().mean(0)
    concepts, dense = [], []
    for j, a in enumerate(names):
        gal_rows = top.indices[:, j].numpy()
        rec = {
            "concept": a.concept,
            "confidence": a.confidence,
            "frequency": float(freq[j]),
            "label_auroc": {
                c: (None if np.isnan(au[j, k]) else float(au[j, k])) for k, c in enumerate(labels)
            },
            "gallery_label_share": {c: float(Y[gal_rows, k].mean()) for k, c in enumerate(labels)},
        }
        d = naming_decision(rec, bank_cfg)
        concepts.append(a.concept if d["named"] and freq[j] > 0 else None)
        dense.append(d["dense"])
    return concepts, dense


def smoke_sized(cfg: CounterfactualConfig | None = None) -> CounterfactualConfig:
    """The suite's draw: ``cfg`` (None: the default), or a few pairs per factor in smoke mode
    (:mod:`lanic_hub.smoke`)."""
    cfg = cfg or CounterfactualConfig()
    if not smoke.active():
        return cfg
    return replace(
        cfg,
        pairs_per_factor=min(cfg.pairs_per_factor, 4),
        assign_n=min(cfg.assign_n, 200),
        baseline_n=min(cfg.baseline_n, smoke.PHANTOMS),
    )


def run_counterfactual_suite(
    models: list[str],
    out,
    *,
    cfg: CounterfactualConfig | None = None,
    world: PhantomConfig | None = None,
    baselines: bool = True,
    baseline_members: int | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Evaluate each model (and, for the first, the baselines) on the same counterfactual pairs;
    write one results JSON per method under ``<out>/results/phantom-counterfactual/`` and the
    leaderboard."""
    from pathlib import Path

    from ..backbone.embed import load_embeddings
    from ..modeling import LanICModel
    from .leaderboard import write_leaderboard
    from .runner import write_results

    cfg = smoke_sized(cfg)
    world = world or PhantomConfig()
    out = Path(out)
    t0 = time.perf_counter()
    pairs = draw_pairs(cfg, world)
    on_imgs, off_imgs = render_pairs(pairs, cfg, world, progress)
    t_render = time.perf_counter() - t0
    log(
        f"{SUITE}: {len(pairs)} pairs ({len({p.index for p in pairs})} cases, "
        f"{len({p.index for p in pairs}) + len(pairs)} images) rendered in {t_render:.0f} s"
    )
    written, failed = [], {}
    for n_model, mid in enumerate(models):
        t1 = time.perf_counter()
        model = LanICModel.from_pretrained(mid)
        bb = model.backbone
        e_on, e_off = embed_images(bb, on_imgs), embed_images(bb, off_imgs)
        a_spec, a_ds, a_emb = _split(out, cfg.assign_n, cfg.seed + 1, world, bb, progress)
        emb = load_embeddings(a_emb)
        x_assign = emb.image.float()
        rows = a_ds.select(emb.row_ids.tolist())
        gt = np.stack([np.array(rows[f"gt_{f}"], dtype=bool) for f in ALL_FACTORS], 1)
        emb_fig = embedding_figures(e_on, e_off, pairs, x_assign, gt)
        methods: list[tuple[str, Any, str]] = [
            (
                f"LanIC model (bank patterns) [{mid}]",
                BankAttributor(
                    "LanIC model (bank patterns)",
                    model.classifier,
                    model.ensemble,
                    model.bank,
                    named_concepts(model.patterns),
                ),
                "lanic",
            )
        ]
        if model.concepts is not None:
            methods.append(
                (
                    f"LanIC model (report concepts) [{mid}]",
                    ConceptAttributor(
                        "LanIC model (report concepts)",
                        model.classifier,
                        model.ensemble,
                        model.bank,
                        model.concepts,
                    ),
                    "lanic",
                )
            )
        methods.append(
            (
                f"ceiling: ground-truth concept directions [{mid}]",
                ConceptAttributor(
                    "ceiling: ground-truth concept directions",
                    model.classifier,
                    model.ensemble,
                    model.bank,
                    ground_truth_directions(x_assign, gt),
                ),
                "ceiling",
            )
        )
        if baselines and n_model == 0:
            tb = time.perf_counter()
            methods += [
                (f"{a.name} [{mid}]", a, "baseline")
                for a in baseline_attributors(model, out, cfg, world, baseline_members, progress, log)
            ]
            log(f"  baselines built in {time.perf_counter() - tb:.0f} s")
        for name, att, kind in methods:
            t2 = time.perf_counter()
            acts_assign = att.activations(x_assign).numpy()
            item_factor, _ = assign_factors(acts_assign, gt, ALL_FACTORS, cfg.assign_auroc)
            item_gallery = gallery_factors(acts_assign, gt, ALL_FACTORS, cfg.gallery_purity)
            visible = {
                f for f, v in emb_fig.items() if (v.get("probe_auroc_on_pairs") or 0.0) >= cfg.visible_at
            }
            res = evaluate_method(att, e_on, e_off, pairs, item_factor, cfg, visible=visible)
            res["method"] = att.name
            res["items"] = len(att.concepts)
            res["named_items"] = sum(c is not None for c in att.concepts)
            res["items_with_a_factor"] = sum(f is not None for f in item_factor)
            res["naming"] = naming_precision(att.concepts, item_factor)
            res["naming_gallery"] = naming_precision(att.concepts, item_gallery)
            res["naming_either"] = naming_precision_either(att.concepts, item_factor, item_gallery)
            res["embedding"] = emb_fig
            doc = _results_doc(
                name,
                kind,
                res,
                cfg,
                world,
                pairs,
                a_spec,
                time.perf_counter() - t2 + (time.perf_counter() - t1 if kind == "lanic" else 0),
            )
            written.append(str(write_results(out, SUITE, name, doc)))
    board = write_leaderboard(out, SUITE, render=markdown)
    return {
        "written": written,
        "failed": failed,
        "leaderboard": board,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _results_doc(name, kind, res, cfg, world, pairs, assign_spec, seconds) -> dict[str, Any]:
    from ..constants import VERSION as __version__
    from .records import SCHEMA_VERSION

    return {
        "schema": SCHEMA_VERSION,
        "model": {"id": name, "revision": None, "kind": kind},
        "suite": SUITE,
        "findings": list(FINDINGS),
        "dataset": {
            "spec": f"phantom counterfactual pairs (seed {cfg.seed}, {cfg.pairs_per_factor} per factor); "
            f"item factors assigned on {assign_spec}",
            "fingerprint": None,
            "split": "pairs",
            "rows": 2 * len(pairs),
        },
        "config": asdict(cfg),
        "world": world.to_dict(),
        "lanic_hub": __version__,
        "seed": cfg.seed,
        "seconds": round(seconds, 2),
        "metrics": {"counterfactual": res},
    }


def markdown(docs: list[dict[str, Any]]) -> str:
    """The suite's leaderboard: one row per method, then the per-factor table of each LanIC model."""
    ms = [d for d in docs if "counterfactual" in d["metrics"]]
    if not ms:
        return ""
    c0 = ms[0]["config"]
    lines = [
        f"# Leaderboard: suite `{SUITE}`",
        "",
        f"Measured on {ms[0]['dataset']['spec']}: each case rendered with and without one factor, "
        f"everything else identical. A logit *moved* when |Δlogit| > {c0['moved_at']}; its change "
        "Σ|Δcontribution| + |Δunbanked| + |Δerror| is shared out among the explanation's items. "
        f"Factor share: on items whose ground-truth factor (best AUROC >= {c0['assign_auroc']}) is "
        "the removed one. Named hit: an item named after it is among the "
        f"{c0['top']} largest changes. A factor is judged when some finding moves in >= "
        f"{c0['eligible_at']:.0%} of its pairs; it passes with median factor share >= "
        f"{c0['target_share']} and named hit rate >= {c0['target_hit']:.0%}.",
        "",
        "| method | factors passing / judged | median factor share | named top-3 hit rate | "
        "items (named, with a factor) | naming precision (AUROC / gallery / either) | context share | "
        "moved logits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in ms:
        r = d["metrics"]["counterfactual"]
        lines.append(
            f"| {d['model']['id']} | {len(r['passing_factors'])} / {len(r['eligible_factors'])} | "
            f"{_f(r['median_factor_share_all'])} | {_f(r['named_top_hit_rate_all'])} | "
            f"{r['items']} ({r['named_items']}, {r['items_with_a_factor']}) | "
            f"{_f(r.get('naming', {}).get('precision'), 2)} / "
            f"{_f(r.get('naming_gallery', {}).get('precision'), 2)} / "
            f"{_f(r.get('naming_either', {}).get('precision'), 2)} | {_f(r.get('mean_context_share_all'))} | "
            f"{r['moved_logits']} |"
        )
    lines += [
        "",
        "By factor group, over the moved logits of judged factors (named share = median share of "
        "Σ|Δ| on items named after the removed factor; signed = median of Σ Δ(named) / Δlogit; hit = "
        "named item in the top 3; named mass = median share of an explanation's |contribution| mass, "
        "error left out, on named items). Artifacts: those the reports name (not collimation or the "
        "laterality marker).",
        "",
        "| method | findings share / signed / hit | devices share / signed / hit | "
        "artifacts share / signed / hit | all share / signed / hit | named mass |",
        "|---|---|---|---|---|---|",
    ]
    for key, title in (("groups", None), ("groups_visible", "visible")):
        if title:
            vis = next((d["metrics"]["counterfactual"].get("visible_factors") for d in ms), None) or []
            lines += [
                "",
                "The same over the factors the embedding carries (probe AUROC on e >= "
                f"{c0.get('visible_at')}: {', '.join(vis)}); the others are limits of the backbone, "
                "not of the explanations.",
                "",
                "| method | findings share / signed / hit | devices share / signed / hit | "
                "artifacts share / signed / hit | all share / signed / hit | named mass |",
                "|---|---|---|---|---|---|",
            ]
        for d in ms:
            r = d["metrics"]["counterfactual"]
            gs = r.get(key) or {}
            cells = [
                f"{_f(g.get('median_named_share'))} / {_f(g.get('median_signed_named_share'))} / "
                f"{_f(g.get('named_top_hit_rate'))}"
                for g in (gs.get(k, {}) for k in ("findings", "devices", "artifacts", "all"))
            ]
            lines.append(f"| {d['model']['id']} | {' | '.join(cells)} | {_f(r.get('median_named_mass'))} |")
    for d in ms:
        if d["model"]["kind"] not in ("lanic", "ceiling"):
            continue
        r = d["metrics"]["counterfactual"]
        lines += [
            "",
            f"Per factor, {d['model']['id']} (embedding columns: how well e itself carries the factor):",
            "",
            "| factor | pairs | largest moved share (finding) | judged | median factor share | "
            "median named share | named top-3 hit | factor top-3 hit | context share | unbanked share | "
            "error share | passes | probe AUROC on e | e shift / random pair |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f, v in r["factors"].items():
            big = max(v["effect"].items(), key=lambda kv: kv[1]["moved_share"])
            e = r["embedding"].get(f, {})
            lines.append(
                f"| {f} | {v['pairs']} | {big[1]['moved_share']:.2f} ({big[0]}) | "
                f"{'yes' if v['eligible'] else 'no'} | "
                f"{_f(v.get('median_factor_share'))} | {_f(v.get('median_named_share'))} | "
                f"{_f(v.get('named_top_hit_rate'))} | {_f(v.get('factor_top_hit_rate'))} | "
                f"{_f(v.get('mean_context_share'))} | "
                f"{_f(v.get('mean_unbanked_share'))} | {_f(v.get('mean_error_share'))} | "
                f"{'**yes**' if v['passes'] else ('no' if v['eligible'] else '-')} | "
                f"{_f(e.get('probe_auroc_on_pairs'))} | {_f(e.get('shift_vs_random_pair'))} |"
            )
    return "\n".join(lines) + "\n"


def _f(v, nd: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{nd}f}"
