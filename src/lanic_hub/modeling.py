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
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .classifier import DiagnosticClassifier
from .constants import FINDINGS
from .decomposition import latent_logit_weights
from .errors import ConfigError, DataError, LanicError
from .explain import Explanation, explain_embeddings
from .patterns.bank import BANK_VERSION, PatternBank, pattern_activations_from_codes
from .patterns.concepts import CONCEPTS_WEIGHTS, ConceptDirections
from .patterns.record import Pattern
from .transcoders import TranscoderConfig, TranscoderEnsemble
from .utils.tensors import check_finite

#: Version of the saved folder layout; a folder written by an incompatible version is refused.
LANIC_FORMAT = 1
SIDECAR = "patterns.json"
BUNDLED_BACKBONE = "backbone"


class ModelFolderError(LanicError, ValueError):
    """A folder or repo is not a (compatible, intact) LanIC model."""


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


@dataclass
class LanICOutput(ModelOutput):
    """What ``model(...)`` returns."""

    logits: torch.Tensor | None = None
    """(B, C) the classifier's logits."""
    probabilities: torch.Tensor | None = None
    """(B, C) sigmoid of the logits (multi-label)."""
    pattern_activations: torch.Tensor | None = None
    """(B, P) activation of every bank pattern (mean over its member latents)."""
    embeddings: torch.Tensor | None = None
    """(B, d) the image embeddings the prediction was made from."""
    typicality_distance: torch.Tensor | None = None
    """(B,) squared Mahalanobis distance to the training embeddings (None: no reference saved)."""
    out_of_distribution: torch.Tensor | None = None
    """(B,) bool: the distance is above the calibrated threshold."""


class Prediction(dict):
    """``{finding: probability}`` of one image, with its typicality: ``typicality_distance``,
    ``out_of_distribution`` and ``notes`` (a warning when the image is unlike the training data);
    and, for a model that ships operating points, ``thresholds`` and ``positive`` (``{finding:
    probability >= its threshold}``; None for a model exported before them)."""

    def __init__(
        self,
        probs: dict[str, float],
        distance: float | None,
        outside: bool | None,
        notes=(),
        thresholds: dict[str, float] | None = None,
    ):
        super().__init__(probs)
        self.typicality_distance, self.out_of_distribution, self.notes = distance, outside, list(notes)
        self.thresholds = thresholds
        self.positive = (
            {f: bool(p >= thresholds[f]) for f, p in probs.items() if f in thresholds} if thresholds else None
        )

    def __repr__(self) -> str:
        calls = ""
        if self.positive is not None:
            pos = [f for f, v in self.positive.items() if v]
            calls = f"\npositive at the validation F1 operating points: {', '.join(pos) or 'none'}"
        return super().__repr__() + calls + "".join(f"\n{n}" for n in self.notes)


