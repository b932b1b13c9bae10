"""GPU: BiomedCLIP-architecture ViT-B/16 image embedding throughput at bf16 (random weights).

Measures (1) the raw image-tower forward on random pixels and (2) the full extraction path
(`embed_dataset`: JPEG decode + preprocess in DataLoader workers, forward under autocast, shards
written) on phantom JPEGs in the MIMIC-CXR-JPG layout, at the same batch size. Writes JSON.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def main(out: str = "benchmarks/results/gpu_extract.json", n_images: int = 4096, batch: int = 256) -> dict:
    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.embed import embed_dataset
    from lanic_hub.data import load_mimic_cxr
    from lanic_hub.data.phantom import export

    from ._models import biomedclip_like

    assert torch.cuda.is_available(), "no CUDA device"
    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bb = load_backbone(f"local-dir:{biomedclip_like(tmp / 'vitb')}", device="cuda")
        bb.model.visual.to(memory_format=torch.channels_last)
        x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
        for dtype in ("bf16", "fp32"):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                for _ in range(3):
                    bb.encode_image(x)
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(20):
                    bb.encode_image(x)
                torch.cuda.synchronize()
            res[f"raw_forward_img_s_{dtype}"] = 20 * batch / (time.perf_counter() - t)
        paths = export(
            tmp / "ph", n_images, seed=0, hf=False, num_proc=min(16, os.cpu_count() or 1), progress=False
        )
        ds = load_mimic_cxr(paths["mimic"])
        t = time.perf_counter()
        embed_dataset(
            ds,
            bb,
            tmp / "emb",
            batch_size=batch,
            num_workers=min(12, os.cpu_count() or 1),
            shard_size=8192,
            text=False,
            dtype="float16",
            autocast="bf16",
            progress=False,
        )
        res["extract_img_s_bf16"] = len(ds) / (time.perf_counter() - t)
        res["extract_vs_raw_bf16"] = res["extract_img_s_bf16"] / res["raw_forward_img_s_bf16"]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main(*sys.argv[1:2])
