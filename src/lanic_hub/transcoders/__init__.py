"""Transcoders: an ensemble of T sparse maps from embeddings to the classifier's hidden layer."""

from .ensemble import EnsembleOutput, TranscoderConfig, TranscoderEnsemble
from .train import TrainConfig, fidelity, train_ensemble

__all__ = [
    "EnsembleOutput",
    "TranscoderConfig",
    "TranscoderEnsemble",
    "TrainConfig",
    "fidelity",
    "train_ensemble",
]
