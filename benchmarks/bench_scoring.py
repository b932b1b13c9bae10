"""The bank's two scoring passes at paper shape, side by side with the encoder alone (target: each
pass at >= 0.5x the encoder's own throughput, issue 19).

A paper-shape ensemble (T = 100, L = 2048, k = 32, d = 512, H = 256) with random weights (a pass
costs the same for any weights of this shape: B*T*k codes a batch), over a real embeddings folder
of N random unit rows written here (2 shards, the layout `lanic-hub embed` writes). The sides run
interleaved (encoder, pass 1, pass 2, encoder, ...) and each ratio is the median of the paired
ratios. Pass 2 scores 17,150 candidate patterns, the count a 20k-phantom paper-shape run merged,
each a random group of alive latents.

    python -m benchmarks scoring          # LANIC_BENCH_SCORING_ROWS=2048 by default
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lanic_hub.utils.system import peak_rss_gb


def write_embeddings(folder: Path, n: int, d: int, seed: int = 0, shards: int = 2) -> Path:
    """An embeddings folder of ``n`` random unit rows (float16), as `lanic-hub embed` lays it out."""
    from safetensors.torch import save_file

    from lanic_hub.backbone.embed import MANIFEST_VERSION, shard_path

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    size = -(-n // shards)
    for k in range(shards):
        rows = torch.arange(k * size, min(n, (k + 1) * size))
        save_file({"row_ids": rows, "image": x[rows].half().contiguous()}, shard_path(folder, k))
    man = {
        "version": MANIFEST_VERSION,
        "backbone": {"spec": "random unit rows (benchmark)"},
        "dataset": {"fingerprint": "bench", "rows": n},
        "dtype": "float16",
        "text": False,
        "shard_size": size,
        "shards": shards,
    }
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def main() -> dict:
    from lanic_hub.patterns import BankConfig
    from lanic_hub.patterns.merge import Merge
    from lanic_hub.patterns.phases import Candidates, Stream, sample_rows, score_latents, score_patterns
    from lanic_hub.patterns.store import RowStore
    from lanic_hub.transcoders.ensemble import TranscoderConfig, TranscoderEnsemble

    T, L, k, d, H = 100, 2048, 32, 512, 256
    n = int(os.environ.get("LANIC_BENCH_SCORING_ROWS", 2048))
    repeats = int(os.environ.get("LANIC_BENCH_SCORING_REPEATS", 3))
    cfg = BankConfig()
    ens = TranscoderEnsemble(TranscoderConfig(d_in=d, d_out=H, n_latents=L, k=k, n_members=T)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        store = RowStore(write_embeddings(Path(tmp) / "emb", n, d))
        stream = Stream(store, store, cfg.batch_size, progress=False)
        sample = sample_rows(n, cfg)
        times: dict[str, list[float]] = {
            "encoder": [],
            "pass 1 (latent scores)": [],
            "pass 2 (pattern scores)": [],
        }
        cand = scan = None
        with torch.no_grad():
            for _ in range(repeats):
                t = time.perf_counter()
                bias = ens.encoder_bias()
                for _pos, e, _ in stream("encoder"):
                    ens.encode(e, bias=bias)
                times["encoder"].append(time.perf_counter() - t)
                t = time.perf_counter()
                scan = score_latents(ens, stream, sample, cfg)
                times["pass 1 (latent scores)"].append(time.perf_counter() - t)
                if cand is None:
                    alive = (scan.stats.frequency > 0).nonzero(as_tuple=True)[0]
                    g = torch.Generator().manual_seed(1)
                    P = 17_150
                    pid = torch.randint(0, P, (len(alive),), generator=g)
                    support = torch.bincount(pid, minlength=P).clamp(min=1)
                    pattern_of = torch.full((T * L,), -1, dtype=torch.long)
                    pattern_of[alive] = pid
                    cand = Candidates(alive, None, Merge(pid, support, alive[:P]), pattern_of)
                t = time.perf_counter()
                score_patterns(ens, stream, sample, cand, scan, cfg.gallery_size)
                times["pass 2 (pattern scores)"].append(time.perf_counter() - t)
    enc = np.array(times["encoder"])
    rows = []
    for name, ts in times.items():
        ts = np.array(ts)
        ratio = enc / ts  # paired: each pass against the encoder run just before it
        rows.append(
            {
                "stage": name,
                "s_median": float(np.median(ts)),
                "images_per_s": float(n / np.median(ts)),
                "throughput_vs_encoder_median": float(np.median(ratio)),
                "throughput_vs_encoder_range": [float(ratio.min()), float(ratio.max())],
            }
        )
        print(
            f"{name:<26} {np.median(ts):7.2f} s  {n / np.median(ts):7.1f} img/s  "
            f"{np.median(ratio):.2f}x the encoder ({ratio.min():.2f}-{ratio.max():.2f})",
            flush=True,
        )
    return {
        "measured_on": f"{n} random unit rows (d = {d}), paper-shape random-weight ensemble "
        f"(T = {T}, L = {L}, k = {k}), batch {cfg.batch_size}, {torch.get_num_threads()} torch threads, "
        f"{repeats} interleaved repeats",
        "rows": rows,
        "target_throughput_vs_encoder": 0.5,
        "peak_rss_gb": peak_rss_gb(),
    }


if __name__ == "__main__":
    main()
