"""From latents to the pattern bank: scores, merging, selection, language grounding, galleries."""

from .bank import BankConfig, PatternBank
from .build import build_bank
from .language import Annotation, Annotator, PatternEvidence, annotate_patterns
from .record import Pattern
from .scores import LatentStats, ScoreAccumulator, ms_scores
from .vocabulary import CATEGORIES, Vocabulary, load_vocabulary

__all__ = [
    "CATEGORIES",
    "Annotation",
    "Annotator",
    "BankConfig",
    "LatentStats",
    "Pattern",
    "PatternBank",
    "PatternEvidence",
    "ScoreAccumulator",
    "Vocabulary",
    "annotate_patterns",
    "build_bank",
    "load_vocabulary",
    "ms_scores",
]
