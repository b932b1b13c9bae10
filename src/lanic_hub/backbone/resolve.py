"""One resolver for every open_clip backbone: ``hf-hub:<repo>``, ``local-dir:<path>`` or a built-in name.

BiomedCLIP's Hub repo holds ``open_clip_config.json``, the weights and the tokenizer files, but its
text tower is named by ``hf_model_name`` (a *different* Hub repo), which open_clip resolves over
the network even when everything else is local (open_clip issues 772, 724, 1056). This resolver
rewrites the text tower to local files first:

- the tokenizer from the model folder itself (BiomedCLIP ships it) or the HF cache;
- the text tower's transformers config from ``<folder>/text_config/config.json``, else from the
  HF cache of ``hf_model_name``; it is built from that config (weights come from the checkpoint).

Weights: safetensors is preferred; ``.bin`` is loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import LanicError

BIOMEDCLIP = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


class BackboneError(LanicError):
    """A backbone could not be resolved or loaded."""


@dataclass
class Backbone:
    """An open_clip model with its tokenizer and preprocessing, and where it came from."""

    model: torch.nn.Module
    tokenizer: Any
    preprocess: Any
    spec: str
    revision: str | None
    folder: Path | None
    config: dict = field(default_factory=dict)

    @property
    def embed_dim(self) -> int:
        return int(self.config.get("embed_dim", 0))

    @property
    def context_length(self) -> int:
        return int(self.config.get("text_cfg", {}).get("context_length", 77))

    @property
    def image_size(self) -> int:
        s = self.config.get("vision_cfg", {}).get("image_size", 224)
        return int(s[0] if isinstance(s, (list, tuple)) else s)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings, shape (B, embed_dim)."""
        return F.normalize(self.model.encode_image(pixel_values.to(self.device)).float(), dim=-1)

    @torch.inference_mode()
    def encode_text(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalised text embeddings of ``texts``, shape (len(texts), embed_dim).

        Identical texts are encoded once. For Hugging Face text towers, trailing padding is
        trimmed to the longest text of each batch: their attention mask makes that exact, and it
        saves most of the work on short sentences.
        """
        texts = list(texts)
        uniq = sorted(set(texts), key=lambda t: (len(t), t))  # a total order: batches never depend on hashing
        trim = "hf_model_name" in self.config.get("text_cfg", {})
        pad = getattr(getattr(self.model, "text", None), "config", None)
        pad_id = getattr(pad, "pad_token_id", 0) or 0
        out = []
        for i in range(0, len(uniq), batch_size):
            tokens = self.tokenizer(uniq[i : i + batch_size])
            if trim:
                n = int((tokens != pad_id).sum(1).max())
                tokens = tokens[:, : max(n, 1)]
            out.append(F.normalize(self.model.encode_text(tokens.to(self.device)).float(), dim=-1).cpu())
        if not out:
            return torch.zeros(0, self.embed_dim)
        emb = torch.cat(out)
        index = {t: j for j, t in enumerate(uniq)}
        return emb[torch.tensor([index[t] for t in texts])]

    def identity(self) -> dict[str, Any]:
        """What a cache manifest records about this backbone."""
        return {
            "spec": self.spec,
            "revision": self.revision,
            "embed_dim": self.embed_dim,
            "image_size": self.image_size,
            "context_length": self.context_length,
        }


def hub_snapshot(repo_id: str, revision: str | None, cache_dir: str | None) -> Path:
    """The local snapshot folder of a Hub repo: downloaded, or from the cache when offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from ..utils.hfcache import download_command, hub_offline, not_cached_reason

    offline = hub_offline()
    try:
        return Path(
            snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=offline)
        )
    except LocalEntryNotFoundError as exc:
        raise BackboneError(
            f"hf-hub:{not_cached_reason(repo_id, exc, offline)}. On a machine with network, run "
            f"`{download_command(repo_id)}` once (then copy the cache, or the folder as local-dir:<path>); "
            "see docs/BACKBONES.md."
        ) from None
    except Exception as exc:  # network errors of many kinds: say what to do
        raise BackboneError(
            f"hf-hub:{repo_id}: cannot fetch ({type(exc).__name__}: {exc}). "
            "Offline? Use a local-dir: folder; see docs/BACKBONES.md."
        ) from None


