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

from ..errors import BankMismatchError, ConfigError, DataError
from ..transcoders.ensemble import flat_latents
from ..utils.io import sha256_file as _sha256
from ..utils.io import write_text_atomic
from .record import Pattern

BANK_VERSION = 1


@dataclass(frozen=True)
class BankConfig:
    """How latents become the bank. Every threshold is recorded in the bank's metadata."""

    gallery_size: int = 20
    """Top-activating images kept per pattern (and per latent, for text coherence)."""
    cos_threshold: float = 0.7
    """Latents of two members merge when their encoder directions have at least this cosine ..."""
    corr_threshold: float = 0.5
    """... and their activations on the sample rows at least this correlation."""
    min_support: int = 5
    """A pattern is kept when at least this many members found it (stability)."""
    min_frequency: float = 0.002
    """... its member latents fire, on average, on at least this fraction of images ..."""
    max_frequency: float = 0.9
    """... and on at most this fraction (always-on directions are offsets, not patterns) ..."""
    min_ms: float = 0.0
    """... and has a MonoSemanticity score of at least this."""
    dense_frequency: float = 0.5
    """A kept pattern whose member latents fire on more than this share of images is *dense*: shown
    apart, as context (what most images have), never named as a finding."""
    name_label_auroc: float = 0.8
    """A pattern is named after a finding that a report label covers (``REPORT_LABEL``) only if its
    activation detects that label with at least this AUROC on the sample rows; below it the pattern
    is shown unnamed, with its nearest phrase. The naming thresholds were chosen on held-out
    phantoms for naming precision >= 90% (eval/calibrate_naming.py)."""
    name_gallery_share: float = 0.0
    """A pattern is named after a device only if, besides the AUROC, at least this share of its
    gallery images have the devices label in their reports (the label does not say which device;
    the name does). 0: the AUROC alone (what the calibration chose)."""
    name_confidence: float = 0.0
    """... and only if its naming confidence (the softmax over concepts) is at least this."""
    report_naming: bool = True
    """Where the dataset has reports, name patterns after the report concepts that support them
    (:mod:`lanic_hub.patterns.naming`): a sparse pattern by the precision and lift of its gallery,
    a dense one ("..., graded") by how its magnitude ranks the concept. This rule then decides
    whether a pattern is named; without reports, the label rule below does."""
    name_precision: float = 0.7
    """Report naming, sparse: share of the gallery whose report states the concept ..."""
    name_lift: float = 3.0
    """... and that share over the concept's base rate ..."""
    name_max_other: float = 0.6
    """... and no other concept that passes the lift reaches this share of the gallery (an
    ambiguous gallery abstains)."""
    name_graded_auroc: float = 0.9
    """Report naming, dense: AUROC of the pattern's magnitude for the concept. The report naming
    thresholds are the loosest that reached naming precision 0.9 against the ground truth of
    1,000 phantoms of seed 7003 (names from the quickstart's own reports; precision reported on
    seed 7001, which chose nothing: eval/calibrate_report_naming.py,
    docs/report_naming_calibration.md)."""
    name_unlabelled: bool = False
    """Whether concepts no report label covers (artifacts, anatomy) may be named at all: nothing in
    the data can support such a name, and on phantoms their names were right too rarely."""
    sample_rows: int = 4096
    """Rows (a fixed random sample) on which activation profiles and label AUROCs are computed."""
    batch_size: int = 512
    """Embedding rows per streamed batch."""
    naming: str = "both"
    """Name from the gallery's mean embedding ('gallery'), the encoder direction ('direction'), or
    the average of both views ('both': best on the phantom world, see docs/patterns_phantom.md)."""
    typical_sentences: int = 3
    """Most typical report sentences stored per pattern."""
    seed: int = 0
    """Seed of the sample rows and of the random-gallery coherence baseline."""

    def __post_init__(self) -> None:
        if self.naming not in ("gallery", "direction", "both"):
            raise ConfigError(f"naming must be 'gallery', 'direction' or 'both', not {self.naming!r}")
        if not 0 <= self.min_frequency <= self.max_frequency <= 1:
            raise ConfigError(f"need 0 <= min_frequency <= max_frequency <= 1: {self}")
        if min(self.gallery_size, self.min_support, self.sample_rows, self.batch_size) < 1:
            raise ConfigError(f"sizes must be >= 1: {self}")


@dataclass
class PatternBank:
    latent_pattern: torch.Tensor
    direction: torch.Tensor
    latent_scores: dict[str, torch.Tensor]
    patterns: list[Pattern]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def support(self) -> torch.Tensor:
        return torch.tensor([p.support for p in self.patterns], dtype=torch.long)

    def check_ensemble(self, fingerprint: str, n_latents_total: int) -> None:
        """Refuse an ensemble this bank was not built from."""
        if self.meta["ensemble_fingerprint"] != fingerprint or len(self.latent_pattern) != n_latents_total:
            raise BankMismatchError(
                f"this pattern bank was built from ensemble {self.meta['ensemble_fingerprint']} "
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
        meta = {**self.meta, "tensors_sha256": _sha256(tmp)}
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
        bank = cls(t["latent_pattern"], t["pattern_direction"], scores, patterns, doc["meta"])
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


def is_named(p: Pattern | dict[str, Any]) -> bool:
    """Whether a pattern (a record, or its dict) carries its name (banks from before naming
    thresholds: always). A dense pattern carries one only as a graded axis its reports support."""
    graded = (p.get("name_support") or {}).get("rule") == "graded"
    return bool(p.get("named", True)) and (not p.get("dense", False) or graded)


def pattern_label(p: Pattern | dict[str, Any]) -> str:
    """How a pattern (a record, or its dict) is shown, everywhere (explanations, the Space, the
    card): its name when it carries one; 'context: ...' when it is dense; otherwise unnamed, with
    its nearest phrase."""
    if is_named(p):
        return p["name"]
    if p.get("dense"):
        return f"context pattern {p['id']} (on most images; nearest phrase '{p['name']}')"
    return (
        f"unnamed pattern {p['id']} (nearest phrase '{p['name']}', confidence {p.get('confidence') or 0:.2f})"
    )


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if hasattr(x, "__dataclass_fields__"):
        return asdict(x)
    raise TypeError(f"not JSON-serialisable: {type(x)}")
