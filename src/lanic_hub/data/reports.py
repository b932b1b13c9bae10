"""Report text helpers shared by every stage."""

from __future__ import annotations

import re

_HEADER = re.compile(r"\b(FINDINGS|IMPRESSION|INDICATION|HISTORY|TECHNIQUE|COMPARISON|EXAMINATION)\s*:", re.I)


def split_sentences(report: str) -> list[str]:
    """The sentences of a radiology report, section headers removed, in order.

    >>> split_sentences("FINDINGS: No effusion. Heart size is normal.\\n\\nIMPRESSION: Normal.")
    ['No effusion.', 'Heart size is normal.', 'Normal.']
    """
    text = _HEADER.sub(" ", report or "")
    parts = re.split(r"(?<=[.!?])\s+|\n\s*\n", text)
    return [" ".join(p.split()) for p in parts if len(p.strip()) > 3]
