"""Transcoders: an ensemble of T sparse maps from embeddings to the classifier's hidden layer.

:mod:`.ensemble` (the model), :mod:`.step` (its fused TopK training step), :mod:`.train` (the
schedule and the training loop), :mod:`.checkpoint` (resumable checkpoints), :mod:`.fidelity`
(how well a trained ensemble reconstructs)."""

from .ensemble import EnsembleOutput, TranscoderConfig, TranscoderEnsemble
from .fidelity import fidelity
from .train import TrainConfig, train_ensemble

__all__ = [
    "EnsembleOutput",
    "TranscoderConfig",
    "TranscoderEnsemble",
    "TrainConfig",
    "fidelity",
    "train_ensemble",
]
