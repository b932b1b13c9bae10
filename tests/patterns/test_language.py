"""Language grounding (lanic_hub.patterns.language): names from the vocabulary, and pluggable annotators."""

from __future__ import annotations

import torch

from lanic_hub.patterns import Annotation, Pattern, PatternEvidence, annotate_patterns, load_vocabulary
from lanic_hub.patterns.language import name_vectors


def test_a_pattern_pointing_at_a_phrase_is_named_after_it():
    vocab = load_vocabulary()
    g = torch.Generator().manual_seed(0)
    phrase_emb = torch.randn(len(vocab), 128, generator=g)
    # one pattern per concept, each a noisy copy of the (centred) text embedding of that concept's
    # first phrase: the z-scores across patterns single out the phrase each one points at
    concepts = sorted(set(vocab.concepts))
    picks = [vocab.concepts.index(c) for c in concepts]
    centred = phrase_emb - phrase_emb.mean(0)
    vecs = centred[picks] + 0.05 * torch.randn(len(picks), 128, generator=g)
    names = name_vectors([(vecs, torch.zeros(128))], phrase_emb, vocab)
    assert [a.name for a in names] == [vocab.phrases[j] for j in picks]
    assert [a.concept for a in names] == concepts
    assert [a.category for a in names] == [vocab.categories[j] for j in picks]
    assert all(0 < a.confidence <= 1 and len(a.alternatives) == 3 for a in names)
    assert all(a.concept not in a.alternatives for a in names)


def test_two_views_average_their_evidence():
    vocab = load_vocabulary()
    g = torch.Generator().manual_seed(1)
    phrase_emb = torch.randn(len(vocab), 32, generator=g)
    centred = phrase_emb - phrase_emb.mean(0)
    a, b = vocab.concepts.index("edema"), vocab.concepts.index("cardiomegaly")
    view = centred[[a, b]]
    one = name_vectors([(view, torch.zeros(32))], phrase_emb, vocab)
    two = name_vectors([(view, torch.zeros(32)), (view.clone(), torch.zeros(32))], phrase_emb, vocab)
    assert [x.name for x in one] == [x.name for x in two]
    assert [x.score for x in one] == [x.score for x in two]  # the same view twice: the same mean


def test_an_annotator_relabels_only_what_it_answers():
    pats = [
        Pattern.from_dict(
            {
                "id": j,
                "name": f"n{j}",
                "category": "cardiac",
                "support": 1,
                "members": [[0, j]],
                "typical_sentences": ts,
                "gallery": [{"row": 10 + j, "activation": 1.0}],
            }
        )
        for j, ts in enumerate([["heart is enlarged."], []])
    ]
    seen: list[PatternEvidence] = []

    class FirstSentence:
        def annotate(self, evidence):
            seen.extend(evidence)
            return [
                Annotation(e.typical_sentences[0], "cardiac", "custom", 1.0, 0.0, source="test")
                if e.typical_sentences
                else None
                for e in evidence
            ]

    assert annotate_patterns(pats, FirstSentence()) == 1
    assert [e.gallery_rows for e in seen] == [[10], [11]] and seen[0].current is None
    assert pats[0].name == "heart is enlarged." and pats[0].annotation["source"] == "test"
    assert pats[1].name == "n1" and pats[1].annotation is None
