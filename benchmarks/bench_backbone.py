"""Backbone benchmarks, side by side in one run:

- extraction throughput (decode + preprocess in DataLoader workers + forward, shards written)
  vs the raw image-tower forward on random pixels at the same batch size; target ratio >= 0.9;
- phantom CLIP training time (target <= 180 s on 2 cores), from its training report.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

TARGET_RATIO = 0.9


def _extraction_ratio(bb, ds, batch: int, workers: int, repeats: int = 3) -> tuple[float, float]:
    from lanic_hub.backbone.embed import embed_dataset, raw_forward_throughput

    raw, ext = [], []
    for _ in range(repeats):
        raw.append(raw_forward_throughput(bb, batch, n_batches=max(2, len(ds) // batch)))
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            embed_dataset(
                ds,
                bb,
                Path(d) / "e",
                batch_size=batch,
                num_workers=workers,
                shard_size=4096,
                text=False,
                progress=False,
            )
            ext.append(len(ds) / (time.perf_counter() - t))
    return statistics.median(ext), statistics.median(raw)


def main() -> dict:
    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.phantom_clip import ensure_phantom_clip
    from lanic_hub.data.phantom import export, load_phantom_dataset

    from ._models import biomedclip_like

    torch.set_num_threads(2)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = load_phantom_dataset(export(tmp / "ph", 512, seed=5, mimic=False, progress=False)["hf"])
        rows = [
            (
                "phantom CLIP (test_resnet, 96 px)",
                f"local-dir:{ensure_phantom_clip(progress=False)}",
                ds,
                128,
            ),
            (
                "BiomedCLIP ViT-B/16 arch (random weights, 224 px)",
                f"local-dir:{biomedclip_like(tmp / 'vitb')}",
                ds.select(range(96)),
                32,
            ),
        ]
        print(f"{'backbone':52s} {'batch':>5s} {'extract img/s':>14s} {'raw fwd img/s':>14s} {'ratio':>6s}")
        for name, spec, data, batch in rows:
            bb = load_backbone(spec)
            ext, raw = _extraction_ratio(bb, data, batch, workers=2)
            print(
                f"{name:52s} {batch:5d} {ext:14.1f} {raw:14.1f} {ext / raw:6.2f}  (target >= {TARGET_RATIO})"
            )
            results[name] = {"extract_img_s": ext, "raw_img_s": raw, "ratio": ext / raw}
    import json

    rep = json.loads((ensure_phantom_clip(progress=False) / "training_report.json").read_text())
    print(
        f"phantom CLIP training: {rep['seconds']['total']:.0f} s total ({rep['seconds']}) on this machine; "
        f"target <= 180 s; ratio {rep['seconds']['total'] / 180:.2f}"
    )
    results["phantom_clip_train_s"] = rep["seconds"]["total"]
    return results


if __name__ == "__main__":
    main()
