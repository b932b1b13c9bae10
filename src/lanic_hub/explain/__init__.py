"""Explanations: a finding's logit split exactly into bias, pattern contributions and error.

For each finding c (see :mod:`lanic_hub.decomposition`)::

    logit_c = bias_c + Σ_patterns contribution_p,c + unbanked_c + error_c

``contribution_p,c`` sums the contributions ``(z_t,i / T) · W2_c · W_dec_t[:, i]`` of the latents
(t, i) merged into bank pattern p; ``unbanked_c`` is the same sum over active latents that are in
no bank pattern (they are reported, never dropped), and ``error_c = W2_c · (h - ĥ)`` is what the
ensemble misses. The four parts add up to the classifier's own logit.

The records are in :mod:`.records`, the decompositions in :mod:`.decompose`.
"""

from ..patterns.bank import pattern_activations_from_codes
from ..transcoders.ensemble import flat_latents
from .decompose import (
    NO_CONCEPTS_NOTE,
    ConceptDecomposition,
    PatternDecomposition,
    decomposition_by_concept,
    decomposition_by_pattern,
    explain_embeddings,
)
from .records import (
    COVERAGE,
    LEGEND,
    ConceptContribution,
    Explanation,
    FindingExplanation,
    PatternContribution,
)

__all__ = [
    "COVERAGE",
    "LEGEND",
    "NO_CONCEPTS_NOTE",
    "ConceptContribution",
    "ConceptDecomposition",
    "Explanation",
    "FindingExplanation",
    "PatternContribution",
    "PatternDecomposition",
    "decomposition_by_concept",
    "decomposition_by_pattern",
    "explain_embeddings",
    "flat_latents",
    "pattern_activations_from_codes",
]
