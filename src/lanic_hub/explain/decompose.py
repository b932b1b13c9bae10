"""The decompositions behind an explanation: the exact split of each logit over bank patterns
(:func:`decomposition_by_pattern`) and over concept directions (:func:`decomposition_by_concept`),
and :func:`explain_embeddings`, which fills the records of :mod:`.records` from embeddings."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..classifier import DiagnosticClassifier
from ..constants import FINDINGS
from ..decomposition import decompose, latent_contributions, latent_logit_weights
from ..patterns import PatternBank
from ..patterns.bank import is_named, pattern_activations_from_codes, pattern_label
from ..patterns.concepts import ConceptDirections, active_linear_maps, shapley_over_concepts
from ..patterns.record import Pattern
from ..transcoders import TranscoderEnsemble
from ..transcoders.ensemble import flat_latents
from ..utils.tensors import check_finite
from .records import (
    COVERAGE,
    ConceptContribution,
    Explanation,
    FindingExplanation,
    PatternContribution,
)


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
