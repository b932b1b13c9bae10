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

The package, by job: :mod:`.pairs` (which cases, rendered and embedded), :mod:`.attribution` (the
methods, each splitting its own logits), :mod:`.metrics` (the measurement, on embeddings only),
:mod:`.baselines`, :mod:`.suite` (the run that writes results) and :mod:`.report` (the leaderboard).
"""

from .attribution import (
    Attributor,
    BankAttributor,
    ConceptAttributor,
    Parts,
    SparseProbeAttributor,
    ground_truth_directions,
    named_concepts,
)
from .baselines import baseline_attributors
from .metrics import (
    GROUPS,
    assign_factors,
    change_shares,
    embedding_figures,
    evaluate_method,
    gallery_factors,
    group_figures,
    named_mass_shares,
    naming_precision,
    naming_precision_either,
    pair_changes,
)
from .pairs import (
    CounterfactualConfig,
    Pair,
    draw_pairs,
    embed_images,
    gt_matrix,
    phantom_split,
    render_pairs,
    render_without,
)
from .report import SUITE, markdown
from .suite import run_counterfactual_suite, smoke_sized

__all__ = [
    "GROUPS",
    "SUITE",
    "Attributor",
    "BankAttributor",
    "ConceptAttributor",
    "CounterfactualConfig",
    "Pair",
    "Parts",
    "SparseProbeAttributor",
    "assign_factors",
    "baseline_attributors",
    "change_shares",
    "draw_pairs",
    "embed_images",
    "embedding_figures",
    "evaluate_method",
    "gallery_factors",
    "group_figures",
    "gt_matrix",
    "ground_truth_directions",
    "markdown",
    "named_concepts",
    "named_mass_shares",
    "naming_precision",
    "naming_precision_either",
    "pair_changes",
    "phantom_split",
    "render_pairs",
    "render_without",
    "run_counterfactual_suite",
    "smoke_sized",
]