class LanICModel(PreTrainedModel):
    """Classifier + transcoder ensemble + pattern bank, with the backbone loaded on first use."""

    config_class = LanICConfig
    base_model_prefix = "lanic"
    main_input_name = "pixel_values"
    _no_split_modules: list[str] = []

    def __init__(self, config: LanICConfig) -> None:
        super().__init__(config)
        tc = config.transcoder_config()
        self.classifier = DiagnosticClassifier(config.d_in, config.hidden, len(config.findings))
        self.ensemble = TranscoderEnsemble(tc)
        self.register_buffer(
            "latent_pattern", torch.full((tc.n_members * tc.n_latents,), -1, dtype=torch.long)
        )
        self.register_buffer("pattern_direction", torch.zeros(config.n_patterns, config.d_in))
        if config.typicality:
            self.register_buffer("typicality_mean", torch.zeros(config.d_in))
            self.register_buffer("typicality_precision", torch.zeros(config.d_in, config.d_in))
        self.patterns: list[Pattern] = []
        self.bank_meta: dict[str, Any] = {}
        self.concepts: ConceptDirections | None = None
        """Concept directions (``concepts.safetensors`` + ``concepts.json``): explanations split
        over report concepts. None for a model built before them (patterns only, with a note)."""
        self._backbone = None
        self._folder: Path | None = None
        self._explain_cache: dict[str, Any] = {}
        self._from_hub = False
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Nothing to initialise: every tensor is trained by the pipeline and comes from the
        checkpoint (the constructors already draw deterministic, seeded values)."""

    # ----------------------------------------------------------------- building and saving
    @classmethod
    def from_components(
        cls,
        classifier: DiagnosticClassifier,
        ensemble: TranscoderEnsemble,
        bank: PatternBank,
        backbone: dict[str, Any] | None = None,
        findings: tuple[str, ...] = FINDINGS,
    ) -> LanICModel:
        """Assemble a model from what ``lanic-hub train`` and ``lanic-hub patterns`` produced."""
        from .transcoders.ensemble import ensemble_fingerprint

        bank.check_ensemble(ensemble_fingerprint(ensemble), ensemble.cfg.n_members * ensemble.cfg.n_latents)
        cfg = LanICConfig(
            d_in=classifier.fc1.in_features,
            hidden=classifier.fc1.out_features,
            findings=list(findings),
            ensemble=ensemble.cfg.to_dict(),
            n_patterns=len(bank),
            backbone=backbone or bank.meta.get("backbone"),
        )
        model = cls(cfg)
        with torch.no_grad():
            model.classifier.load_state_dict(classifier.state_dict())
            model.ensemble.load_state_dict(ensemble.state_dict())
            model.latent_pattern.copy_(bank.latent_pattern)
            model.pattern_direction.copy_(bank.direction)
        model.patterns = [p.copy() for p in bank.patterns]
        model.bank_meta = dict(bank.meta)
        return model.eval()

    @classmethod
    def from_training_folder(cls, folder: str | Path) -> LanICModel:
        """The model of a folder written by ``lanic-hub train`` + ``lanic-hub patterns``."""
        from .trained import load_trained

        clf, ens = load_trained(folder)
        m = cls.from_components(clf, ens, PatternBank.load(folder))
        m.concepts = ConceptDirections.load(folder)
        m._folder = Path(folder)
        return m

    def save_pretrained(
        self, save_directory: str | os.PathLike, *args: Any, bundle_backbone: bool = False, **kwargs: Any
    ) -> None:
        """``PreTrainedModel.save_pretrained`` plus the pattern sidecar; ``bundle_backbone`` copies
        the backbone folder into ``backbone/`` for a self-contained offline copy.

        The folder is written beside the target and swapped in whole, so a crash at any moment
        leaves either the previous complete folder or the new one (other files already in the
        folder, e.g. ``README.md`` or ``thumbnails/``, are carried over)."""
        from .utils.io import link_missing, recover_dir, replace_dir, write_text_atomic

        final = Path(save_directory)
        recover_dir(final)
        for stale in final.parent.glob(f".{final.name}.saving*"):  # left by a killed save
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.with_name(f".{final.name}.saving{os.getpid()}")
        tmp.mkdir(parents=True)
        if bundle_backbone:
            src = self._backbone_folder()
            if src is None:
                raise ConfigError("cannot bundle the backbone: it is not a local folder or cached snapshot")
            shutil.copytree(src, tmp / BUNDLED_BACKBONE, dirs_exist_ok=True)
            self.config.bundled_backbone = True
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(tmp, *args, **kwargs)
        doc = {
            "version": BANK_VERSION,
            "meta": self.bank_meta,
            "patterns": [p.to_dict() for p in self.patterns],
        }
        write_text_atomic(tmp / SIDECAR, json.dumps(doc, indent=1))
        shutil.copyfile(Path(__file__).parent / "resources" / "remote" / REMOTE_CODE, tmp / REMOTE_CODE)
        if self.concepts is not None:
            self.concepts.save(tmp)
        if final.is_dir():
            link_missing(final, tmp)
        replace_dir(tmp, final)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *args: Any,
        revision: str | None = None,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> LanICModel:
        """Load from a local folder, or a Hub repo id (resolved from the HF cache when offline)."""
        folder = resolve_model_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        check_model_folder(folder)
        from safetensors import SafetensorError

        kwargs["use_safetensors"] = True  # never unpickle
        try:
            loaded = super().from_pretrained(str(folder), *args, **kwargs)
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            if isinstance(exc, LanicError):
                raise
            raise ModelFolderError(
                f"{folder / 'model.safetensors'}: cannot load the weights ({exc})"
            ) from exc
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True
        for name, t in model.state_dict().items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise ModelFolderError(
                    f"{folder / 'model.safetensors'}: tensor {name} holds {bad} NaN/inf values"
                )
        model._load_sidecar(folder)
        model._folder = folder
        model._from_hub = not Path(pretrained_model_name_or_path).is_dir()
        return loaded

    def _load_sidecar(self, folder: Path) -> None:
        path = folder / SIDECAR
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelFolderError(f"{path}: missing or unreadable pattern metadata ({exc})") from exc
        if doc.get("version") != BANK_VERSION or len(doc.get("patterns", [])) != self.config.n_patterns:
            raise ModelFolderError(
                f"{path}: pattern metadata (version {doc.get('version')}, {len(doc.get('patterns', []))} "
                f"patterns) does not match the weights ({self.config.n_patterns} patterns)"
            )
        self.patterns, self.bank_meta = _check_sidecar(path, doc["patterns"], self), doc.get("meta", {})
        self.concepts = ConceptDirections.load(folder)
        if self.concepts is not None and self.concepts.directions.shape[1] != self.config.d_in:
            raise ModelFolderError(
                f"{folder / CONCEPTS_WEIGHTS}: concept directions of width "
                f"{self.concepts.directions.shape[1]}, the model reads {self.config.d_in}"
            )

    # ------------------------------------------------------------------------------ publishing
    def push_to_hub(
        self,
        repo_id: str,
        *,
        folder: str | os.PathLike | None = None,
        commit_message: str = "Upload LanIC model",
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        create_pr: bool = False,
    ):
        """Upload a model folder to the Hub with huggingface_hub (needs network).

        ``folder`` defaults to the folder this model was loaded from (with its card and
        thumbnails); the files sent are exactly :func:`upload_plan`'s list, after its licence check
        (images and report text), so nothing is sent when it refuses.
        """
        src = Path(folder) if folder is not None else self._folder
        if src is None or not (src / "config.json").is_file():
            raise ModelFolderError(
                "push a saved model folder: save_pretrained (or export) it first, then pass folder="
            )
        return push_folder(
            src,
            repo_id,
            commit_message=commit_message,
            private=private,
            token=token if isinstance(token, str) else None,
            revision=revision,
            create_pr=create_pr,
        )

    # --------------------------------------------------------------------------- the backbone
    def _backbone_folder(self) -> Path | None:
        if self.config.bundled_backbone and self._folder is not None:
            return self._folder / BUNDLED_BACKBONE
        spec = (self.config.backbone or {}).get("spec", "")
        if spec.startswith("local-dir:") and not self._from_hub:
            return Path(spec[len("local-dir:") :])
        if spec.startswith("hf-hub:"):
            from .backbone.resolve import hub_snapshot

            return hub_snapshot(spec[len("hf-hub:") :], (self.config.backbone or {}).get("revision"), None)
        return None

    @property
    def backbone(self):
        """The image/text encoder (:class:`lanic_hub.backbone.Backbone`), loaded on first use."""
        if self._backbone is None:
            from .backbone import load_backbone

            ref = self.config.backbone or {}
            if self.config.bundled_backbone and self._folder is not None:
                spec, rev = f"local-dir:{self._folder / BUNDLED_BACKBONE}", None
            elif ref.get("spec"):
                spec, rev = ref["spec"], ref.get("revision")
                if self._from_hub and spec.startswith("local-dir:"):
                    raise ModelFolderError(
                        f"{self._folder}: this Hub model's config points its backbone at a local folder "
                        f"({spec}); a downloaded model may only use a bundled backbone or an hf-hub: spec"
                    )
            else:
                raise ConfigError("this model records no backbone: pass embeddings (explain_embedding)")
            self._backbone = load_backbone(spec, revision=rev, device=str(self.device))
        if self._backbone.device != self.device:
            self._backbone.model.to(self.device)
        return self._backbone

    # ----------------------------------------------------------------------------- typicality
    def set_typicality(self, ref) -> None:
        """Store a typicality reference (:class:`lanic_hub.typicality.Typicality`) in the weights."""
        self.config.typicality, self.config.typicality_threshold = True, float(ref.threshold)
        for name, t in (("typicality_mean", ref.mean), ("typicality_precision", ref.precision)):
            self.register_buffer(name, t.detach().to(self.pattern_direction).clone())

    def typicality(self):
        """The model's :class:`~lanic_hub.typicality.Typicality` reference, or None (not saved)."""
        if not self.config.typicality:
            return None
        from .typicality import Typicality

        return Typicality(self.typicality_mean, self.typicality_precision, self.config.typicality_threshold)

    def _typicality_of(self, e: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        ref = self.typicality()
        if ref is None:
            return None, None
        d = ref.distance(e)
        return d, d > ref.threshold

    def _ood_notes(self, distance: float | None, outside: bool | None) -> list[str]:
        from .typicality import OOD_NOTE

        return [OOD_NOTE.format(d=distance, t=self.config.typicality_threshold)] if outside else []

    # ------------------------------------------------------------------------------- inference
    def _weights_key(self) -> tuple:
        """Changes whenever a tensor the explain caches derive from changes: replaced (``to``,
        ``load_state_dict`` with assign) or written in place (the tensor's version counter)."""
        ens = self.ensemble
        ts = (ens.W_dec, ens.W_enc, ens.b_enc, ens.b_pre, self.classifier.fc2.weight, self.latent_pattern)
        ts += (self.pattern_direction,)
        return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in ts) + (
            id(self.patterns),
            len(self.patterns),
            id(self.bank_meta),
        )

    def _cached(self, name: str, make):
        key = self._weights_key()
        if self._explain_cache.get("key") != key:
            self._explain_cache = {"key": key}
        if name not in self._explain_cache:
            self._explain_cache[name] = make()
        return self._explain_cache[name]

    def drop_explain_cache(self) -> None:
        """Forget the cached bank, logit weights and folded encoder bias (they are rebuilt on the
        next call; a change of the weights or of ``patterns`` drops them by itself)."""
        self._explain_cache = {}

    @property
    def folder(self) -> Path | None:
        """The folder this model was loaded from (a local folder, or the Hub cache's snapshot); None
        for a model built in memory."""
        return self._folder

    @property
    def bank(self) -> PatternBank:
        """The pattern bank over this model's buffers and ``patterns`` (built once, cached)."""
        return self._cached(
            "bank",
            lambda: PatternBank(
                self.latent_pattern, self.pattern_direction, {}, self.patterns, self.bank_meta
            ),
        )

    @property
    @torch.no_grad()
    def logit_weights(self) -> torch.Tensor:
        """(T, L, C) ``W2_c · W_dec_t[:, i]``: how much one unit of each latent moves each logit
        (T·L·H·C multiply-adds, so computed once and cached)."""
        return self._cached(
            "U",
            lambda: latent_logit_weights(self.ensemble.W_dec.detach(), self.classifier.fc2.weight.detach()),
        )

    @property
    def encoder_bias(self) -> torch.Tensor:
        """(T, L) the ensemble's folded encoder bias ``b_enc_t - W_enc_t b_pre_t`` (it reads all of
        ``W_enc``, so computed once and cached)."""
        return self._cached("encoder_bias", lambda: self.ensemble.encoder_bias().detach())

    # -------------------------------------------------------------------------------- removal
    @property
    def removal(self):
        """What this model leaves out (:class:`lanic_hub.removal.Removal`; falsy when nothing)."""
        from .removal import Removal

        return Removal.from_dict(self.config.removed)

    def without(
        self,
        concepts=(),
        patterns=(),
        latents=(),
        *,
        reason: str = "",
        chosen_by: str = "",
    ) -> LanICModel:
        """A copy of this model that leaves out ``concepts`` (keys or names), or ``patterns`` (ids
        or names) and ``latents`` (``(member, latent)`` pairs): its logit is this model's minus
        their contribution, image by image, and its error term is kept
        (:mod:`lanic_hub.removal`). The removal is recorded in ``config.removed`` and survives
        ``save_pretrained``; this model is not changed. Unknown items raise
        :class:`~lanic_hub.removal.RemovalError` naming the nearest known ones."""
        from .removal import resolve

        removal = resolve(self, concepts, patterns, latents, reason=reason, chosen_by=chosen_by)
        new = self._copy()
        new.config.removed = removal.to_dict()
        return new

    def with_concepts(self, concepts: ConceptDirections) -> LanICModel:
        """A copy of this model whose explanations split over ``concepts`` (e.g. these directions
        and one fitted on a labelled image set: :func:`lanic_hub.removal.fit_reference_concept`);
        saved with it. This model is not changed."""
        if concepts.directions.shape[1] != self.config.d_in:
            raise ConfigError(
                f"concept directions of width {concepts.directions.shape[1]}; "
                f"the model reads {self.config.d_in}"
            )
        new = self._copy()
        new.concepts = concepts
        return new

    def _copy(self) -> LanICModel:
        """A deep copy sharing the (unchanged) image encoder, with empty explanation caches."""
        import copy

        backbone, cache = self._backbone, self._explain_cache
        self._backbone, self._explain_cache = None, {}
        try:
            new = copy.deepcopy(self)
        finally:
            self._backbone, self._explain_cache = backbone, cache
        new._backbone = backbone  # shared: the image encoder is not changed
        return new

    @torch.no_grad()
    def removed_contributions(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, C) the summed contribution of the removed items to each logit (zeros when nothing
        is removed): what this model subtracts from its classifier's logits."""
        from .removal import removed_contributions

        return removed_contributions(self, embeddings)

    def forward(
        self, pixel_values: torch.Tensor | None = None, embeddings: torch.Tensor | None = None, **kwargs: Any
    ) -> LanICOutput:
        """Predict from preprocessed pixels (B, 3, H, W) or from unit image embeddings (B, d)."""
        if (pixel_values is None) == (embeddings is None):
            raise ValueError("give exactly one of pixel_values or embeddings")
        if embeddings is None:
            embeddings = self.backbone.encode_image(pixel_values)
        e = embeddings.to(self.device, self.dtype)
        if e.is_inference() and not torch.is_inference_mode_enabled():
            e = e.clone()  # the backbone encodes in inference mode; autograd may be on here
        check_finite(e)
        logits = self.classifier(e)
        check_finite(logits, "the classifier's logits (activations overflowed)")
        if self.config.removed:  # the removed items' contributions are taken out (the error is kept)
            logits = logits - self.removed_contributions(e).to(logits.dtype)
        v, i = self.ensemble.encode(e)
        check_finite(v, "the transcoder codes (activations overflowed)")
        acts = pattern_activations_from_codes(
            v, i, self.ensemble.cfg.n_latents, self.latent_pattern, self.bank.support.to(e.device)
        )
        dist, outside = self._typicality_of(e)
        return LanICOutput(
            logits=logits,
            probabilities=torch.sigmoid(logits),
            pattern_activations=acts,
            embeddings=e,
            typicality_distance=dist,
            out_of_distribution=outside,
        )

    @torch.no_grad()
    def embed_images(self, images: list) -> torch.Tensor:
        """Unit embeddings of images given as paths, PIL images, arrays or DICOM files."""
        from .data.images import load_image

        bb = self.backbone
        x = torch.stack([bb.preprocess(load_image(im)) for im in images])
        return bb.encode_image(x)

    @torch.no_grad()
    def predict_batch(self, images: list) -> list[Prediction]:
        out = self(embeddings=self.embed_images(images))
        res = []
        for b, p in enumerate(out.probabilities.float().cpu()):
            d = None if out.typicality_distance is None else float(out.typicality_distance[b])
            o = None if out.out_of_distribution is None else bool(out.out_of_distribution[b])
            res.append(
                Prediction(
                    dict(zip(self.config.findings, p.tolist(), strict=True)),
                    d,
                    o,
                    self._ood_notes(d, o),
                    self.config.thresholds,
                )
            )
        return res

    def predict(self, image) -> Prediction:
        """Probability of each finding for one image (path, PIL image, array or DICOM)."""
        return self.predict_batch([image])[0]

    @torch.no_grad()
    def explain_embeddings(
        self, embeddings: torch.Tensor, sources: list[str] | None = None
    ) -> list[Explanation]:
        e = embeddings.to(self.device, self.dtype).reshape(-1, self.config.d_in)
        out = explain_embeddings(  # checks e is finite before anything else
            self.classifier,
            self.ensemble,
            self.bank,
            e,
            sources,
            tuple(self.config.findings),
            U=self.logit_weights,
            encoder_bias=self.encoder_bias,
            concepts=self.concepts,
        )
        if self.config.removed:
            self._mark_removed(out, e)
        dist, outside = self._typicality_of(e)
        if dist is not None:
            for b, ex in enumerate(out):
                ex.typicality_distance, ex.out_of_distribution = float(dist[b]), bool(outside[b])
                ex.notes = self._ood_notes(ex.typicality_distance, ex.out_of_distribution) + ex.notes
        return out

    def _mark_removed(self, out: list[Explanation], e: torch.Tensor) -> None:
        """Turn explanations of the classifier into the changed model's: the removed items stay
        listed, marked, their sum goes to ``removed``, and the logit and probability drop it."""
        import math

        removal = self.removal
        R = self.removed_contributions(e).double().cpu()
        pats, keys = set(removal.patterns), set(removal.concepts)
        for b, ex in enumerate(out):
            for c, f in enumerate(ex.findings):
                f.removed = float(R[b, c])
                f.logit -= f.removed
                f.probability = 0.5 * (1.0 + math.tanh(f.logit / 2))  # sigmoid, no overflow
                for pc in f.patterns:
                    pc.removed = pc.pattern in pats
                for cc in f.concepts:
                    cc.removed = cc.key in keys if cc.key is not None else False
            ex.notes.append(f"This model leaves out {removal.describe(self)} (lanic_hub.removal).")

    def explain_embedding(self, embedding: torch.Tensor) -> Explanation:
        """The exact explanation of one cached embedding (d,)."""
        return self.explain_embeddings(embedding.reshape(1, -1))[0]

    def explain_batch(self, images: list) -> list[Explanation]:
        sources = [str(im) if isinstance(im, (str, os.PathLike)) else None for im in images]
        return self.explain_embeddings(self.embed_images(images), sources)

    def explain(self, image) -> Explanation:
        """Prediction and its exact pattern decomposition for one image."""
        return self.explain_batch([image])[0]


