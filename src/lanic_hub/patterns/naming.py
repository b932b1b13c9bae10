"""Names for patterns from the report concepts of the images they fire on.

A name is a claim that the reports support, by a rule that fits how a pattern fires:

- a **sparse** pattern (firing on a minority of images) is named after a concept stated present
  in the reports of its strongest activations (its gallery): the *precision* of the gallery for
  that concept must reach ``min_precision`` and beat the concept's base rate by a *lift* of
  ``min_lift``; of several such concepts, the most specific (largest lift). A rare, pure pattern
  (a left chest tube on 2 % of images) passes, which an AUROC test against the whole label never
  lets it do (AUROC ≈ 0.5 + 0.5 x its coverage);
- a **dense** pattern (on most images) is a graded axis: it is named "<concept>, graded" when its
  magnitude ranks the concept's reports at AUROC >= ``min_auroc``.

Pure functions on arrays; the bank builder feeds them the sample rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from ..constants import CHEXPERT_LABELS
from ..data.concepts import CONCEPTS, ConceptExtractor, concept_names
from .config import BankConfig
from .vocabulary import DEVICE_CONCEPTS, REPORT_LABEL

#: Version of the naming from reports and of the concept directions: a pipeline rebuilds a bank
#: named by another version.
NAMING_VERSION = "report-concepts-5"

#: The pattern category of each report concept.
CONCEPT_CATEGORY: dict[str, str] = {
    "atelectasis": "pulmonary",
    "consolidation": "pulmonary",
    "edema": "pulmonary",
    "cardiomegaly": "cardiac",
    "pleural_effusion": "pleural",
    "pneumothorax": "pleural",
    **{c.key: "device" for c in CONCEPTS if c.category == "device"},
    **{c.key: "artifact" for c in CONCEPTS if c.category == "technique"},
}


@dataclass(frozen=True)
class NamingRule:
    """The thresholds of :func:`concept_support` (chosen on one phantom split, see
    docs/naming_calibration.md; precision reported on another)."""

    min_precision: float = 0.7
    """Sparse: share of the gallery whose report states the concept."""
    min_lift: float = 3.0
    """Sparse: that share over the concept's share of all usable reports."""
    min_gallery: int = 5
    """Sparse: gallery images with a usable report needed to judge at all."""
    min_auroc: float = 0.9
    """Dense: AUROC of the pattern's magnitude for the concept."""
    max_other: float = 0.6
    """Sparse: withhold the name when another concept that passes the lift reaches this share of
    the gallery too (an ambiguous gallery: ICU films that state atelectasis and a catheter alike).
    1.0: never withhold."""


@dataclass(frozen=True)
class ConceptSupport:
    """What the reports say about one pattern."""

    concept: str | None
    """The best-supported concept key (None: no concept could be judged)."""
    rule: str
    """"gallery" (sparse) or "graded" (dense)."""
    precision: float | None
    lift: float | None
    auroc: float | None
    supported: bool

    @property
    def name(self) -> str | None:
        if not self.supported or self.concept is None:
            return None
        base = concept_names([self.concept])[0]
        return f"{base}, graded" if self.rule == "graded" else base

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}


def concept_support(
    acts: np.ndarray,
    labels: np.ndarray,
    keys: tuple[str, ...],
    *,
    dense: bool,
    gallery: int = 20,
    rule: NamingRule | None = None,
    base: np.ndarray | None = None,
) -> ConceptSupport:
    """The report support of one pattern. ``acts`` (n,): its activation on n rows; ``labels``
    (n, K): each row's report concepts (1 stated present, 0 not, NaN: no usable report).
    ``base`` (m, K): the rows the base rates come from (default: ``labels``)."""
    from sklearn.metrics import roc_auc_score

    rule = rule or NamingRule()
    usable = ~np.isnan(labels).all(1) if labels.size else np.zeros(len(acts), bool)
    a, y = acts[usable], np.nan_to_num(labels[usable], nan=0.0) == 1
    if len(a) == 0 or y.shape[1] == 0:
        return ConceptSupport(None, "graded" if dense else "gallery", None, None, None, False)
    if dense:
        aucs = np.array(
            [roc_auc_score(y[:, k], a) if 0 < y[:, k].sum() < len(y) else np.nan for k in range(y.shape[1])]
        )
        if np.isnan(aucs).all():
            return ConceptSupport(None, "graded", None, None, None, False)
        k = int(np.nanargmax(aucs))
        return ConceptSupport(keys[k], "graded", None, None, float(aucs[k]), bool(aucs[k] >= rule.min_auroc))
    firing = np.where(a > 0)[0]
    top = firing[np.argsort(-a[firing], kind="stable")[:gallery]]
    if len(top) < rule.min_gallery:
        return ConceptSupport(None, "gallery", None, None, None, False)
    precision = y[top].mean(0)
    if base is None:
        base = y.mean(0)
    else:
        base = (np.nan_to_num(base[~np.isnan(base).all(1)], nan=0.0) == 1).mean(0)
    lift = np.where(base > 0, precision / np.maximum(base, 1e-12), 0.0)
    ok = (lift >= rule.min_lift) & (precision >= rule.min_precision)
    if not ok.any():  # the best candidate, unsupported
        k = int(np.argmax(np.where(lift >= rule.min_lift, precision, precision - 1.0)))
        return ConceptSupport(keys[k], "gallery", float(precision[k]), float(lift[k]), None, False)
    # of the concepts that pass, the most specific (largest lift): a gallery of ICU films states
    # "portable" in every report, but its pattern is the catheter that only ICU films carry
    k = int(np.argmax(np.where(ok, lift, -1.0)))
    others = (lift >= rule.min_lift) & (np.arange(len(lift)) != k)
    clear = not (others & (precision >= rule.max_other)).any() if rule.max_other < 1.0 else True
    return ConceptSupport(keys[k], "gallery", float(precision[k]), float(lift[k]), None, bool(clear))


