"""A model folder: where it is (a local folder, or a Hub repo id resolved through the cache) and
whether it is an intact, compatible LanIC model, checked before anything is loaded: config.json
(every size bounded), the safetensors header against the shapes the config implies, the pattern
sidecar against the weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError
from safetensors import SafetensorError, safe_open

from ..classifier import DiagnosticClassifier
from ..errors import DataError, LanicError
from ..patterns.record import Pattern
from ..transcoders import TranscoderEnsemble
from ..utils.hfcache import download_command, hub_offline, not_cached_reason
from ..utils.io import recover_dir
from .configuration_lanic import LANIC_FORMAT, LanICConfig

SIDECAR = "patterns.json"


BUNDLED_BACKBONE = "backbone"


class ModelFolderError(LanicError, ValueError):
    """A folder or repo is not a (compatible, intact) LanIC model."""


#: Upper bound on every size in a config: far above any real model, far below an allocation bomb.
MAX_DIM = 1 << 20


def resolve_model_folder(
    name: str | os.PathLike, revision: str | None = None, cache_dir: str | None = None
) -> Path:
    """A local folder as is; otherwise a Hub repo id, downloaded or (offline) found in the cache."""
    p = Path(name)
    if not p.exists() and p.with_name(p.name + ".old").is_dir():
        recover_dir(p)  # a save that was killed mid-swap: the previous complete folder
    if p.is_dir():
        return p
    if p.exists() or str(name).startswith((".", "/")) or os.sep in str(name).strip("/").replace("/", "", 1):
        raise ModelFolderError(f"{name}: no such model folder")

    offline = hub_offline()
    try:
        return Path(
            snapshot_download(str(name), revision=revision, cache_dir=cache_dir, local_files_only=offline)
        )
    except LocalEntryNotFoundError as exc:
        raise ModelFolderError(
            f"{name}: not a local folder, and {not_cached_reason(str(name), exc, offline)}; "
            f"download it once with `{download_command(str(name))}`"
        ) from exc
    except (RepositoryNotFoundError, HFValidationError, OSError) as exc:
        raise ModelFolderError(f"{name}: not a local folder and not found on the Hub: {exc}") from exc


def check_model_folder(folder: Path) -> None:
    """Refuse, with a clear message, folders that are not a compatible LanIC model."""
    cfg = folder / "config.json"
    if not cfg.is_file():
        hint = (
            " (it looks like a `lanic-hub train` folder: build the model with `lanic-hub export`)"
            if (folder / "ensemble.safetensors").is_file()
            else ""
        )
        raise ModelFolderError(f"{folder}: no config.json; not a LanIC model{hint}")
    try:
        doc = json.loads(cfg.read_text())
    except ValueError as exc:
        raise ModelFolderError(f"{cfg}: not valid JSON ({exc})") from exc
    if doc.get("model_type") != LanICConfig.model_type:
        raise ModelFolderError(f"{cfg}: model_type is {doc.get('model_type')!r}, not 'lanic'")
    if doc.get("lanic_format") != LANIC_FORMAT:
        raise ModelFolderError(
            f"{cfg}: saved in LanIC format {doc.get('lanic_format')}, this lanic-hub reads format "
            f"{LANIC_FORMAT}; install the lanic-hub version that wrote it"
        )
    if not (folder / "model.safetensors").is_file():
        raise ModelFolderError(f"{folder}: no model.safetensors (LanIC models are never loaded from pickles)")
    config = checked_config(cfg, doc)
    check_tensor_shapes(folder / "model.safetensors", config)
    bb = folder / BUNDLED_BACKBONE
    if config.bundled_backbone and (bb.is_symlink() or not _inside(bb, folder)):
        raise ModelFolderError(f"{bb}: the bundled backbone must be a folder inside the model folder")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def checked_config(cfg_path: Path, doc: dict[str, Any]) -> LanICConfig:
    """The config, with every size checked to be a positive integer below :data:`MAX_DIM`."""
    ens = doc.get("ensemble") or {}
    sizes = {"d_in": doc.get("d_in"), "hidden": doc.get("hidden"), "n_patterns": doc.get("n_patterns", 0)}
    sizes |= {f"ensemble.{k}": ens.get(k) for k in ("n_members", "n_latents", "k", "d_in", "d_out")}
    for key, v in sizes.items():
        low = 0 if key == "n_patterns" else 1
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= MAX_DIM:
            raise ModelFolderError(f"{cfg_path}: {key} = {v!r} is not an integer in [{low}, {MAX_DIM}]")
    if ens["n_members"] * ens["n_latents"] > 64 * MAX_DIM:
        raise ModelFolderError(f"{cfg_path}: ensemble.n_members x n_latents is implausibly large")
    try:
        return LanICConfig(
            **{k: v for k, v in doc.items() if k not in ("model_type", "transformers_version")}
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"{cfg_path}: not a valid LanIC config ({exc})") from exc


def model_parts(config: LanICConfig) -> tuple[DiagnosticClassifier, TranscoderEnsemble]:
    """The classifier and the ensemble a config describes (``LanICModel``'s two modules)."""
    return (
        DiagnosticClassifier(config.d_in, config.hidden, len(config.findings)),
        TranscoderEnsemble(config.transcoder_config()),
    )


def expected_shapes(config: LanICConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of ``model.safetensors`` and its shape, as the config implies (the modules are
    built on the meta device: no memory)."""
    with torch.device("meta"):
        clf, ens = model_parts(config)
    want = {f"classifier.{k}": tuple(v.shape) for k, v in clf.state_dict().items()}
    want |= {f"ensemble.{k}": tuple(v.shape) for k, v in ens.state_dict().items()}
    return want | config.buffer_shapes()


def check_tensor_shapes(path: Path, config: LanICConfig) -> None:
    """Compare the safetensors header (read without loading a tensor) with the shapes the config
    implies (a model built on the meta device: no memory): missing, extra or resized tensors."""
    try:
        with torch.device("meta"):
            want = expected_shapes(config)
    except (RuntimeError, ValueError) as exc:
        raise ModelFolderError(f"{path.parent / 'config.json'}: sizes do not make a model ({exc})") from exc
    try:
        with safe_open(str(path), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: cannot read the tensor header ({exc})") from exc
    problems = [f"missing {k} {want[k]}" for k in sorted(want.keys() - have.keys())]
    problems += [f"unexpected {k} {have[k]}" for k in sorted(have.keys() - want.keys())]
    problems += [
        f"{k} has shape {have[k]}, the config implies {want[k]}"
        for k in sorted(want.keys() & have.keys())
        if have[k] != want[k]
    ]
    if problems:
        raise ModelFolderError(
            f"{path}: the weights do not match config.json: {'; '.join(problems[:5])}"
            f"{f' (+{len(problems) - 5} more)' if len(problems) > 5 else ''}"
        )


def check_sidecar(path: Path, entries: list[Any], model: Any) -> list[Pattern]:
    """The sidecar's patterns, each checked against the weights: ids in order, member latents in
    range and mapped to that pattern by ``latent_pattern`` (the types: :meth:`Pattern.from_dict`)."""
    tc = model.config.transcoder_config()
    T, L = tc.n_members, tc.n_latents
    owner = model.latent_pattern.tolist()  # one conversion, not one tensor lookup per member
    patterns = []
    for j, d in enumerate(entries):
        where = f"{path}: pattern {j}"
        if not isinstance(d, dict) or d.get("id") != j:
            raise ModelFolderError(f"{where}: expected an object with id {j}")
        try:
            p = Pattern.from_dict(d, where)
        except DataError as exc:
            raise ModelFolderError(str(exc)) from exc
        for m in p.members:
            if not (0 <= m[0] < T and 0 <= m[1] < L):
                raise ModelFolderError(f"{where}: member {m!r} is not a (member < {T}, latent < {L}) pair")
            if owner[m[0] * L + m[1]] != j:
                raise ModelFolderError(
                    f"{where}: member latent {m} belongs to pattern {owner[m[0] * L + m[1]]} in the weights"
                )
        patterns.append(p)
    return patterns
