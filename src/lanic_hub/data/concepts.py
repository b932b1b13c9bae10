"""Concepts read from report text: findings with side and severity, devices by type, technique.

A radiologist's report says what is on the film: "Left chest tube in place.", "Small right pleural
effusion.", "The patient is rotated.", "Lung bases are not included." :class:`ConceptExtractor`
reads each sentence with spaCy (a blank English pipeline: no model download), finds concept
mentions with an entity ruler, and marks each mention negated or uncertain with negspacy's NegEx
(two instances: the clinical negation termset, and an uncertainty termset). The result is an
image x concept label table (:class:`ConceptTable`) that names and supports explanations.

Per report and concept the value is 1 (stated present), -1 (uncertain: "possible", "cannot
exclude"), 0 (negated, or not mentioned) or NaN where the report is not usable at all (empty, or
no sentence the extractor recognises, e.g. another language): an unusable report says nothing,
it does not say "absent".

The concept keys match the vocabulary's concepts and the phantom world's factors
(``chest_tube``, ``pleural_effusion`` ...), so a name can be checked against ground truth there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import spacy
from negspacy.negation import Negex  # noqa: F401  (registers the "negex" pipe factory)
from negspacy.termsets import termset

from .reports import split_sentences

__all__ = ["CONCEPTS", "Concept", "ConceptExtractor", "ConceptTable", "Mention", "concept_names"]


@dataclass(frozen=True)
class Concept:
    """A thing reports name, with the phrases that name it (lower case, space-separated tokens;
    ``?`` after a token makes it optional, ``|`` separates alternatives of one token)."""

    key: str
    """Stable key; matches the vocabulary concept and, on phantoms, the ground-truth factor."""
    name: str
    """What an explanation shows."""
    category: str
    """finding / device / technique."""
    phrases: tuple[str, ...]


_TUBE = "tube|catheter|drain"
CONCEPTS: tuple[Concept, ...] = (
    Concept("atelectasis", "atelectasis", "finding", ("atelectasis", "atelectatic", "collapse")),
    Concept(
        "cardiomegaly",
        "cardiomegaly",
        "finding",
        (
            "cardiomegaly",
            "heart is enlarged|large",
            "heart is minimally|mildly|moderately|severely|markedly enlarged",
            "enlarged heart|cardiac silhouette",
            "cardiac silhouette is enlarged",
            "enlargement of the cardiac silhouette",
        ),
    ),
    Concept(
        "consolidation", "consolidation", "finding", ("consolidation", "consolidative opacity|opacities")
    ),
    Concept(
        "edema",
        "pulmonary edema",
        "finding",
        ("edema", "oedema", "kerley b lines", "vascular congestion", "interstitial edema"),
    ),
    Concept("pleural_effusion", "pleural effusion", "finding", ("effusion", "effusions", "pleural fluid")),
    Concept("pneumothorax", "pneumothorax", "finding", ("pneumothorax", "pneumothoraces")),
    Concept(
        "endotracheal_tube",
        "endotracheal tube",
        "device",
        ("endotracheal tube", "et tube", "ett", "intubated", "endotracheal", "tracheostomy tube"),
    ),
    Concept(
        "nasogastric_tube",
        "enteric tube",
        "device",
        (
            "enteric tube|catheter",
            "nasogastric|orogastric|feeding|ng|og|dobhoff tube",
            "ng|og tube",
            "dobhoff",
            "nasogastric",
            "orogastric",
        ),
    ),
    Concept(
        "central_venous_catheter",
        "central venous catheter",
        "device",
        (
            "central venous catheter|line",
            "central line|catheter",
            "picc line?",
            "ij|jugular|subclavian line|catheter",
            "swan ganz|swan-ganz catheter?",
            "cvc",
        ),
    ),
    Concept(
        "chest_tube",
        "chest tube",
        "device",
        (f"chest {_TUBE}", f"pleural {_TUBE}", f"pigtail {_TUBE}", f"thoracostomy {_TUBE}", "pigtail"),
    ),
    Concept(
        "pacemaker",
        "pacemaker",
        "device",
        (
            "pacemaker",
            "pacer",
            "aicd",
            "icd",
            "defibrillator",
            "pacing leads|lead|wires",
            "cardiac device",
        ),
    ),
    Concept(
        "sternal_wires",
        "sternotomy wires",
        "device",
        ("sternotomy wires|sutures", "sternal wires|sutures", "median sternotomy", "sternotomy"),
    ),
    Concept(
        "portable_marker",
        "portable AP view",
        "technique",
        ("portable", "ap upright|supine|semi-upright view|views|film|radiograph", "ap view|views"),
    ),
    Concept("rotation", "patient rotation", "technique", ("rotated", "rotation", "rotational")),
    Concept(
        "underexposure",
        "underpenetrated film",
        "technique",
        ("underpenetrated", "underpenetration", "underexposed", "underexposure", "low penetration"),
    ),
    Concept(
        "overexposure",
        "overpenetrated film",
        "technique",
        ("overpenetrated", "overpenetration", "overexposed", "overexposure"),
    ),
    Concept(
        "collimation",
        "collimation (lung excluded from the field)",
        "technique",
        (
            "bases|apices|angles|base|apex are? not included",
            "bases|apices|angles|base|apex are? excluded",
            "bases|apices|angles|base|apex are? cut off",
            "excluded from the field of view",
            "not included on the film|image|radiograph|study",
            "collimated",
            "collimation",
        ),
    ),
)

#: Sentences that show a report is readable though they name no concept of :data:`CONCEPTS`.
_READABLE = (
    "no acute",
    "lungs are clear",
    "lungs clear",
    "views of the chest",
    "heart size is normal",
    "unremarkable",
    "normal",
    "no pneumothorax",
    "pa and lateral",
)

_UNCERTAIN = {
    "pseudo_negations": ["not excluded by", "no evidence to suggest"],
    "preceding_negations": [
        "possible",
        "possibly",
        "probable",
        "probably",
        "cannot exclude",
        "can not exclude",
        "cannot rule out",
        "may represent",
        "may reflect",
        "may be",
        "could represent",
        "could be",
        "questionable",
        "suspicious for",
        "concerning for",
        "suggestive of",
        "suggesting",
        "likely",
        "versus",
        "vs",
        "equivocal",
        "borderline",
        "differential diagnosis includes",
        "findings may represent",
    ],
    "following_negations": [
        "cannot be excluded",
        "can not be excluded",
        "not excluded",
        "is not excluded",
        "cannot be ruled out",
        "is possible",
        "not ruled out",
        "is likely",
        "is suspected",
    ],
    "termination": ["but", "however", "although", "though", "which"],
}

_SIDES = {
    "left": "left",
    "right": "right",
    "bilateral": "bilateral",
    "both": "bilateral",
    "bibasilar": "bilateral",
}
_SEVERITY = {
    "trace": "minimal",
    "minimal": "minimal",
    "tiny": "minimal",
    "small": "mild",
    "mild": "mild",
    "mildly": "mild",
    "moderate": "moderate",
    "moderately": "moderate",
    "large": "severe",
    "severe": "severe",
    "severely": "severe",
    "marked": "severe",
    "markedly": "severe",
}


def concept_names(keys: Iterable[str]) -> list[str]:
    """The display names of concept keys (a key not in :data:`CONCEPTS` is shown as written)."""
    by_key = {c.key: c.name for c in CONCEPTS}
    return [by_key.get(k, k.replace("_", " ")) for k in keys]


@dataclass(frozen=True)
class Mention:
    """One concept mention in one sentence."""

    concept: str
    text: str
    status: str
    """"positive", "negated" or "uncertain"."""
    side: str | None
    """left / right / bilateral, when the sentence says."""
    severity: str | None
    """minimal / mild / moderate / severe, when the sentence says."""
    sentence: str


@dataclass(frozen=True)
class ConceptTable:
    """An image x concept label table read from reports."""

    concepts: tuple[str, ...]
    values: np.ndarray
    """(N, C) float: 1 present, -1 uncertain, 0 negated or not mentioned, NaN: no usable report."""

    @property
    def usable(self) -> np.ndarray:
        """(N,) whether each row's report could be read."""
        return ~np.isnan(self.values).all(1) if self.values.size else np.zeros(len(self.values), bool)

    def positive(self) -> np.ndarray:
        """(N, C) bool: stated present (uncertain and unusable count as not present)."""
        return np.nan_to_num(self.values, nan=0.0) == 1

    def column(self, key: str) -> np.ndarray:
        return self.values[:, self.concepts.index(key)]


