"""The Hugging Face model, ``LanICModel``: what users load, predict with and explain with.

One class past the 400-line guide, for a reason: its methods are the product's whole API
(``from_pretrained`` / ``save_pretrained``, ``predict``, ``explain``, ``without``), each a thin
wrapper over a lower layer (``explain``, ``removal``, ``typicality``, ``backbone``) or a check in
:mod:`.folder`. Splitting it would spread one user-facing class over several files.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ..backbone import load_backbone
from ..backbone.resolve import hub_snapshot
from ..classifier import DiagnosticClassifier
from ..constants import FINDINGS
from ..data.images import load_image
from ..decomposition import latent_logit_weights
from ..errors import ConfigError, LanicError
from ..explain import Explanation, explain_embeddings
from ..patterns.bank import BANK_VERSION, PatternBank, pattern_activations_from_codes
from ..patterns.concepts import CONCEPTS_WEIGHTS, ConceptDirections
from ..patterns.record import Pattern
from ..records import BankMeta
from ..removal import Removal
from ..removal import removed_contributions as removed_contributions_of
from ..removal import resolve as resolve_removal
from ..trained import load_trained
from ..transcoders import TranscoderEnsemble
from ..transcoders.ensemble import ensemble_fingerprint
from ..typicality import OOD_NOTE, Typicality
from ..utils.io import link_missing, recover_dir, replace_dir, write_text_atomic
from ..utils.tensors import check_finite
from .configuration_lanic import REMOTE_CODE, LanICConfig
from .folder import (
    BUNDLED_BACKBONE,
    SIDECAR,
    ModelFolderError,
    check_model_folder,
    check_sidecar,
    model_parts,
    resolve_model_folder,
)

#: The remote-code file copied into every saved folder (``REMOTE_CODE``).
_REMOTE_SOURCE = Path(__file__).parent.parent / "resources" / "remote" / REMOTE_CODE


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
        self.classifier, self.ensemble = model_parts(config)
        for name, shape in config.buffer_shapes().items():  # latent_pattern: -1 = in no pattern
            if name == "latent_pattern":
                self.register_buffer(name, torch.full(shape, -1, dtype=torch.long))
            else:
                self.register_buffer(name, torch.zeros(shape))
        self.patterns: list[Pattern] = []
        self.bank_meta = BankMeta()
        """The ``meta`` of ``patterns.json``: what the bank was built from, and the export's notes."""
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
        bank.check_ensemble(ensemble_fingerprint(ensemble), ensemble.cfg.n_members * ensemble.cfg.n_latents)
        cfg = LanICConfig(
            d_in=classifier.fc1.in_features,
            hidden=classifier.fc1.out_features,
            findings=list(findings),
            ensemble=ensemble.cfg.to_dict(),
            n_patterns=len(bank),
            backbone=backbone or bank.meta.backbone,
        )
        model = cls(cfg)
        with torch.no_grad():
            model.classifier.load_state_dict(classifier.state_dict())
            model.ensemble.load_state_dict(ensemble.state_dict())
            model.latent_pattern.copy_(bank.latent_pattern)
            model.pattern_direction.copy_(bank.direction)
        model.patterns = [p.copy() for p in bank.patterns]
        model.bank_meta = bank.meta.model_copy(deep=True)
        return model.eval()

    @classmethod
    def from_training_folder(cls, folder: str | Path) -> LanICModel:
        """The model of a folder written by ``lanic-hub train`` + ``lanic-hub patterns``."""
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
            "meta": self.bank_meta.to_dict(),
            "patterns": [p.to_dict() for p in self.patterns],
        }
        write_text_atomic(tmp / SIDECAR, json.dumps(doc, indent=1))
        shutil.copyfile(_REMOTE_SOURCE, tmp / REMOTE_CODE)
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
        self.patterns = check_sidecar(path, doc["patterns"], self)
        self.bank_meta = BankMeta.parse(doc.get("meta", {}), f"{path}: meta", ModelFolderError)
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
        from .hub import push_folder  # hub.py imports this module (its checks build the model)

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
            return hub_snapshot(spec[len("hf-hub:") :], (self.config.backbone or {}).get("revision"), None)
        return None

    @property
    def backbone(self):
        """The image/text encoder (:class:`lanic_hub.backbone.Backbone`), loaded on first use."""
        if self._backbone is None:
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
        return Typicality(self.typicality_mean, self.typicality_precision, self.config.typicality_threshold)

    def _typicality_of(self, e: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        ref = self.typicality()
        if ref is None:
            return None, None
        d = ref.distance(e)
        return d, d > ref.threshold

    def _ood_notes(self, distance: float | None, outside: bool | None) -> list[str]:
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
        removal = resolve_removal(self, concepts, patterns, latents, reason=reason, chosen_by=chosen_by)
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
        return removed_contributions_of(self, embeddings)

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