def _cached_dir(repo_id: str, filename: str, cache_dir: str | None) -> Path | None:
    """The snapshot folder of ``repo_id`` in the HF cache holding ``filename``, without network."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return Path(hit).parent if isinstance(hit, str) else None


def _local_text_tower(folder: Path, text_cfg: dict, cache_dir: str | None) -> dict:
    """Point ``hf_model_name`` / ``hf_tokenizer_name`` at local files, or explain what is missing."""
    text_cfg = dict(text_cfg)
    name = text_cfg["hf_model_name"]
    if (folder / "text_config" / "config.json").is_file():
        cfg_dir: Path | None = folder / "text_config"
    elif Path(name).is_dir():
        cfg_dir = Path(name)
    else:
        cfg_dir = _cached_dir(name, "config.json", cache_dir)
    if cfg_dir is None:
        raise BackboneError(
            f"{folder}: the text tower {name!r} needs its transformers config.json, found neither in "
            f"{folder / 'text_config'} nor in the Hugging Face cache. Put the config.json of {name} "
            f"at {folder / 'text_config' / 'config.json'} (see docs/BACKBONES.md)."
        )
    tok = text_cfg.get("hf_tokenizer_name", name)
    if (folder / "tokenizer_config.json").is_file():
        tok_dir: Path | None = folder
    elif Path(tok).is_dir():
        tok_dir = Path(tok)
    else:
        tok_dir = _cached_dir(tok, "tokenizer_config.json", cache_dir)
    if tok_dir is None:
        raise BackboneError(f"{folder}: no tokenizer files here and {tok!r} is not in the HF cache")
    text_cfg.update(hf_model_name=str(cfg_dir), hf_tokenizer_name=str(tok_dir), hf_model_pretrained=False)
    return text_cfg


def read_open_clip_config(folder: Path) -> dict:
    path = folder / "open_clip_config.json"
    if not path.is_file():
        raise BackboneError(f"{folder}: no open_clip_config.json; this is not an open_clip model folder")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BackboneError(f"{path}: invalid JSON ({exc})") from None
    if "model_cfg" not in cfg:
        raise BackboneError(f"{path}: missing 'model_cfg' (expected {{'model_cfg', 'preprocess_cfg'}})")
    return cfg


def load_backbone(
    spec: str = BIOMEDCLIP,
    *,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load an open_clip backbone from ``hf-hub:<repo>``, ``local-dir:<path>`` or a built-in name.

    >>> bb = load_backbone("local-dir:/models/BiomedCLIP")            # doctest: +SKIP
    >>> bb.encode_image(bb.preprocess(img)[None]).shape               # doctest: +SKIP
    torch.Size([1, 512])
    """
    import open_clip

    if spec.startswith("hf-hub:"):
        folder: Path | None = hub_snapshot(spec[len("hf-hub:") :], revision, cache_dir)
    elif spec.startswith("local-dir:"):
        folder = Path(spec[len("local-dir:") :]).expanduser()
        if not folder.is_dir():
            raise BackboneError(f"local-dir: folder not found: {folder}")
    else:
        folder = None
    if folder is None:  # a built-in open_clip architecture (random weights unless a tag is given)
        name, _, tag = spec.partition("@")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=tag or None, device=device, precision=precision, cache_dir=cache_dir
            )
        except RuntimeError as exc:
            raise BackboneError(f"{spec!r}: {exc}") from None
        return Backbone(
            model.eval(),
            open_clip.get_tokenizer(name),
            preprocess,
            spec,
            revision,
            None,
            open_clip.get_model_config(name) or {},
        )
    cfg = read_open_clip_config(folder)
    model_cfg = cfg["model_cfg"]
    kwargs: dict[str, Any] = {}
    tok_ctx = model_cfg.get("text_cfg", {}).get("context_length", 77)
    if "hf_model_name" in model_cfg.get("text_cfg", {}):
        text_cfg = _local_text_tower(folder, model_cfg["text_cfg"], cache_dir)
        kwargs["text_cfg"] = text_cfg
        tokenizer = open_clip.tokenizer.HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=tok_ctx)
    else:
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    if not any(folder.glob(p) for p in ("*.safetensors", "*.bin", "*.pth")):
        raise BackboneError(f"{folder}: no weights (*.safetensors, *.bin or *.pth)")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            f"local-dir:{folder}", device=device, precision=precision, weights_only=True, **kwargs
        )
    except Exception as exc:  # open_clip wraps failures in ValueError / RuntimeError
        raise BackboneError(f"{folder}: open_clip could not build or load the model: {exc}") from None
    return Backbone(model.eval(), tokenizer, preprocess, spec, revision, folder, model_cfg)