def _check_sidecar(path: Path, entries: list[Any], model: LanICModel) -> list[Pattern]:
    """The sidecar's patterns, each checked against the weights: ids in order, member latents in
    range and mapped to that pattern by ``latent_pattern`` (the types: :meth:`Pattern.from_dict`)."""
    tc = model.config.transcoder_config()
    T, L = tc.n_members, tc.n_latents
    owner = model.latent_pattern.tolist()  # one conversion, not one tensor lookup per member
    patterns = []
    for j, d in enumerate(entries):
        where = f"{path}: pattern {j}"
        if not isinstance(d, dict) or d.get("id") != j:
            raise ModelFolderError(f"{where}: expected an object with id {j}")
        try:
            p = Pattern.from_dict(d, where)
        except DataError as exc:
            raise ModelFolderError(str(exc)) from exc
        for m in p.members:
            if not (0 <= m[0] < T and 0 <= m[1] < L):
                raise ModelFolderError(f"{where}: member {m!r} is not a (member < {T}, latent < {L}) pair")
            if owner[m[0] * L + m[1]] != j:
                raise ModelFolderError(
                    f"{where}: member latent {m} belongs to pattern {owner[m[0] * L + m[1]]} in the weights"
                )
        patterns.append(p)
    return patterns


def resolve_model_folder(
    name: str | os.PathLike, revision: str | None = None, cache_dir: str | None = None
) -> Path:
    """A local folder as is; otherwise a Hub repo id, downloaded or (offline) found in the cache."""
    p = Path(name)
    if not p.exists() and p.with_name(p.name + ".old").is_dir():
        from .utils.io import recover_dir

        recover_dir(p)  # a save that was killed mid-swap: the previous complete folder
    if p.is_dir():
        return p
    if p.exists() or str(name).startswith((".", "/")) or os.sep in str(name).strip("/").replace("/", "", 1):
        raise ModelFolderError(f"{name}: no such model folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    from .utils.hfcache import download_command, hub_offline, not_cached_reason

    offline = hub_offline()
    try:
        return Path(
            snapshot_download(str(name), revision=revision, cache_dir=cache_dir, local_files_only=offline)
        )
    except LocalEntryNotFoundError as exc:
        raise ModelFolderError(
            f"{name}: not a local folder, and {not_cached_reason(str(name), exc, offline)}; "
            f"download it once with `{download_command(str(name))}`"
        ) from exc
    except (RepositoryNotFoundError, HFValidationError, OSError) as exc:
        raise ModelFolderError(f"{name}: not a local folder and not found on the Hub: {exc}") from exc


def check_model_folder(folder: Path) -> None:
    """Refuse, with a clear message, folders that are not a compatible LanIC model."""
    cfg = folder / "config.json"
    if not cfg.is_file():
        hint = (
            " (it looks like a `lanic-hub train` folder: build the model with `lanic-hub export`)"
            if (folder / "ensemble.safetensors").is_file()
            else ""
        )
        raise ModelFolderError(f"{folder}: no config.json; not a LanIC model{hint}")
    try:
        doc = json.loads(cfg.read_text())
    except ValueError as exc:
        raise ModelFolderError(f"{cfg}: not valid JSON ({exc})") from exc
    if doc.get("model_type") != LanICConfig.model_type:
        raise ModelFolderError(f"{cfg}: model_type is {doc.get('model_type')!r}, not 'lanic'")
    if doc.get("lanic_format") != LANIC_FORMAT:
        raise ModelFolderError(
            f"{cfg}: saved in LanIC format {doc.get('lanic_format')}, this lanic-hub reads format "
            f"{LANIC_FORMAT}; install the lanic-hub version that wrote it"
        )
    if not (folder / "model.safetensors").is_file():
        raise ModelFolderError(f"{folder}: no model.safetensors (LanIC models are never loaded from pickles)")
    config = _checked_config(cfg, doc)
    _check_tensor_shapes(folder / "model.safetensors", config)
    bb = folder / BUNDLED_BACKBONE
    if config.bundled_backbone and (bb.is_symlink() or not _inside(bb, folder)):
        raise ModelFolderError(f"{bb}: the bundled backbone must be a folder inside the model folder")


#: Upper bound on every size in a config: far above any real model, far below an allocation bomb.
MAX_DIM = 1 << 20


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _checked_config(cfg_path: Path, doc: dict[str, Any]) -> LanICConfig:
    """The config, with every size checked to be a positive integer below :data:`MAX_DIM`."""
    ens = doc.get("ensemble") or {}
    sizes = {"d_in": doc.get("d_in"), "hidden": doc.get("hidden"), "n_patterns": doc.get("n_patterns", 0)}
    sizes |= {f"ensemble.{k}": ens.get(k) for k in ("n_members", "n_latents", "k", "d_in", "d_out")}
    for key, v in sizes.items():
        low = 0 if key == "n_patterns" else 1
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= MAX_DIM:
            raise ModelFolderError(f"{cfg_path}: {key} = {v!r} is not an integer in [{low}, {MAX_DIM}]")
    if ens["n_members"] * ens["n_latents"] > 64 * MAX_DIM:
        raise ModelFolderError(f"{cfg_path}: ensemble.n_members x n_latents is implausibly large")
    try:
        return LanICConfig(
            **{k: v for k, v in doc.items() if k not in ("model_type", "transformers_version")}
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"{cfg_path}: not a valid LanIC config ({exc})") from exc


def _check_tensor_shapes(path: Path, config: LanICConfig) -> None:
    """Compare the safetensors header (read without loading a tensor) with the shapes the config
    implies (a model built on the meta device: no memory): missing, extra or resized tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in LanICModel(config).state_dict().items()}
    except (RuntimeError, ValueError) as exc:
        raise ModelFolderError(f"{path.parent / 'config.json'}: sizes do not make a model ({exc})") from exc
    try:
        with safe_open(str(path), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: cannot read the tensor header ({exc})") from exc
    problems = [f"missing {k} {want[k]}" for k in sorted(want.keys() - have.keys())]
    problems += [f"unexpected {k} {have[k]}" for k in sorted(have.keys() - want.keys())]
    problems += [
        f"{k} has shape {have[k]}, the config implies {want[k]}"
        for k in sorted(want.keys() & have.keys())
        if have[k] != want[k]
    ]
    if problems:
        raise ModelFolderError(
            f"{path}: the weights do not match config.json: {'; '.join(problems[:5])}"
            f"{f' (+{len(problems) - 5} more)' if len(problems) > 5 else ''}"
        )


def restricted_content(folder: str | os.PathLike) -> list[str]:
    """What in a model folder may not be re-published, one ``"file: why"`` line each: nothing
    when its data's licence allows re-publishing (``patterns.json``'s ``meta.data_source``; a
    folder that does not say counts as restricted). Otherwise gallery thumbnails, example images
    and report text: the typical sentences of ``patterns.json``, and any of them quoted in another
    text file."""
    folder = Path(folder)
    doc = json.loads((folder / SIDECAR).read_text())
    src = doc.get("meta", {}).get("data_source") or {}
    if src.get("redistributable", False):
        return []
    name = src.get("name", "unrecorded data")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    out = []
    for sub, what in (("thumbnails", "gallery images"), ("examples", "example images")):
        images = [p for p in files if p.relative_to(folder).parts[0] == sub]
        if images:
            out.append(f"{sub}/: {len(images)} {what} of {name}")
    sentences = sorted({t for p in doc.get("patterns", []) for t in p.get("typical_sentences") or []})
    if sentences:
        n = sum(bool(p.get("typical_sentences")) for p in doc.get("patterns", []))
        out.append(
            f"{SIDECAR}: {len(sentences)} report sentences of {name} (typical_sentences of {n} patterns)"
        )
    for p in files:
        if p.suffix in (".md", ".json", ".txt", ".py", ".html") and p.name != SIDECAR and sentences:
            text = p.read_text(errors="replace")
            quoted = [t for t in sentences if t in text]
            if quoted:
                out.append(f"{p.relative_to(folder)}: quotes {len(quoted)} report sentences of {name}")
    return out


def upload_plan(folder: str | os.PathLike) -> list[str]:
    """The files :meth:`LanICModel.push_to_hub` would upload from ``folder`` (relative paths), after
    checking that it is an intact LanIC model with a card, and that it re-publishes no images or
    report text of a dataset whose licence forbids it (:func:`restricted_content`)."""
    folder = Path(folder)
    check_model_folder(folder)
    if not (folder / "README.md").is_file():
        raise ModelFolderError(f"{folder}: no README.md model card; write one with `lanic-hub export`")
    bad = restricted_content(folder)
    if bad:
        from .errors import LicenceError

        raise LicenceError(
            f"{folder}: its data may not be re-published, but the folder holds: "
            + "; ".join(bad)
            + ". Rebuild the bank (typical sentences are withheld for such data) or delete those "
            "files before publishing"
        )
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return [f for f in files if not f.endswith((".bin", ".pt", ".pkl", ".pth"))]


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str = "Upload LanIC model",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
):
    """Upload exactly :func:`upload_plan`'s files of a model folder to the Hub (needs network);
    the licence check runs first, so nothing is sent when it refuses."""
    from huggingface_hub import HfApi

    files = upload_plan(folder)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    return api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        allow_patterns=files,
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
    )


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` resolve ``model_type = "lanic"`` (done when this module
    loads, i.e. on first use of ``lanic_hub.LanICModel``)."""
    from transformers import AutoConfig, AutoModel

    try:
        AutoConfig.register(LanICConfig.model_type, LanICConfig)
        AutoModel.register(LanICConfig, LanICModel)
    except ValueError:  # already registered (re-import)
        pass


register()  # importing the model classes makes AutoConfig / AutoModel resolve model_type "lanic"
