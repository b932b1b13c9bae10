"""The phantom world: procedural chest radiographs with known ground truth and reports.

>>> from lanic_hub.data.phantom import PhantomConfig, generate
>>> studies = list(generate(4, seed=0, progress=False))
>>> studies[0].image.shape
(224, 224)
"""

from .case import ALL_FACTORS, ARTIFACT_FACTORS, DEVICE_FACTORS, FINDING_FACTORS, Case, Finding
from .config import PhantomConfig, ShortcutSpec
from .generate import PhantomStudy, export, generate, load_phantom_dataset, make_study, plan_studies
from .render import render
from .report import label_report

__all__ = [
    "ALL_FACTORS",
    "ARTIFACT_FACTORS",
    "DEVICE_FACTORS",
    "FINDING_FACTORS",
    "Case",
    "Finding",
    "PhantomConfig",
    "ShortcutSpec",
    "PhantomStudy",
    "export",
    "generate",
    "load_phantom_dataset",
    "make_study",
    "plan_studies",
    "render",
    "label_report",
]
