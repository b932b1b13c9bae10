"""How well the typicality guard (:mod:`lanic_hub.typicality`) tells images unlike the training
data apart: the share flagged among real NIH radiographs (for a phantom model), among generated
non-radiographs, and among held-out in-distribution phantoms (the false-alarm rate).

    python eval/ood_check.py --model runs/quickstart/model --out docs/ood_check.json
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw


def non_radiographs(n: int = 240, seed: int = 0, size: int = 256) -> list[tuple[str, Image.Image]]:
    """``n`` generated images that are not chest radiographs, in four kinds: Gaussian noise,
    rendered text, synthetic colour scenes (gradients and shapes) and flat images of one value."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, Image.Image]] = []
    words = ["lanic", "hub", "chest", "report", "invoice", "hello", "x-ray", "total", "2026", "page"]
    for i in range(n):
        kind = ("noise", "text", "colour", "flat")[i % 4]
        if kind == "noise":
            a = rng.normal(rng.uniform(60, 200), rng.uniform(10, 80), (size, size)).clip(0, 255)
            im = Image.fromarray(a.astype(np.uint8)).convert("RGB")
        elif kind == "text":
            im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(180, 256, 3)))
            d = ImageDraw.Draw(im)
            for line in range(int(rng.integers(4, 14))):
                text = " ".join(rng.choice(words, int(rng.integers(2, 6))))
                d.text(
                    (int(rng.integers(0, 40)), 10 + 18 * line),
                    text,
                    fill=tuple(int(v) for v in rng.integers(0, 90, 3)),
                )
        elif kind == "colour":
            y, x = np.mgrid[0:size, 0:size] / size
            c = rng.uniform(0, 1, (3, 3))
            a = np.stack([(c[j, 0] * x + c[j, 1] * y + c[j, 2]) % 1.0 for j in range(3)], -1) * 255
            im = Image.fromarray(a.astype(np.uint8))
            d = ImageDraw.Draw(im)
            for _ in range(int(rng.integers(2, 8))):
                x0, y0 = (int(v) for v in rng.integers(0, size - 40, 2))
                box = [x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120))]
                fill = tuple(int(v) for v in rng.integers(0, 256, 3))
                (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
        else:
            v = int(rng.integers(0, 256))
            im = Image.new("RGB", (size, size), (v, v, v))
        out.append((kind, im))
    return out


@torch.no_grad()
def flagged(model, images: list) -> np.ndarray:
    """(N,) bool: the model's guard flags each image (paths, PIL images or arrays)."""
    out = []
    for a in range(0, len(images), 64):
        o = model(embeddings=model.embed_images(images[a : a + 64]))
        out.append(o.out_of_distribution.cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def ood_figures(
    model, nih_root=None, n_other: int = 240, n_phantoms: int = 500, seed: int = 7100
) -> dict[str, Any]:
    """The guard's figures for ``model``: flagged shares among the NIH fixture images (when
    ``nih_root`` holds them), among ``n_other`` generated non-radiographs (per kind too), and among
    ``n_phantoms`` phantoms of a seed no model trained on (for a phantom model: the false-alarm rate)."""
    from pathlib import Path

    from ..data.phantom import generate

    if model.typicality() is None:
        raise ValueError("this model has no typicality reference (export it with this lanic-hub)")
    res: dict[str, Any] = {
        "threshold": model.config.typicality_threshold,
        "calibration": model.bank_meta.typicality,
    }
    if nih_root is not None and (Path(nih_root) / "labels.csv").is_file():
        import csv

        files = [Path(nih_root) / r["file"] for r in csv.DictReader((Path(nih_root) / "labels.csv").open())]
        f = flagged(model, [str(p) for p in files])
        res["nih"] = {"images": len(files), "flagged_share": float(f.mean()), "source": str(nih_root)}
    other = non_radiographs(n_other, seed)
    f = flagged(model, [im for _, im in other])
    kinds = np.array([k for k, _ in other])
    res["non_radiographs"] = {
        "images": len(other),
        "flagged_share": float(f.mean()),
        "by_kind": {k: float(f[kinds == k].mean()) for k in sorted(set(kinds))},
    }
    ph = [Image.fromarray(s.image).convert("RGB") for s in generate(n_phantoms, seed, progress=False)]
    res["held_out_phantoms"] = {
        "images": len(ph),
        "seed": seed,
        "flagged_share": float(flagged(model, ph).mean()),
    }
    return res
