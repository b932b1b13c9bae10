"""Grounding (the bank builder's phases 6 and 7): pattern directions, and whether typical
sentences fit a pattern's name."""

from __future__ import annotations

import torch

from lanic_hub.patterns.grounding import SENTENCE_FIT, pattern_directions, sentence_fit
from lanic_hub.patterns.record import Pattern
from lanic_hub.patterns.vocabulary import Vocabulary
from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble


def test_a_pattern_direction_is_the_normalised_mean_of_its_latents_unit_encoder_directions():
    ens = TranscoderEnsemble(TranscoderConfig(d_in=6, d_out=4, n_latents=5, k=2, n_members=2))
    latent_pattern = torch.tensor([0, -1, 1, 0, -1, 1, -1, -1, 0, -1])  # 2 members x 5 latents
    got = pattern_directions(ens, latent_pattern, 2)
    W = ens.W_enc.detach().T  # (T*L, d): latent j's encoder direction
    for p in range(2):
        members = W[latent_pattern == p]
        want = (members / members.norm(dim=1, keepdim=True)).mean(0)
        assert torch.allclose(got[p], want / want.norm(), atol=1e-6)


def test_sentence_fit_tells_a_fitting_gallery_from_a_mismatched_one():
    """The issue's case: a pattern named for one concept whose typical sentences speak of another
    gets a low fit (the Space shows the mismatch); sentences about its own concept fit."""
    vocab = Vocabulary(
        phrases=("enlarged cardiac silhouette", "cardiomegaly", "pleural effusion", "chest tube"),
        categories=("cardiac", "cardiac", "pleural", "device"),
        concepts=("cardiomegaly", "cardiomegaly", "pleural_effusion", "chest_tube"),
        source="test",
    )

    def pattern(concept: str, sentences: list[str]) -> Pattern:
        return Pattern(
            id=0, name=concept, category="cardiac", support=1, members=[[0, 0]], concept=concept,
            typical_sentences=sentences,
        )  # fmt: skip

    fits = sentence_fit(
        [
            pattern("cardiomegaly", ["The heart is enlarged.", "Cardiomegaly."]),
            pattern("cardiomegaly", ["Right chest tube in place."]),
            pattern("edema", ["Cardiomegaly."]),  # no phrase of its concept
            pattern("cardiomegaly", []),
        ],
        vocab,
        None,
    )
    assert fits[0] > SENTENCE_FIT > fits[1]
    assert fits[2] is None and fits[3] is None
