"""Backbones for speed measurements: real open_clip architectures with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch

BIOMEDCLIP_VISION = {
    "timm_model_name": "vit_base_patch16_224",
    "timm_model_pretrained": False,
    "timm_pool": "",
    "timm_proj": "linear",
    "image_size": 224,
}


def biomedclip_like(folder: str | Path, vision: dict | None = None, embed_dim: int = 512) -> Path:
    """A local-dir folder with BiomedCLIP's image tower (random weights) and a tiny BERT text tower
    (BiomedBERT's config cannot be had offline; the image path is what is timed)."""
    import open_clip
    from transformers import BertConfig, BertTokenizerFast

    folder = Path(folder)
    if (folder / "open_clip_model.safetensors").exists():
        return folder
    tc = folder / "text_config"
    tc.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "lung", "."]) + "\n"
    )
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    BertConfig(
        vocab_size=7,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    ).save_pretrained(tc)
    text_cfg = {
        "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
        "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
        "hf_proj_type": "mlp",
        "hf_pooler_type": "cls_last_hidden_state_pooler",
        "context_length": 256,
    }
    vision = vision or BIOMEDCLIP_VISION
    cfg = {
        "model_cfg": {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text_cfg},
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(cfg, indent=1))
    build = dict(text_cfg, hf_model_name=str(tc), hf_tokenizer_name=str(folder), hf_model_pretrained=False)
    torch.manual_seed(0)
    model = open_clip.CustomTextCLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=build)
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors"
    )
    return folder
