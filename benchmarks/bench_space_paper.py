"""The Space with a paper-shape model (T = 100, L = 2048, k = 32) and a bank of thousands of
patterns: ``LanICModel.from_pretrained`` time, explain latency on the callback and over HTTP,
pattern search latency, and 20 concurrent gradio_client users (the same measurements as
``bench_demo``, :func:`benchmarks.bench_demo.measure_space`). Runs only when named, on a model
folder you built (about 35 minutes on 2 cores; commands below):

    # the 20k phantoms that `python -m benchmarks scale` renders
    R=~/.cache/lanic-hub/bench-scale/phantoms-20000-seed11/mimic-cxr-jpg
    lanic-hub embed --data "mimic:$R?reports=$R" --backbone phantom --no-text --out runs/p100/emb
    lanic-hub train --embeddings runs/p100/emb --out runs/p100/train --preset paper --steps 70
    lanic-hub patterns --model runs/p100/train --embeddings runs/p100/emb
    lanic-hub export --model runs/p100/train --out runs/p100/model
    LANIC_BENCH_PAPER_MODEL=runs/p100/model LANIC_BENCH_PAPER_IMAGE=<a phantom JPEG under $R> \\
        python -m benchmarks space_paper

70 steps is the short schedule of the issue-19 run: 1,968 selected patterns here (2,413 in that
run). Such an ensemble is far from converged (full-level FVU 0.53; its health checks say so), but
the Space's cost depends on the shapes and the bank's size, not on how well it converged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> dict:
    from lanic_hub.demo import Demo
    from lanic_hub.modeling import LanICModel

    from .bench_demo import measure_space

    folder = os.environ.get("LANIC_BENCH_PAPER_MODEL")
    if not folder or not (Path(folder) / "config.json").is_file():
        print("set LANIC_BENCH_PAPER_MODEL to a paper-shape model folder (this module's docstring); skipped")
        return {"skipped": "LANIC_BENCH_PAPER_MODEL is not a model folder"}
    image = os.environ.get("LANIC_BENCH_PAPER_IMAGE")
    if not image or not Path(image).is_file():
        print("set LANIC_BENCH_PAPER_IMAGE to an image file; skipped")
        return {"skipped": "LANIC_BENCH_PAPER_IMAGE is not a file"}
    t = time.perf_counter()
    model = LanICModel.from_pretrained(folder)
    load_s = time.perf_counter() - t
    cfg = model.config.transcoder_config()
    shape = f"T = {cfg.n_members}, L = {cfg.n_latents}, k = {cfg.k}"
    print(f"from_pretrained: {load_s:.1f} s ({shape}, {len(model.bank)} patterns)")
    with tempfile.TemporaryDirectory() as tmp:  # the app serves files from the temp folder
        local = str(shutil.copy(image, Path(tmp) / Path(image).name))
        res = measure_space(Demo(model, [(local, "benchmark image")]), local, f"paper-shape model, {shape}")
    files = [f for f in Path(folder).rglob("*") if f.is_file()]
    return res | {
        "from_pretrained_s": load_s,
        "shape": shape,
        "image": Path(image).name,
        "bank_counts": model.bank.meta.counts,
        "folder_mb": sum(f.stat().st_size for f in files) / 2**20,
        "folder_files": len(files),
    }
