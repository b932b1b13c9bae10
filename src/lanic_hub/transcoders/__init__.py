"""Transcoders: an ensemble of T sparse maps from embeddings to the classifier's hidden layer."""

from .ensemble import EnsembleOutput, TranscoderConfig, TranscoderEnsemble, fvu
from .train import TrainConfig, fidelity, train_ensemble

__all__ = [
    "EnsembleOutput",
    "TranscoderConfig",
    "TranscoderEnsemble",
    "fvu",
    "TrainConfig",
    "fidelity",
    "train_ensemble",
]
