"""Checkpoints of an ensemble's training: one safetensors file (weights, Adam moments, latent ages,
the data-order RNG, the curves so far) renamed into place, and the identity a rerun must match to
resume from it (the ensemble config, the schedule and a hash of the data)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ConfigError, DataError
from .ensemble import TranscoderConfig, TranscoderEnsemble

CHECKPOINT = "checkpoint.safetensors"


def run_identity(
    cfg: TranscoderConfig,
    schedule: dict[str, Any],
    e: torch.Tensor,
    h: torch.Tensor,
    heldout: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the ensemble config, the schedule (everything
    in the training config, ``dataclasses.asdict(TrainConfig)``, that changes the result) and a
    hash of the training data."""
    digest = hashlib.blake2b(digest_size=16)
    for x in (e, h):
        digest.update(str(tuple(x.shape)).encode())
        digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    skip = [
        "checkpoint_every",
        "checkpoint_seconds",
        "chunk_latents",
        "convergence_checks",
        "convergence_rows",
        "plateau_tol",
    ]
    if schedule["plateau_every"] is None:  # the cosine schedule: the plateau settings change nothing
        skip += ["plateau_every", "plateau_window", "plateau_stop_tol", "cooldown"]
    else:  # the held-out rows decide the budget: they are part of the run
        for x in heldout or ():
            digest.update(str(tuple(x.shape)).encode())
            digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    kept = {k: v for k, v in schedule.items() if k not in skip}
    return {"config": cfg.to_dict(), "schedule": kept, "data": digest.hexdigest()}


def save_checkpoint(
    folder: Path,
    model: TranscoderEnsemble,
    opt,
    epoch: int,
    step: int,
    since: torch.Tensor,
    g: torch.Generator,
    identity: dict[str, Any],
    curve: list[tuple[int, float]],
    heldout_curve: list[tuple[int, float]] = (),
) -> None:
    """One file, renamed into place: weights, Adam moments, latent ages and the data-order RNG,
    with epoch, step, the FVU curve so far and the run's identity (:func:`run_identity`) in its
    metadata. Nothing in it is pickled, and a kill at any moment leaves the previous complete
    checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    t = {f"model.{k}": v.detach() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for i, st in osd["state"].items():
        t |= {f"opt.{i}.{k}": torch.as_tensor(v).detach() for k, v in st.items()}
    t |= {"since": since, "rng": g.get_state()}
    meta = {
        "epoch": str(epoch),
        "step": str(step),
        "identity": json.dumps(identity, sort_keys=True),
        "param_groups": json.dumps(osd["param_groups"]),
        "curve": json.dumps([list(c) for c in curve]),
        "heldout_curve": json.dumps([list(c) for c in heldout_curve]),
    }
    tmp = folder / f"{CHECKPOINT}.tmp{os.getpid()}"
    save_file({k: v.contiguous() for k, v in t.items()}, tmp, metadata=meta)
    os.replace(tmp, folder / CHECKPOINT)


class StaleCheckpointError(ConfigError):
    """The checkpoint belongs to another run (config, schedule or data)."""


def load_checkpoint(path: Path, identity: dict[str, Any], model: TranscoderEnsemble, opt):
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in f.keys()}
        epoch, step, groups = int(meta["epoch"]), int(meta["step"]), json.loads(meta["param_groups"])
        saved = json.loads(meta.get("identity", "{}"))
        curve = [(int(s), float(f)) for s, f in json.loads(meta.get("curve", "[]"))]
        held = [(int(s), float(f)) for s, f in json.loads(meta.get("heldout_curve", "[]"))]
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(
            f"{path}: not a readable lanic-hub checkpoint ({exc}); delete it to start over"
        ) from exc
    differs = [k for k in identity if saved.get(k) != identity[k]]
    if differs:
        raise StaleCheckpointError(
            f"{path}: checkpoint was made with another {' and '.join(differs)} "
            f"({ {k: saved.get(k) for k in differs} }); use a new folder or delete it"
        )
    model.load_state_dict({k[len("model.") :]: v for k, v in t.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in t.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})
    return epoch, step, t["since"], t["rng"], curve, held
