"""``pipeline("image-classification", model=REPO_ID, trust_remote_code=True)`` for a LanIC model.

A model folder names this class in config.json's ``custom_pipelines`` (through the folder's
``lanic_remote.py``), so transformers builds it from a repo id alone. It takes what
:meth:`LanICModel.predict` takes (a path, a PIL image, an array, a DICOM file) and returns the
findings as ``[{"label", "score"}]``, the highest first, with the sigmoid probability of each
(the findings are multi-label: the scores do not sum to 1). The explanation stays one call
away: ``pipe.model.explain(image)``.
"""

from __future__ import annotations

from typing import Any

from transformers import Pipeline


class LanICClassificationPipeline(Pipeline):
    """Findings of one image or a list of images, through the model's own backbone and
    preprocessing (no separate image processor)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def _sanitize_parameters(self, top_k: int | None = None, **kwargs: Any):
        return {}, {}, ({"top_k": top_k} if top_k is not None else {})

    def preprocess(self, image, **kwargs: Any) -> dict[str, Any]:
        return {"image": image}

    def _forward(self, inputs: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"prediction": self.model.predict_batch([inputs["image"]])[0]}

    def postprocess(self, outputs: dict[str, Any], top_k: int | None = None, **kwargs: Any) -> list[dict]:
        p = outputs["prediction"]
        rows = sorted(({"label": f, "score": float(s)} for f, s in p.items()), key=lambda r: -r["score"])
        return rows[:top_k] if top_k is not None else rows
