"""One bank pattern as a typed record: the schema of an entry of ``patterns.json``, in one place.

A :class:`Pattern` is read with :meth:`Pattern.from_dict` (which checks the types of what it will
use, naming the entry and the key) and written with :meth:`Pattern.to_dict` (keys in the order of
the fields below, so a bank read and written again is byte-identical). Keys this version does not
know are kept in ``extra`` and written back.

Attribute access is the API (``p.name``, ``p.support``); a record is not a dict (convert with
:meth:`Pattern.to_dict` where a plain JSON object is wanted).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import RecordError


@dataclass(kw_only=True)
class Pattern:
    """A pattern of the bank: latents of several members that found the same direction."""

    id: int
    """Position in the bank (0..P-1); ``latent_pattern`` maps a latent to it."""
    name: str
    """Language label: the vocabulary phrase it is closest to (shown only when ``named``)."""
    category: str
    """cardiac, pulmonary, pleural, structural, device or artifact (the name's category)."""
    concept: str | None = None
    """The vocabulary concept of the name (phantom factor names are concepts)."""
    confidence: float | None = None
    """Softmax probability of the name's concept over all concepts."""
    annotation: dict[str, Any] | None = None
    """The full language label (:class:`lanic_hub.patterns.language.Annotation` as a dict)."""
    support: int
    """How many ensemble members found it (one latent each)."""
    members: list[list[int]]
    """``[member, latent]`` pairs of its latents; ``len(members) == support``."""
    frequency: float | None = None
    """Mean over its member latents of the share of images each fires on."""
    coverage: float | None = None
    """Share of images on which any member latent fires."""
    max: float | None = None
    """Largest pattern activation over the embedded rows."""
    mean: float | None = None
    """Mean pattern activation over the embedded rows."""
    ms: float | None = None
    """MonoSemanticity score (embedding similarity of the images it fires on, weighted)."""
    purity: dict[str, Any] = field(default_factory=dict)
    """``{label, auroc}``: the label column its activation detects best, on the sample rows."""
    text_coherence: float | None = None
    """How alike its gallery's report sentences are, above a random gallery (None: no reports)."""
    typical_sentences: list[str] = field(default_factory=list)
    """Report sentences most typical of its gallery."""
    gallery: list[dict[str, Any]] = field(default_factory=list)
    """Top-activating images, ``{row, activation}``: ``row`` is a dataset row reference."""
    label_auroc: dict[str, float | None] = field(default_factory=dict)
    """AUROC of its activation for each CheXpert report label, on the sample rows."""
    gallery_label_share: dict[str, float] = field(default_factory=dict)
    """Per report label, the share of its gallery images whose report has it."""
    dense: bool = False
    """Fires on most images: context, never named as a finding."""
    named: bool = True
    """Whether it carries its name (:func:`lanic_hub.patterns.naming.naming_decision`)."""
    name_support: dict[str, Any] | None = None
    """The measurement behind ``named``: the report label, its AUROC (and gallery share)."""
    best_factor: dict[str, Any] | None = None
    """Phantoms only: the ground-truth factor its activation detects best, with the AUROC."""
    sentence_fit: float | None = None
    """Best cosine between its typical sentences and its concept's phrases (None: none)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of the entry this version does not know, written back as they were."""

    #: fields written only when set (absent from banks of worlds without them)
    OMIT_IF_NONE = ("best_factor",)

    @classmethod
    def from_dict(cls, d: Any, where: str = "pattern") -> Pattern:
        """The record of one ``patterns.json`` entry; a :class:`RecordError` naming ``where`` and the
        key when an entry cannot be what the explanations and the gallery will read."""
        if not isinstance(d, dict) or type(d.get("id")) is not int:
            raise RecordError(f"{where}: expected an object with an integer id")
        if not isinstance(d.get("name"), str) or not isinstance(d.get("category"), str):
            raise RecordError(f"{where}: 'name' and 'category' must be strings")
        members, support = d.get("members"), d.get("support")
        if type(support) is not int or not isinstance(members, list) or len(members) != support:
            raise RecordError(f"{where}: 'members' must list 'support' = {support} latents")
        for m in members:
            if not (isinstance(m, list) and len(m) == 2 and all(type(x) is int for x in m)):
                raise RecordError(f"{where}: member {m!r} is not a [member, latent] pair of integers")
        gallery = d.get("gallery", [])
        for g in gallery if isinstance(gallery, list) else [gallery]:
            if not isinstance(g, dict) or type(g.get("row")) is not int or g["row"] < 0:
                raise RecordError(f"{where}: gallery entry {g!r} is not a dataset row reference")
        kw = {k: v for k, v in d.items() if k in _FIELDS}
        return cls(**kw, extra={k: v for k, v in d.items() if k not in _FIELDS})

    def to_dict(self) -> dict[str, Any]:
        """The ``patterns.json`` entry (plain JSON types, keys in field order, then ``extra``)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or (f.name in self.OMIT_IF_NONE and v is None):
                continue
            out[f.name] = v
        return out | self.extra

    def copy(self) -> Pattern:
        """A deep copy (galleries and members are lists, shared otherwise)."""
        return copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        """Equal to another record with the same fields."""
        if isinstance(other, Pattern):
            return self.to_dict() == other.to_dict()
        return NotImplemented

    __hash__ = None  # mutable


_FIELDS = frozenset(f.name for f in fields(Pattern)) - {"extra"}
