"""What an explanation is: one finding's logit split into its baseline, its concepts and its
patterns (:class:`FindingExplanation`), every finding of one image (:class:`Explanation`), and how
they print. The decompositions that fill them are in :mod:`.decompose`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
