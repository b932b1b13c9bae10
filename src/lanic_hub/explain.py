"""Explanations: a finding's logit split exactly into bias, pattern contributions and error.

For each finding c (see :mod:`lanic_hub.decomposition`)::

    logit_c = bias_c + Σ_patterns contribution_p,c + unbanked_c + error_c

``contribution_p,c`` sums the contributions ``(z_t,i / T) · W2_c · W_dec_t[:, i]`` of the latents
(t, i) merged into bank pattern p; ``unbanked_c`` is the same sum over active latents that are in
no bank pattern (they are reported, never dropped), and ``error_c = W2_c · (h - ĥ)`` is what the
ensemble misses. The four parts add up to the classifier's own logit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch

from .classifier import DiagnosticClassifier
from .constants import FINDINGS
from .decomposition import decompose, latent_contributions, latent_logit_weights
from .patterns import PatternBank
from .patterns.bank import is_named, pattern_activations_from_codes, pattern_label
from .patterns.concepts import ConceptDirections, active_linear_maps, shapley_over_concepts
from .patterns.record import Pattern
from .transcoders import TranscoderEnsemble
from .transcoders.ensemble import flat_latents
from .utils.tensors import check_finite

__all__ = [
    "COVERAGE",
    "ConceptContribution",
    "ConceptDecomposition",
    "Explanation",
    "FindingExplanation",
    "PatternContribution",
    "PatternDecomposition",
    "decomposition_by_pattern",
    "explain_embeddings",
    "flat_latents",
    "pattern_activations_from_codes",
]

#: Share of the absolute contribution mass that the "patterns per prediction" count covers.
COVERAGE = 0.9

LEGEND = """How to read this:
- The logit is the model's score for a finding (probability = 1 / (1 + e^-logit)). It is split
  exactly: baseline + pattern contributions + context + outside the bank + not captured = logit.
- Concepts are what reports name (a finding, a device, a technique remark). The image is split
  exactly over their directions in the embedding, so each concept's part is how much the model's
  features read it here; a concept is named only when its direction detects its own report label
  on held-out images. "Reference" and "residual" are the unnamed rest.
