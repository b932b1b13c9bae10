"""The pattern bank: what a latent means, stored beside the model.

Files (in the model folder)::

    patterns.safetensors   latent_pattern (T*L,) int64: bank pattern of every latent, -1 if none
                           pattern_direction (P, d): mean unit encoder direction of each pattern
                           latent_frequency / latent_max / latent_mean / latent_ms /
                           latent_purity / latent_coherence (T*L,) float32: per-latent scores
    patterns.json          {"meta": {...}, "patterns": [{...}, ...]}: one entry per pattern, the
                           fields of :class:`lanic_hub.patterns.record.Pattern` (id, name,
                           category, concept, support, members [[t, i], ...], scores, gallery
                           [{row, activation}], naming decision)

``meta`` records the ensemble fingerprint (a bank refuses any other ensemble), the stage counts
(latents, alive, merged, selected), the thresholds, the MS encoder and the data it was measured on.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import BankMismatchError, DataError
from ..records import BankMeta
from ..transcoders.ensemble import flat_latents
from ..utils.io import sha256_file as _sha256
from ..utils.io import write_text_atomic
from .config import BankConfig
from .record import Pattern

__all__ = ["BankConfig", "PatternBank"]

BANK_VERSION = 1


@dataclass
class PatternBank:
    latent_pattern: torch.Tensor
    direction: torch.Tensor
    latent_scores: dict[str, torch.Tensor]
    patterns: list[Pattern]
    meta: BankMeta

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def support(self) -> torch.Tensor:
        return torch.tensor([p.support for p in self.patterns], dtype=torch.long)

    def check_ensemble(self, fingerprint: str, n_latents_total: int) -> None:
        """Refuse an ensemble this bank was not built from."""
        if self.meta.ensemble_fingerprint != fingerprint or len(self.latent_pattern) != n_latents_total:
            raise BankMismatchError(
                f"this pattern bank was built from ensemble {self.meta.ensemble_fingerprint} "
                f"({len(self.latent_pattern)} latents), not from this one ({fingerprint}, "
                f"{n_latents_total} latents); rebuild it with `lanic-hub patterns`"
            )

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"latent_pattern": self.latent_pattern, "pattern_direction": self.direction}
        tensors |= {f"latent_{k}": v.float() for k, v in self.latent_scores.items()}
        tmp = folder / f"patterns.safetensors.tmp{os.getpid()}"
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
        # the JSON names the tensors file by hash: a kill between the two renames leaves a pair
        # that load() refuses, never a silently mismatched bank
        meta = {**self.meta.to_dict(), "tensors_sha256": _sha256(tmp)}
        doc = {"version": BANK_VERSION, "meta": meta, "patterns": [p.to_dict() for p in self.patterns]}
        os.replace(tmp, folder / "patterns.safetensors")
        write_text_atomic(folder / "patterns.json", json.dumps(doc, indent=1, default=_jsonable))

    @classmethod
    def load(cls, folder: str | Path) -> PatternBank:
        folder = Path(folder)
        st, js = folder / "patterns.safetensors", folder / "patterns.json"
        if not st.is_file() or not js.is_file():
            raise DataError(
                f"{folder}: no patterns.safetensors/patterns.json; run `lanic-hub patterns` first"
            )
        doc = json.loads(js.read_text())
        if doc.get("version") != BANK_VERSION:
            raise DataError(
                f"{js}: pattern bank version {doc.get('version')} unsupported (want {BANK_VERSION})"
            )
        want = doc.get("meta", {}).pop("tensors_sha256", None)  # pins this file pair only
        if want is not None and want != _sha256(st):
            raise DataError(
                f"{js} and {st.name} are from different builds (an interrupted write?); "
                "rerun `lanic-hub patterns`"
            )
        t = load_file(st)
        scores = {
            k[len("latent_") :]: v for k, v in t.items() if k.startswith("latent_") and k != "latent_pattern"
        }
        patterns = [Pattern.from_dict(d, f"{js}: pattern {j}") for j, d in enumerate(doc["patterns"])]
        meta = BankMeta.parse(doc["meta"], f"{js}: meta")
        bank = cls(t["latent_pattern"], t["pattern_direction"], scores, patterns, meta)
        if len(bank.direction) != len(bank.patterns) or int(bank.latent_pattern.max()) >= len(bank.patterns):
            raise DataError(f"{folder}: patterns.safetensors and patterns.json disagree on the pattern count")
        return bank


def pattern_activations_from_codes(
    values: torch.Tensor,
    indices: torch.Tensor,
    n_latents: int,
    latent_pattern: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """(B, P) pattern activations of sparse codes (B, T, k): the mean over a pattern's ``support``
    member latents of their activations (``latent_pattern`` maps a global latent id to its pattern,
    -1 for none). The one definition: the bank builder, ``forward`` and the explanations use it."""
    B = values.shape[0]
    pid = latent_pattern[flat_latents(indices, n_latents).reshape(B, -1)]
    m = pid >= 0
    rows = torch.arange(B, device=values.device).view(B, 1).expand_as(pid)
    vals = values.reshape(B, -1)
    out = torch.zeros(B, len(support), dtype=values.dtype, device=values.device)
    return out.index_put_((rows[m], pid[m]), vals[m] / support.to(values)[pid[m]], accumulate=True)


def is_named(p: Pattern) -> bool:
    """Whether a pattern carries its name (banks from before naming thresholds: always, as
    ``named`` defaults to true). A dense pattern carries one only as a graded axis its reports
    support."""
    graded = (p.name_support or {}).get("rule") == "graded"
    return bool(p.named) and (not p.dense or graded)


def pattern_label(p: Pattern) -> str:
    """How a pattern is shown, everywhere (explanations, the Space, the card): its name when it
    carries one; 'context: ...' when it is dense; otherwise unnamed, with its nearest phrase."""
    if is_named(p):
        return p.name
    if p.dense:
        return f"context pattern {p.id} (on most images; nearest phrase '{p.name}')"
    return f"unnamed pattern {p.id} (nearest phrase '{p.name}', confidence {p.confidence or 0:.2f})"


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if hasattr(x, "__dataclass_fields__"):
        return asdict(x)
    raise TypeError(f"not JSON-serialisable: {type(x)}")