def report_supports(
    ds,
    row_ids: np.ndarray,
    sample_pos: np.ndarray,
    on_sample: np.ndarray,
    gallery_pos: np.ndarray,
    gallery_values: np.ndarray,
    dense: np.ndarray,
    rule: NamingRule | None = None,
    log=print,
) -> list[ConceptSupport] | None:
    """The report support of S patterns (None: the dataset has no reports). ``row_ids``: the
    dataset row of each store position; ``sample_pos`` (n,): the sample rows' store positions and
    ``on_sample`` (n, S) the patterns' activations there; ``gallery_pos`` / ``gallery_values``
    (S, G): each pattern's gallery over all rows (-1: none); ``dense`` (S,)."""
    if "report" not in ds.column_names:
        return None
    need = np.unique(np.concatenate([sample_pos, gallery_pos[gallery_pos >= 0]]))
    texts = ds.select_columns(["report"]).select(row_ids[need].tolist())["report"]
    table = ConceptExtractor().table(texts, log=log)
    at = {int(p): i for i, p in enumerate(need)}
    lab_sample = table.values[[at[int(p)] for p in sample_pos]]
    out = []
    for j in range(on_sample.shape[1]):
        if dense[j]:
            out.append(concept_support(on_sample[:, j], lab_sample, table.concepts, dense=True, rule=rule))
            continue
        g = gallery_pos[j] >= 0
        lab = np.concatenate([table.values[[at[int(p)] for p in gallery_pos[j][g]]], lab_sample])
        acts = np.concatenate([gallery_values[j][g], np.zeros(len(sample_pos))])
        out.append(
            concept_support(
                acts, lab, table.concepts, dense=False, gallery=int(g.sum()), rule=rule, base=lab_sample
            )
        )
    return out


def gallery_labels(ds, rows: list[int]) -> dict[int, dict[str, bool]]:
    """The positive CheXpert labels of the given dataset rows (blank and uncertain: not positive)."""
    rows = sorted(set(rows))
    cols = [c for c in CHEXPERT_LABELS if c in ds.column_names]
    if not rows or not cols:
        return {}
    sub = ds.select_columns(cols).select(rows)
    return {r: {c: sub[c][i] == 1 for c in cols} for i, r in enumerate(rows)}


def gallery_label_share(gallery: list[int], row_labels: dict[int, dict[str, bool]]) -> dict[str, float]:
    """Per CheXpert label, the share of a pattern's gallery images whose report has it."""
    have = [row_labels[r] for r in gallery if r in row_labels]
    if not have:
        return {}
    return {c: sum(h[c] for h in have) / len(have) for c in have[0]}


class NamingEvidence(Protocol):
    """What the naming rule reads of a direction: a :class:`Pattern`, or a
    :class:`LatentEvidence` for a latent of another dictionary (the baselines')."""

    concept: str | None
    confidence: float | None
    frequency: float | None
    label_auroc: dict[str, float | None]
    gallery_label_share: dict[str, float]


@dataclass
class LatentEvidence:
    """The naming rule's evidence for one latent direction that is not a bank pattern."""

    concept: str | None
    """The vocabulary concept it is closest to."""
    confidence: float | None
    """Softmax probability of that concept over all concepts."""
    frequency: float | None
    """Share of images it fires on."""
    label_auroc: dict[str, float | None] = field(default_factory=dict)
    """AUROC of its activation for each report label."""
    gallery_label_share: dict[str, float] = field(default_factory=dict)
    """Per report label, the share of its top images whose report has it."""


def naming_decision(rec: NamingEvidence, cfg: BankConfig) -> dict[str, Any]:
    """Whether a direction (a :class:`Pattern`, or the :class:`LatentEvidence` of any latent) is
    dense (context) and whether it carries its name: not dense, confident enough, and supported by the
    report label of its concept (``name_support``): its activation detects the label (AUROC); for
    a device, whose reports only say "support devices", also the images it fires on most (its
    gallery) have that label."""
    dense = rec.frequency > cfg.dense_frequency
    label = REPORT_LABEL.get(rec.concept)
    support: dict[str, Any] | None = None
    if label and rec.concept in DEVICE_CONCEPTS:
        share = (rec.gallery_label_share or {}).get(label)
        auroc = (rec.label_auroc or {}).get(label)
        supported = (
            auroc is not None and auroc >= cfg.name_label_auroc and (share or 0.0) >= cfg.name_gallery_share
        )
        support = {"label": label, "auroc": auroc, "gallery_share": share}
    elif label:
        auroc = (rec.label_auroc or {}).get(label)
        supported = auroc is not None and auroc >= cfg.name_label_auroc
        support = {"label": label, "auroc": auroc}
    else:
        supported = cfg.name_unlabelled
    named = (not dense) and rec.confidence >= cfg.name_confidence and bool(supported)
    return {"dense": bool(dense), "named": bool(named), "name_support": support}