- A pattern is a visual feature the model uses, found by many of its sparse transcoders ("found
  by N members" of the ensemble: more members, more stable). Its contribution is how much it
  moves this logit on this image; its activation is how strongly it is present here.
- A pattern is shown with a name only when the name passed a calibrated threshold (its activation
  detects the named finding in the report labels); otherwise "unnamed", with the nearest phrase
  of the vocabulary, which is a guess, not a finding.
- Context patterns fire on most images (overall appearance, not a finding); they are summed apart.
- "Latents outside the bank" are features too rare or unstable to become patterns; "not captured"
  is what the sparse features miss of the classifier (its error term).
- MS (MonoSemanticity, 0-1) says how alike the images that activate a pattern look to another
  encoder: higher is more single-minded. Research software: none of this is a diagnosis."""


_UNNAMED = {
    "unnamed": "unnamed (concepts or patterns without support for a name, latents outside the bank)",
    "reference": "reference (what the model reads from a film whose report names nothing)",
    "residual": "residual (the image beyond the concept directions)",
}


@dataclass
class PatternContribution:
    pattern: int
    name: str
    category: str
    contribution: float
    """Its share of the logit."""
    activation: float
    """Mean activation of its member latents on this image."""
    ms: float | None
    support: int
    gallery: list[int]
    """Dataset rows of its top-activating images (the bank's gallery, best first)."""
    named: bool = True
    """Whether the pattern carries its name (it passed the naming threshold); else it is shown
    unnamed, with its nearest phrase."""
    dense: bool = False
    """A context pattern: it fires on most images (shown apart, never as a finding)."""
    confidence: float | None = None
    """Naming confidence of the nearest phrase."""
    label: str = ""
    """How it is shown (:func:`lanic_hub.patterns.bank.pattern_label`)."""
    removed: bool = False
    """The model leaves this pattern out (:meth:`LanICModel.without`): its contribution is in
    the finding's ``removed``, not in its logit."""


@dataclass
class ConceptContribution:
    """One line of what an explanation asserts: a named concept, or an unnamed remainder."""

    name: str | None
    """What it is called; None: unnamed (nothing supports a name)."""
    contribution: float
    kind: str = "concept"
    """"concept" (a report concept's direction in the image), "pattern" (a named bank pattern,
    for models without concept directions), "reference" (what the model reads from a film whose
    report names nothing), "residual" (the image beyond the concept directions) or "unnamed"
    (concepts or patterns below their naming threshold, latents outside the bank)."""
    key: str | None = None
    """The concept's key (``chest_tube``), when it has one."""
    presence: float | None = None
    """How much of the concept the image carries (1: like a typical report-positive film)."""
    removed: bool = False
    """The model leaves this concept out (:meth:`LanICModel.without`): its contribution is in
    the finding's ``removed``, not in its logit."""


@dataclass
class FindingExplanation:
    finding: str
    probability: float
    logit: float
    bias: float
    error: float
    unbanked: float
    """Sum of the contributions of active latents that belong to no bank pattern."""
    patterns: list[PatternContribution]
    """Every contributing bank pattern, by decreasing |contribution|."""
    n_cover: int
    """Fewest items (bank patterns, or unbanked latents one by one) holding 90% of the absolute
    contribution mass."""
    concepts: list[ConceptContribution] = field(default_factory=list)
    """What the explanation asserts: named concepts by decreasing |contribution|, then the unnamed
    parts. ``bias + Σ concepts + error - removed == logit`` (the same sum as the patterns +
    unbanked)."""
    removed: float = 0.0
    """The summed contribution of the items the model leaves out (:meth:`LanICModel.without`;
    0 for a model that removes nothing). They stay listed, marked ``removed``, and ``logit`` is
    the changed model's: ``bias + Σ items + error - removed``."""

    @property
    def named_share(self) -> float:
        """Share of the concepts' absolute contribution mass carried by named concepts (removed
        concepts left out)."""
        kept = [c for c in self.concepts if not c.removed]
        total = sum(abs(c.contribution) for c in kept)
        return sum(abs(c.contribution) for c in kept if c.name) / total if total > 0 else 0.0

    @property
    def total(self) -> float:
        """bias + patterns + unbanked + error - removed: equals ``logit`` (to float precision)."""
        items = sum(p.contribution for p in self.patterns) + self.unbanked
        return self.bias + items + self.error - self.removed

    @property
    def context(self) -> float:
        """Sum of the dense (context) patterns' contributions."""
        return sum(p.contribution for p in self.patterns if p.dense)


@dataclass
class Explanation:
    findings: list[FindingExplanation]
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    typicality_distance: float | None = None
    """Squared Mahalanobis distance of the image's embedding to the training embeddings (None: the
    model has no typicality reference)."""
    out_of_distribution: bool | None = None
    """True when that distance is above the model's calibrated threshold: the image is unlike the
    training data, and ``notes`` says so first."""

    def __getitem__(self, finding: str) -> FindingExplanation:
        for f in self.findings:
            if f.finding == finding:
                return f
        raise KeyError(f"{finding!r}; findings are {[f.finding for f in self.findings]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, top: int = 6, legend: bool = True) -> str:
        """Plain text a clinician can read (with a short legend of its terms)."""
        head = f"Explanation of {self.source}" if self.source else "Explanation"
        lines = [head, "(research software, not a medical device; not for clinical use)", ""]
        if self.out_of_distribution:
            lines += [*self.notes[:1], ""]
        for f in sorted(self.findings, key=lambda f: -f.probability):
            lines.append(f"{f.finding}: probability {f.probability:.2f} (logit {f.logit:+.2f})")
            if f.removed or any(c.removed for c in f.concepts) or any(p.removed for p in f.patterns):
                gone = [c.name or c.key for c in f.concepts if c.removed]
                gone += [p.label or p.name for p in f.patterns if p.removed]
                lines.append(
                    f"  removed from the model: {', '.join(map(str, gone)) or 'latents'} "
                    f"({f.removed:+.2f}, no longer counted in the logit)"
                )
            if f.concepts:
                named = [c for c in f.concepts if c.name and not c.removed]
                lines.append(f"  concepts ({f.named_share:.0%} of the evidence named):")
                for c in named[:top]:
                    pres = f", present {c.presence:.2f}" if c.presence is not None else ""
                    lines.append(f"  {c.contribution:+.2f}  {c.name}{pres}")
                unnamed = {c.kind: c.contribution for c in f.concepts if not c.name}
                lines.append(
                    "  "
                    + "; ".join(f"{v:+.2f} {_UNNAMED[k]}" for k, v in unnamed.items())
                    + (
                        f"; {sum(c.contribution for c in named[top:]):+.2f} other concepts"
                        if named[top:]
                        else ""
                    )
                )
            items = [p for p in f.patterns if not p.dense and not p.removed]
            lines.append(
                f"  baseline {f.bias:+.2f}; {len(items)} patterns contribute; "
                f"{f.n_cover} items carry 90% of the evidence"
            )
            for p in items[:top]:
                arrow = "raises" if p.contribution > 0 else "lowers"
                ms = f"MS {p.ms:.2f}, " if p.ms is not None else ""
                shown = f"'{p.label or p.name}' [{p.category}]" if p.named else (p.label or p.name)
                lines.append(
                    f"  {p.contribution:+.2f}  {arrow}: {shown} "
                    f"(pattern {p.pattern}, found by {p.support} members, {ms}activation {p.activation:.2f})"
                )
            rest = sum(p.contribution for p in items[top:])
            lines.append(
                f"  {rest:+.2f}  {max(len(items) - top, 0)} smaller patterns; "
                f"{f.context:+.2f} context ({sum(p.dense for p in f.patterns)} patterns on most images); "
                f"{f.unbanked:+.2f} latents outside the bank; {f.error:+.2f} not captured by the ensemble"
            )
            lines.append("")
        rest = self.notes[1:] if self.out_of_distribution else self.notes
        return "\n".join(lines + rest + ([LEGEND] if legend else [])).rstrip() + "\n"

    __str__ = render


class PatternDecomposition(NamedTuple):
    """A batch's explanation tensors (B embeddings, P bank patterns, C findings). For every b, c::

    logits = bias + patterns.sum(1) + unbanked + error      (to float tolerance)
    """

    bias: torch.Tensor
    """(B, C) b2 + W2 · mean_t b_dec_t."""
    patterns: torch.Tensor
    """(B, P, C) each bank pattern's contribution: the sum over its member latents."""
    unbanked: torch.Tensor
    """(B, C) the contributions of active latents in no bank pattern."""
    error: torch.Tensor
    """(B, C) W2 · (h - ĥ): what the ensemble misses."""
    activation: torch.Tensor
    """(B, P) pattern activations (the mean over member latents)."""
    n_cover: torch.Tensor
    """(B, C) fewest items (patterns, or unbanked latents one by one) holding :data:`COVERAGE` of
    the absolute contribution mass."""
    logits: torch.Tensor
    """(B, C) the classifier's own logits."""
    concept: ConceptDecomposition | None = None
    """The same item contributions split over concept directions (None: the model has none)."""

    @property
    def ensemble_logits(self) -> torch.Tensor:
        """(B, C) the ensemble path's logits: everything but the error."""
        return self.bias + self.patterns.sum(1) + self.unbanked


class ConceptDecomposition(NamedTuple):
    """The item contributions (patterns + unbanked) of a batch split over concept directions
    (:mod:`lanic_hub.patterns.concepts`)::

        patterns.sum(1) + unbanked = concepts.sum(1) + reference + residual   (to float tolerance)
    """

    concepts: torch.Tensor
    """(B, K, C) each concept's part of each finding's logit (Shapley: its mean marginal gain;
    linear: ŷ_k (g · β_k))."""
    reference: torch.Tensor
    """(B, C) what the model's features read from μ, a film whose report names nothing (Shapley:
    the same for every image; linear: g · μ + κ, through this image's active latents)."""
    residual: torch.Tensor
    """(B, C) the part of the image beyond the concept directions (Shapley: the residual player's
    value; linear: g · r)."""
    presence: torch.Tensor
    """(B, K) ŷ."""


def _closed(c: ConceptDecomposition | None, items: torch.Tensor) -> ConceptDecomposition | None:
    """The concept split with its float rounding (about 1e-6: the two splits sum the same
    latents in another order) moved into the residual, so that concepts + reference + residual
    equal the pattern-level items to the last bit that float32 keeps."""
    if c is None:
        return None
    gap = items - (c.concepts.sum(1) + c.reference + c.residual)
    if gap.numel() and float(gap.abs().max()) > 1e-3 * (1.0 + float(items.abs().max())):
        raise RuntimeError(f"the concept split misses the items by {float(gap.abs().max()):.3g}: a bug")
    return c._replace(residual=c.residual + gap)


@torch.no_grad()
def decomposition_by_concept(
    concepts: ConceptDirections,
    e: torch.Tensor,
    values: torch.Tensor,
    indices: torch.Tensor,
    U: torch.Tensor,
    ens: TranscoderEnsemble,
    encoder_bias: torch.Tensor,
) -> ConceptDecomposition:
    """Split the active latents' contributions of a batch (codes ``values``/``indices``) exactly
    over ``concepts``, by their ``attribution``:

    - "shapley" (default): sampled Shapley values of the concept parts and the residual, from the
      fixed reference point μ (:func:`~lanic_hub.patterns.concepts.shapley_over_concepts`); the
      reference is then the same for every image;
    - "linear": this image's active latents as one linear map g, so concept k gets ŷ_k (g · β_k)
      and the reference g · μ + κ varies with the active set."""
    if getattr(concepts, "attribution", "linear") == "shapley":

        def items_of(x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
            return torch.cat(
                [
                    latent_contributions(*ens.encode(x[a : a + chunk], bias=encoder_bias), U).sum((1, 2))
                    for a in range(0, len(x), chunk)
                ]
            )

        items_e = latent_contributions(values, indices, U).sum((1, 2))  # the image's own codes, once
        phi, phi_r, ref, y = shapley_over_concepts(
            items_of, concepts, e, concepts.permutations, items_e=items_e
        )
        return ConceptDecomposition(phi, ref.expand(len(e), -1), phi_r, y)
    g, kappa = active_linear_maps(values, indices, U, ens.W_enc, encoder_bias)  # (B, C, d), (B, C)
    y, r = concepts.split(e)
    per = torch.einsum("bcd,kd->bkc", g, concepts.directions.to(g.dtype)) * y.unsqueeze(-1)
    reference = g @ concepts.mean.to(g.dtype) + kappa
    residual = torch.einsum("bcd,bd->bc", g, r.to(g.dtype))
    return ConceptDecomposition(per, reference, residual, y)


class _Shown:
    """What an explanation shows of each bank pattern, read from its record once per call (a
    batch lists the same patterns under many findings and images)."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns, self.seen = patterns, {}

    def contribution(self, p: int, contribution: float, activation: float) -> PatternContribution:
        if p not in self.seen:
            q = self.patterns[p]
            rows = tuple(g["row"] for g in q.gallery)
            shown = (q.name, q.category, q.ms, q.support, rows, is_named(q), bool(q.dense), q.confidence)
            self.seen[p] = (*shown, pattern_label(q))
        name, category, ms, support, rows, named, dense, confidence, label = self.seen[p]
        return PatternContribution(
            pattern=p,
            name=name,
            category=category,
            contribution=contribution,
            activation=activation,
            ms=ms,
            support=support,
            gallery=list(rows),
            named=named,
            dense=dense,
            confidence=confidence,
            label=label,
        )


@torch.no_grad()
def explain_embeddings(
    clf: DiagnosticClassifier,
    ens: TranscoderEnsemble,
    bank: PatternBank,
    e: torch.Tensor,
    sources: list[str] | None = None,
    findings: tuple[str, ...] = FINDINGS,
    U: torch.Tensor | None = None,
    encoder_bias: torch.Tensor | None = None,
    concepts: ConceptDirections | None = None,
) -> list[Explanation]:
    """Explain a batch of embeddings (B, d). ``U`` (:func:`latent_logit_weights`) and
    ``encoder_bias`` (:meth:`TranscoderEnsemble.encoder_bias`) may be cached. ``concepts``: the
    model's concept directions (None: its named patterns stand for concepts, with a note)."""
    e = e.float()
    check_finite(e)
    parts = decomposition_by_pattern(clf, ens, bank, e, U=U, encoder_bias=encoder_bias, concepts=concepts)
    check_finite(parts.logits, "the classifier's logits (activations overflowed)")
    check_finite(parts.patterns.flatten(1), "the pattern contributions (activations overflowed)")
    prob = torch.sigmoid(parts.logits)
    out = []
    shown = _Shown(bank.patterns)
    for b in range(len(e)):
        fs = []
        act = parts.activation[b].tolist()
        for c, name in enumerate(findings):
            contrib = parts.patterns[b, :, c]
            nz = (parts.activation[b] > 0).nonzero(as_tuple=True)[0]
            order = nz[torch.argsort(contrib[nz].abs(), descending=True)]
            values = contrib.tolist()
            fs.append(
                FindingExplanation(
                    finding=name,
                    probability=float(prob[b, c]),
                    logit=float(parts.logits[b, c]),
                    bias=float(parts.bias[b, c]),
                    error=float(parts.error[b, c]),
                    unbanked=float(parts.unbanked[b, c]),
                    patterns=[shown.contribution(p, values[p], act[p]) for p in order.tolist()],
                    n_cover=int(parts.n_cover[b, c]),
                )
            )
            f = fs[-1]
            if parts.concept is not None:
                f.concepts = _concept_lines(parts.concept, concepts, b, c)
            else:
                f.concepts = _pattern_concept_lines(f)
        notes = [] if concepts is not None else [NO_CONCEPTS_NOTE]
        out.append(Explanation(fs, sources[b] if sources else None, notes))
    return out


NO_CONCEPTS_NOTE = (
    "This model has no concept directions (it was built before them): its concepts are its named "
    "patterns, and everything else is unnamed. Rebuild its bank (lanic-hub patterns) to get concepts."
)


def _concept_lines(
    d: ConceptDecomposition, cd: ConceptDirections, b: int, c: int
) -> list[ConceptContribution]:
    vals, pres, named = d.concepts[b, :, c].tolist(), d.presence[b].tolist(), cd.named.tolist()
    lines = [
        ConceptContribution(name, v, "concept", key, p)
        for name, key, v, p, ok in zip(cd.names, cd.keys, vals, pres, named, strict=True)
        if ok
    ]
    lines.sort(key=lambda x: -abs(x.contribution))
    unnamed = sum(v for v, ok in zip(vals, named, strict=True) if not ok)
    if not all(named):
        lines.append(ConceptContribution(None, unnamed, "unnamed"))
    lines.append(ConceptContribution(None, float(d.reference[b, c]), "reference"))
    lines.append(ConceptContribution(None, float(d.residual[b, c]), "residual"))
    return lines


def _pattern_concept_lines(f: FindingExplanation) -> list[ConceptContribution]:
    """Concepts of a model without concept directions: its named, non-dense patterns, summed by
    name; the rest (unnamed and context patterns, latents outside the bank) as one unnamed line."""
    by_name: dict[str, float] = {}
    rest = f.unbanked
    for p in f.patterns:
        if p.named:
            by_name[p.name] = by_name.get(p.name, 0.0) + p.contribution
        else:
            rest += p.contribution
    lines = [ConceptContribution(n, v, "pattern") for n, v in by_name.items()]
    lines.sort(key=lambda x: -abs(x.contribution))
    return [*lines, ConceptContribution(None, rest, "unnamed")]


@torch.no_grad()
def decomposition_by_pattern(
    clf: DiagnosticClassifier,
    ens: TranscoderEnsemble,
    bank: PatternBank,
    e: torch.Tensor,
    U: torch.Tensor | None = None,
    encoder_bias: torch.Tensor | None = None,
    concepts: ConceptDirections | None = None,
) -> PatternDecomposition:
    """The explanation tensors of a batch (B, d), with the hidden layer and the codes computed
    once. ``U`` (:func:`latent_logit_weights`, (T, L, C)) and ``encoder_bias``
    (:meth:`TranscoderEnsemble.encoder_bias`, (T, L)) may be cached by the caller. With
    ``concepts``, the item contributions are also split over them (:class:`ConceptDecomposition`)."""
    h = clf.hidden(e)
    if encoder_bias is None:
        encoder_bias = ens.encoder_bias()
    v, i = ens.encode(e, bias=encoder_bias)
    recon = ens.decode(v, i).mean(1)
    W2, b2 = clf.fc2.weight, clf.fc2.bias
    U = latent_logit_weights(ens.W_dec, W2) if U is None else U
    d = decompose(v, i, h, recon, W2, b2, ens.b_dec, U=U)
    concept = (
        decomposition_by_concept(concepts, e, v, i, U, ens, encoder_bias) if concepts is not None else None
    )
    B, T, k, C = d.contributions.shape
    P = len(bank)
    pid = bank.latent_pattern[flat_latents(i, ens.cfg.n_latents).reshape(B, T * k)]
    flat = d.contributions.reshape(B, T * k, C)
    banked = pid >= 0
    rows = torch.arange(B, device=pid.device).view(B, 1).expand_as(pid)
    per_pattern = torch.zeros(B, P, C, dtype=flat.dtype, device=flat.device).index_put_(
        (rows[banked], pid[banked]), flat[banked], accumulate=True
    )
    act = pattern_activations_from_codes(v, i, ens.cfg.n_latents, bank.latent_pattern, bank.support)
    loose = flat * (~banked).unsqueeze(-1)
    items = torch.cat([per_pattern, loose], dim=1).abs()  # (B, P + T*k, C)
    srt = items.sort(dim=1, descending=True).values
    cum = srt.cumsum(1)
    total = cum[:, -1:, :]
    n_cover = ((cum < COVERAGE * total).sum(1) + 1).where(
        total[:, 0] > 0, torch.zeros_like(total[:, 0]).long()
    )
    return PatternDecomposition(
        bias=d.bias,
        patterns=per_pattern,
        unbanked=loose.sum(1),
        error=d.error,
        activation=act,
        n_cover=n_cover,
        logits=clf.head(h),
        concept=_closed(concept, per_pattern.sum(1) + loose.sum(1)),
    )
