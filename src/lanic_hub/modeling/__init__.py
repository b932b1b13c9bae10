"""The Hugging Face model: ``LanICConfig`` + ``LanICModel`` (transformers), the product users load.

A saved model folder (``save_pretrained`` / ``push_to_hub``)::

    config.json          LanICConfig: sizes, findings, the ensemble's config, the backbone reference
    model.safetensors    classifier.*, ensemble.*, latent_pattern (T*L,), pattern_direction (P, d)
    patterns.json        the pattern bank's metadata: {"version", "meta", "patterns": [...]}
                         (names, categories, scores, support, members, gallery row references)
    concepts.safetensors optional: concept directions fitted on report concepts (mean, directions,
    concepts.json        readout) and each concept's measured support; without them explanations
                         name patterns only
    README.md            the model card
    backbone/            optional: the backbone in open_clip's layout, for a self-contained copy
    thumbnails/          optional: p{id:05d}.png, one strip of gallery thumbnails per pattern,
                         only for redistributable data

>>> from lanic_hub import LanICModel                              # doctest: +SKIP
>>> model = LanICModel.from_pretrained("runs/quickstart/model")   # doctest: +SKIP
>>> print(model.explain("chest.png"))                            # doctest: +SKIP

The package, by job: :mod:`.configuration_lanic` (``LanICConfig``) and :mod:`.modeling_lanic`
(``LanICModel``) in the Hugging Face naming, :mod:`.folder` (where a model folder is, and whether
it is intact), :mod:`.hub` (publishing). The Hub's remote-code file stays
``resources/remote/lanic_remote.py`` (``REMOTE_CODE``), which every saved folder carries.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from .configuration_lanic import AUTO_MAP, CUSTOM_PIPELINES, LANIC_FORMAT, REMOTE_CODE, LanICConfig
from .folder import (
    BUNDLED_BACKBONE,
    MAX_DIM,
    SIDECAR,
    ModelFolderError,
    check_model_folder,
    resolve_model_folder,
)
from .hub import push_folder, restricted_content, upload_plan
from .modeling_lanic import LanICModel, LanICOutput, Prediction

__all__ = [
    "AUTO_MAP",
    "BUNDLED_BACKBONE",
    "CUSTOM_PIPELINES",
    "LANIC_FORMAT",
    "MAX_DIM",
    "REMOTE_CODE",
    "SIDECAR",
    "LanICConfig",
    "LanICModel",
    "LanICOutput",
    "ModelFolderError",
    "Prediction",
    "check_model_folder",
    "push_folder",
    "register",
    "resolve_model_folder",
    "restricted_content",
    "upload_plan",
]


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` resolve ``model_type = "lanic"`` (done when this module
    loads, i.e. on first use of ``lanic_hub.LanICModel``)."""
    try:
        AutoConfig.register(LanICConfig.model_type, LanICConfig)
        AutoModel.register(LanICConfig, LanICModel)
    except ValueError:  # already registered (re-import)
        pass


register()  # importing the model classes makes AutoConfig / AutoModel resolve model_type "lanic"
