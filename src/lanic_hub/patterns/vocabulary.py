"""The radiology vocabulary patterns are named from: ``phrase<TAB>category<TAB>concept`` lines.

The packaged file (``lanic_hub/resources/vocabulary.tsv``, several hundred phrases) is a plain
text file meant to be edited: copy it, add or change lines, and pass it with ``--vocabulary``.
``concept`` groups synonyms ("enlarged cardiac silhouette" and "cardiomegaly" are one concept);
it may be left empty, and then the phrase is its own concept.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import VocabularyError

CATEGORIES: tuple[str, ...] = ("cardiac", "pulmonary", "pleural", "structural", "device", "artifact")

#: The CheXpert observation (a report-derived label) that can support a name of each concept: a
#: pattern is named after such a concept only when its activation detects that label (see
#: :class:`lanic_hub.patterns.BankConfig`). Devices share the one label reports give them.
DEVICE_CONCEPTS: tuple[str, ...] = (
    "pacemaker",
    "endotracheal_tube",
    "central_venous_catheter",
    "nasogastric_tube",
    "chest_tube",
    "sternal_wires",
    "other_devices",
    "valve_replacement",
)
REPORT_LABEL: dict[str, str] = {
    "atelectasis": "Atelectasis",
    "cardiomegaly": "Cardiomegaly",
    "consolidation": "Consolidation",
    "edema": "Edema",
    "pleural_effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "pneumonia": "Pneumonia",
    "fracture": "Fracture",
    **dict.fromkeys(DEVICE_CONCEPTS, "Support Devices"),
}


@dataclass(frozen=True)
class Vocabulary:
    phrases: tuple[str, ...]
    categories: tuple[str, ...]
    concepts: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.phrases)


def default_vocabulary_path() -> Path:
    return Path(str(resources.files("lanic_hub") / "resources" / "vocabulary.tsv"))


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """Read and validate a vocabulary file (the packaged one by default)."""
    path = Path(path) if path is not None else default_vocabulary_path()
    if not path.is_file():
        raise VocabularyError(path, 0, "no such file")
    phrases: list[str] = []
    cats: list[str] = []
    concepts: list[str] = []
    seen: dict[str, int] = {}
    header_done = False
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if not header_done:
            header_done = True
            if [c.lower() for c in cells[:2]] == ["phrase", "category"]:
                continue
        if len(cells) not in (2, 3):
            raise VocabularyError(
                path, n, f"expected 'phrase<TAB>category[<TAB>concept]', got {len(cells)} cells"
            )
        phrase, cat = cells[0], cells[1].lower()
        concept = cells[2] if len(cells) == 3 and cells[2] else phrase.lower()
        if not phrase:
            raise VocabularyError(path, n, "empty phrase")
        if cat not in CATEGORIES:
            raise VocabularyError(path, n, f"unknown category {cells[1]!r}; use one of {list(CATEGORIES)}")
        if phrase.lower() in seen:
            raise VocabularyError(path, n, f"phrase {phrase!r} repeats line {seen[phrase.lower()]}")
        seen[phrase.lower()] = n
        phrases.append(phrase)
        cats.append(cat)
        concepts.append(concept)
    if not phrases:
        raise VocabularyError(path, 0, "no phrases")
    return Vocabulary(tuple(phrases), tuple(cats), tuple(concepts), str(path))
