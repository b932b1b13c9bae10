"""The Gradio demo (``spaces/app.py``, ``lanic-hub demo``): predictions, their patterns, what-ifs.

:mod:`.app` (the :class:`Demo` state with every UI callback, and the Gradio app), :mod:`.render`
(the charts, pattern cards and notes it draws), :mod:`.examples` (its example images and the
folders it may serve).
"""

from .app import Demo, build_app, launch, load_demo
from .examples import allowed_paths, default_model_path, model_examples, nih_examples, nih_examples_dir
from .render import (
    CATEGORY_COLOURS,
    CONCEPT_COLOUR,
    NIH_ATTRIBUTION,
    NOTICE,
    _support_text,
    contribution_chart,
    examples_label,
    health_warning,
    may_show_report_text,
    ood_banner,
    pattern_cards,
)

__all__ = [
    "CATEGORY_COLOURS",
    "CONCEPT_COLOUR",
    "NIH_ATTRIBUTION",
    "NOTICE",
    "Demo",
    "_support_text",
    "allowed_paths",
    "build_app",
    "contribution_chart",
    "default_model_path",
    "examples_label",
    "health_warning",
    "launch",
    "load_demo",
    "may_show_report_text",
    "model_examples",
    "nih_examples",
    "nih_examples_dir",
    "ood_banner",
    "pattern_cards",
]
