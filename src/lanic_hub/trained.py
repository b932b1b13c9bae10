"""The train stage's artefact: a folder holding the classifier and the transcoder ensemble.

``lanic-hub train`` (:mod:`lanic_hub.training`) writes it; the pattern bank, the model export and
the evaluation read it back through :func:`load_trained`. Each weights file has a JSON sidecar with
its shape::

    classifier.safetensors / classifier.json    d_in, hidden, findings, ...
    ensemble.safetensors   / ensemble.json      TranscoderConfig.to_dict()
    fidelity.json                               the run report (FVU, AUROCs, health checks)

This module sits below the pattern layer: it knows the file layout, not how training works.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .classifier import DiagnosticClassifier
from .constants import FINDINGS
from .errors import DataError
from .records import TrainingReport
from .transcoders import TranscoderConfig, TranscoderEnsemble
from .utils.io import write_text_atomic

#: The run report ``lanic-hub train`` writes beside the weights.
FIDELITY = TrainingReport.FILE


def save_weights(tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
    """``path`` (.safetensors) and its JSON sidecar ``meta``, each written atomically."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1))


def load_ensemble(path: str | Path) -> TranscoderEnsemble:
    """The ensemble in ``path`` (.safetensors, with its .json sidecar), in eval mode."""
    path = Path(path)
    ens = TranscoderEnsemble(TranscoderConfig.from_dict(json.loads(path.with_suffix(".json").read_text())))
    ens.load_state_dict(load_file(path))
    return ens.eval()


def load_trained(folder: str | Path) -> tuple[DiagnosticClassifier, TranscoderEnsemble]:
    """The classifier and ensemble that ``lanic-hub train`` wrote to ``folder``, in eval mode."""
    folder = Path(folder)
    for name in ("classifier", "ensemble"):
        if not (folder / f"{name}.safetensors").is_file() or not (folder / f"{name}.json").is_file():
            raise DataError(
                f"{folder}: no {name}.safetensors/.json; not a folder written by `lanic-hub train`"
            )
    c = json.loads((folder / "classifier.json").read_text())
    clf = DiagnosticClassifier(c["d_in"], c["hidden"], len(c.get("findings", FINDINGS)))
    clf.load_state_dict(load_file(folder / "classifier.safetensors"))
    return clf.eval(), load_ensemble(folder / "ensemble.safetensors")


def read_report(folder: str | Path) -> TrainingReport:
    """The run report (``fidelity.json``) of a training folder."""
    path = Path(folder) / FIDELITY
    if not path.is_file():
        raise DataError(f"{path}: missing; not a folder written by `lanic-hub train`")
    return TrainingReport.read(path)