def _token_pattern(phrase: str) -> list[dict]:
    out = []
    for tok in phrase.split():
        optional = tok.endswith("?")
        alts = tok.rstrip("?").split("|")
        spec: dict = {"LOWER": {"IN": alts}} if len(alts) > 1 else {"LOWER": alts[0]}
        if optional:
            spec["OP"] = "?"
        out.append(spec)
    return out


class ConceptExtractor:
    """Concept mentions of report sentences, negation- and uncertainty-aware (spaCy + negspacy)."""

    def __init__(self, concepts: Sequence[Concept] = CONCEPTS) -> None:
        self.concepts = tuple(concepts)
        self.keys = tuple(c.key for c in self.concepts)

    @cached_property
    def nlp(self) -> spacy.language.Language:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
        pats = [{"label": c.key, "pattern": _token_pattern(p)} for c in self.concepts for p in c.phrases]
        pats += [{"label": "_readable", "pattern": _token_pattern(p)} for p in _READABLE]
        ruler.add_patterns(pats)
        neg = termset("en_clinical")
        neg.remove_patterns({"preceding_negations": ["versus", "doubt"]})
        neg.add_patterns(
            {
                "pseudo_negations": [
                    "cannot exclude",
                    "cannot rule out",
                    "can not exclude",
                    "cannot be excluded",
                ],
                "preceding_negations": [
                    "removal of",
                    "interval removal of",
                    "no evidence of",
                    "resolution of",
                ],
                "following_negations": ["removed", "has been removed", "have been removed", "resolved"],
            }
        )
        nlp.add_pipe("negex", config={"ent_types": list(self.keys), "neg_termset": neg.get_patterns()})
        nlp.add_pipe(
            "negex",
            name="uncertainty",
            config={"ent_types": list(self.keys), "neg_termset": _UNCERTAIN, "extension_name": "uncertain"},
        )
        return nlp

    def mentions(self, report: str | None) -> list[Mention] | None:
        """Every concept mention of ``report``, or None when the report is not usable."""
        docs = self._docs([report])
        return docs[0]

    def _docs(self, reports: Sequence[str | None]) -> list[list[Mention] | None]:
        texts = [_clean(r) for r in reports]
        out: list[list[Mention] | None] = [None] * len(texts)
        todo = [i for i, t in enumerate(texts) if t]
        for i, doc in zip(todo, self.nlp.pipe([texts[i] for i in todo], batch_size=256), strict=True):
            readable = False
            found: list[Mention] = []
            for ent in doc.ents:
                readable = True
                if ent.label_ == "_readable":
                    continue
                status = "negated" if ent._.negex else ("uncertain" if ent._.uncertain else "positive")
                side, severity = _nearest(ent, _SIDES), _nearest(ent, _SEVERITY)
                found.append(Mention(ent.label_, ent.text, status, side, severity, ent.sent.text))
            out[i] = found if readable else None
        return out

    def table(self, reports: Sequence[str | None], log=None) -> ConceptTable:
        """The (N, C) label table of ``reports``: a positive mention wins over an uncertain one,
        which wins over a negated one (as in the CheXpert labeller). ``log`` (e.g. ``print``) is
        told how many rows had no usable report."""
        rank = {"negated": 0.0, "uncertain": -1.0, "positive": 1.0}
        order = {0.0: 0, -1.0: 1, 1.0: 2}
        col = {k: j for j, k in enumerate(self.keys)}
        values = np.zeros((len(reports), len(self.keys)))
        for r, ms in enumerate(self._docs(reports)):
            if ms is None:
                values[r] = np.nan
                continue
            for m in ms:
                v, j = rank[m.status], col[m.concept]
                if order[v] > order[values[r, j]]:
                    values[r, j] = v
        table = ConceptTable(self.keys, values)
        n_bad = int((~table.usable).sum())
        if log is not None and n_bad:
            log(
                f"concepts: {n_bad} of {len(reports)} rows had no usable report (empty or unreadable); "
                "they support no name"
            )
        return table


def _nearest(ent, words: dict[str, str]) -> str | None:
    """The modifier closest to a mention in its sentence, looking back first ("small right
    pleural effusion"), then forward ("effusion on the left")."""
    sent = ent.sent
    before = [t.lower_ for t in sent.doc[sent.start : ent.end]][::-1]
    after = [t.lower_ for t in sent.doc[ent.end : sent.end]]
    return next((words[w] for w in before + after if w in words), None)


def _clean(report: str | None) -> str:
    if not isinstance(report, str):
        return ""
    return " ".join(split_sentences(report))
