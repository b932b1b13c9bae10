"""lanic-hub: CXR-LanIC, language-grounded interpretable chest X-ray classifiers.

Research software, not a medical device. ``LanICModel`` and ``LanICConfig`` load on first use
(``lanic-hub --help`` does not import torch); loading them registers ``model_type = "lanic"``
with transformers' ``AutoConfig`` / ``AutoModel``. A model folder also names its classes in
config.json's ``auto_map``, so ``AutoModel.from_pretrained(folder_or_repo_id,
trust_remote_code=True)`` works without importing lanic_hub first.

>>> from lanic_hub import LanICModel                                   # doctest: +SKIP
>>> model = LanICModel.from_pretrained("runs/quickstart/model")        # doctest: +SKIP
>>> print(model.explain("chest.png"))                                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .constants import VERSION as __version__

if TYPE_CHECKING:
    from .modeling import LanICConfig, LanICModel, register

__all__ = ["LanICConfig", "LanICModel", "__version__", "register"]


def __getattr__(name: str) -> Any:
    """The model classes, imported (with torch and transformers) on first access."""
    if name in ("LanICConfig", "LanICModel", "register"):
        from . import modeling

        return getattr(modeling, name)
    raise AttributeError(f"module 'lanic_hub' has no attribute {name!r}")
