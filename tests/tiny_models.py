"""A tiny open_clip model in BiomedCLIP's exact Hub layout, built for real with open_clip
(the ``tiny_biomedclip`` fixture in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TEXT_REPO = "lanic-test/TinyBiomedBERT"
CLIP_REPO = "lanic-test/TinyBiomedCLIP"
WORDS = [
    "pleural",
    "effusion",
    "no",
    "small",
    "large",
    "heart",
    "enlarged",
    "edema",
    "left",
    "right",
    "consolidation",
    "atelectasis",
    "normal",
    "lung",
    "chest",
    "tube",
    ".",
]


def _tiny_bert_dir(root: Path) -> Path:
    from transformers import BertConfig, BertTokenizerFast

    d = root / "tiny-bert"
    d.mkdir()
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(d / "vocab.txt"))
    tok.save_pretrained(d)
    BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ).save_pretrained(d)
    return d


def build_tiny_biomedclip(root: Path):
    """(folder in BiomedCLIP layout with .bin weights, the tiny BERT folder, the saved state dict)."""
    import open_clip

    bert = _tiny_bert_dir(root)
    ref = (
        json.loads((Path(__file__).parents[2] / "shared/data/biomedclip/open_clip_config.json").read_text())
        if (Path(__file__).parents[2] / "shared").exists()
        else None
    )
    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "timm_model_name": "test_vit",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 160,
        },
        "text_cfg": {
            "hf_model_name": TEXT_REPO,
            "hf_tokenizer_name": TEXT_REPO,
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 64,
        },
    }
    if ref is not None:  # same keys as the published BiomedCLIP config: only sizes and names differ
        assert set(ref["model_cfg"]) == set(model_cfg)
        for k in ("vision_cfg", "text_cfg"):
            assert set(ref["model_cfg"][k]) == set(model_cfg[k])
    cfg = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }
    build_text = dict(
        model_cfg["text_cfg"], hf_model_name=str(bert), hf_tokenizer_name=str(bert), hf_model_pretrained=False
    )
    torch.manual_seed(0)
    model = open_clip.CustomTextCLIP(embed_dim=16, vision_cfg=model_cfg["vision_cfg"], text_cfg=build_text)
    folder = root / "TinyBiomedCLIP"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (bert / f).exists():  # transformers v5 no longer writes special_tokens_map.json
            (folder / f).write_bytes((bert / f).read_bytes())
    return folder, bert, state
