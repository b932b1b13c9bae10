"""``LanICConfig``: the sizes and references of a LanIC model (config.json), in the Hugging Face
naming (``configuration_<model_type>.py``). Weights live in ``model.safetensors``."""

from __future__ import annotations

import json
from typing import Any

from transformers import PreTrainedConfig

from ..constants import FINDINGS
from ..errors import ConfigError
from ..transcoders import TranscoderConfig

#: Version of the saved folder layout; a folder written by an incompatible version is refused.
LANIC_FORMAT = 1


#: The file every model folder carries so that transformers can load it from a repo id with
#: ``trust_remote_code=True`` (it imports lanic-hub, and says how to install it when missing).
REMOTE_CODE = "lanic_remote.py"


AUTO_MAP = {
    "AutoConfig": "lanic_remote.LanICConfig",
    "AutoModel": "lanic_remote.LanICModel",
    "AutoModelForImageClassification": "lanic_remote.LanICModel",
}


CUSTOM_PIPELINES = {
    "image-classification": {
        "impl": "lanic_remote.LanICClassificationPipeline",
        "pt": ["AutoModelForImageClassification"],
        "type": "image",
    }
}


class LanICConfig(PreTrainedConfig):
    """Sizes and references of a LanIC model. Weights live in ``model.safetensors``."""

    model_type = "lanic"

    def __init__(
        self,
        d_in: int = 512,
        hidden: int = 256,
        findings: list[str] | None = None,
        ensemble: dict[str, Any] | None = None,
        n_patterns: int = 0,
        backbone: dict[str, Any] | None = None,
        bundled_backbone: bool = False,
        lanic_format: int = LANIC_FORMAT,
        typicality: bool = False,
        typicality_threshold: float | None = None,
        thresholds: dict[str, float] | None = None,
        thresholds_measured_on: str | None = None,
        removed: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.d_in = int(d_in)
        self.hidden = int(hidden)
        self.findings = list(findings) if findings is not None else list(FINDINGS)
        self.ensemble = (
            dict(ensemble) if ensemble is not None else TranscoderConfig(self.d_in, self.hidden).to_dict()
        )
        self.n_patterns = int(n_patterns)
        self.backbone = backbone
        """{"spec": "hf-hub:..." | "local-dir:...", "revision": ...}: how to load the image encoder."""
        self.bundled_backbone = bool(bundled_backbone)
        self.lanic_format = int(lanic_format)
        self.typicality = bool(typicality)
        """Whether the weights hold a typicality reference (:mod:`lanic_hub.typicality`)."""
        self.typicality_threshold = None if typicality_threshold is None else float(typicality_threshold)
        self.thresholds = None if thresholds is None else {str(k): float(v) for k, v in thresholds.items()}
        """{finding: probability}: the operating point of each finding (F1-maximising on the
        validation split, chosen at export); ``predict`` reports positive calls at them."""
        self.thresholds_measured_on = thresholds_measured_on
        self.removed = removed or None
        """Items the model leaves out (:class:`lanic_hub.removal.Removal` as a dict; None: none):
        its logits are the classifier's minus their contributions (:meth:`LanICModel.without`)."""
        # what transformers reads from a repo id alone: the labels (multi-label, sigmoid scores),
        # and the classes behind AutoModel / pipeline() with trust_remote_code (REMOTE_CODE)
        kwargs.setdefault("id2label", dict(enumerate(self.findings)))
        kwargs.setdefault("label2id", {f: i for i, f in enumerate(self.findings)})
        kwargs.setdefault("problem_type", "multi_label_classification")
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        kwargs.setdefault("custom_pipelines", json.loads(json.dumps(CUSTOM_PIPELINES)))
        super().__init__(**kwargs)
        if not self.findings:
            raise ConfigError("a LanIC model needs at least one finding")
        if self.ensemble.get("d_in") != self.d_in or self.ensemble.get("d_out") != self.hidden:
            raise ConfigError(
                f"the ensemble maps {self.ensemble.get('d_in')} -> {self.ensemble.get('d_out')}, "
                f"the classifier {self.d_in} -> {self.hidden}: they must agree"
            )

    def transcoder_config(self) -> TranscoderConfig:
        return TranscoderConfig.from_dict(self.ensemble)

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes of the model's buffers (beside the classifier's and the ensemble's weights):
        ``LanICModel`` registers exactly these, and the folder check expects them."""
        tc = self.transcoder_config()
        shapes = {
            "latent_pattern": (tc.n_members * tc.n_latents,),
            "pattern_direction": (self.n_patterns, self.d_in),
        }
        if self.typicality:
            shapes |= {"typicality_mean": (self.d_in,), "typicality_precision": (self.d_in, self.d_in)}
        return shapes
