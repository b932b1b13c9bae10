"""The suites' names (no heavy imports: ``lanic-eval --help`` lists them)."""

from __future__ import annotations

SUITES = ("phantom", "mimic-cxr", "chexpert", "nih", "data", "real-fixtures")
#: The suite of each dataset kind that has its own (any other dataset: the generic 'data' suite).
SUITE_OF_KIND = {"mimic": "mimic-cxr", "chexpert": "chexpert", "nih": "nih"}
