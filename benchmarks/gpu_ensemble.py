"""GPU, paper scale: the 100-member ensemble on 377k synthetic embeddings, the sequential loop and
eai-sparsify on the same GPU, and MS for all 204,800 latents. Writes benchmarks/results/gpu.json.

    python -m benchmarks.gpu_ensemble             # on a CUDA machine (benchmarks/gpu.sh runs it)
    python -m benchmarks.gpu_ensemble --smoke     # tiny sizes on CPU: checks the script runs

Rows (keys match benchmarks/report.py): "ensemble" (seconds per epoch at T=100, d=512, H=256,
L=2048, k=32, batch 4096), "loop" (the same members trained one by one as plain nn.Module TopK
transcoders, timed on 2 members and scaled; ratio), "sparsify" (eai-sparsify's SparseCoder with
its Triton kernels, d_in = d_out = 512, against the ensemble at H = 512), "ms" (one streaming pass
of ScoreAccumulator over every latent's codes), plus "extract" merged from gpu_extract.json.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch


def _sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def _data(n: int, d: int, H: int, dev: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device=dev).manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(n, d, device=dev, generator=g), dim=1)
    w = torch.randn(d, H, device=dev, generator=g) / math.sqrt(d) * 3
    return e, torch.relu(e @ w)


def time_ensemble(e, h, T, L, k, batch, steps, dev) -> dict:
    from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble
    from lanic_hub.transcoders.train import ensemble_grads, make_adam

    cfg = TranscoderConfig(d_in=e.shape[1], d_out=h.shape[1], n_latents=L, k=k, n_members=T)
    ens = TranscoderEnsemble(cfg).to(dev)
    ens.init_from_data(e[:8192], h[:8192])
    opt = make_adam(ens.parameters(), 1e-3)
    var = (h[:8192] - h[:8192].mean(0)).pow(2).sum(1).mean() * batch

    def step(s: int) -> None:
        sl = slice((s * batch) % (len(e) - batch), (s * batch) % (len(e) - batch) + batch)
        ensemble_grads(ens, e[sl], h[sl], var, None, T)  # the whole ensemble as one chunk on GPU
        opt.step()
        ens.normalize_decoder()

    for s in range(3):
        step(s)
    _sync(dev)
    t = time.perf_counter()
    for s in range(steps):
        step(s)
    _sync(dev)
    per_step = (time.perf_counter() - t) / steps
    return {"seconds_per_step": per_step, "member_samples_per_s": T * batch / per_step, "ensemble": ens}


def time_loop(e, h, L, k, batch, steps, members, dev) -> float:
    """Seconds per member-step of plain nn.Module TopK transcoders trained one after another."""
    from .bench_ensemble import PlainTranscoder

    total = 0.0
    for _ in range(members):
        m = PlainTranscoder(e.shape[1], h.shape[1], L, k).to(dev)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        var = (h[:batch] - h[:batch].mean(0)).pow(2).sum()
        for _ in range(2):  # warm-up
            m.train_step(opt, e[:batch], h[:batch], var)
        _sync(dev)
        t = time.perf_counter()
        for s in range(steps):
            m.train_step(opt, e[s * batch : (s + 1) * batch], h[s * batch : (s + 1) * batch], var)
        _sync(dev)
        total += (time.perf_counter() - t) / steps
    return total / members


def time_sparsify(e, h, L, k, batch, steps, dev) -> dict:
    try:
        from sparsify import SparseCoder, SparseCoderConfig

        from .bench_peers import sparsify_step
    except ImportError as exc:
        return {"error": f"eai-sparsify not installed ({exc}); pip install -e '.[bench]'"}
    sc = SparseCoder(e.shape[1], SparseCoderConfig(num_latents=L, k=k, transcode=True), device=dev)
    opt = torch.optim.Adam(sc.parameters(), lr=1e-3)
    for s in range(steps + 2):
        if s == 2:
            _sync(dev)
            t = time.perf_counter()
        sparsify_step(sc, opt, e[s * batch : (s + 1) * batch], h[s * batch : (s + 1) * batch])
    _sync(dev)
    per = (time.perf_counter() - t) / steps
    return {"seconds_per_member_step": per, "samples_per_s": batch / per}


def time_ms(ens, e, chunk: int, dev: str) -> dict:
    from lanic_hub.patterns.scores import ScoreAccumulator

    T, L = ens.cfg.n_members, ens.cfg.n_latents
    acc = ScoreAccumulator(T * L, e.shape[1], dev)
    off = torch.arange(T, device=dev).view(1, T, 1) * L
    _sync(dev)
    t = time.perf_counter()
    with torch.no_grad():
        for a in range(0, len(e), chunk):
            x = e[a : a + chunk]
            v, i = ens.encode(x)
            z = torch.zeros(len(x), T * L, device=dev)  # dense codes: Σ a ê is one fp64 matmul
            z.scatter_(1, (i + off).reshape(len(x), -1), v.reshape(len(x), -1))
            acc.add_dense(z, x)
    stats = acc.result()
    _sync(dev)
    return {
        "seconds": time.perf_counter() - t,
        "latents": T * L,
        "rows": len(e),
        "finite_ms": int(torch.isfinite(stats.ms).sum()),
    }


def main(argv: list[str]) -> dict:
    smoke = "--smoke" in argv
    dev = "cpu" if smoke else "cuda"
    if smoke:
        import os

        os.environ["SPARSIFY_DISABLE_TRITON"] = "1"  # Triton needs a GPU
    if not smoke:
        assert torch.cuda.is_available(), "no CUDA device"
    n, T, L, k, batch, steps = (4096, 4, 256, 8, 512, 2) if smoke else (377_000, 100, 2048, 32, 4096, 20)
    res: dict = {
        "device": "cpu (smoke)" if smoke else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
    }
    e, h = _data(n, 512, 256, dev)
    ens = time_ensemble(e, h, T, L, k, batch, steps, dev)
    epoch = ens["seconds_per_step"] * math.ceil(n / batch)
    res["ensemble"] = {
        "seconds_per_epoch": epoch,
        "member_samples_per_s": ens["member_samples_per_s"],
        "summary": f"{epoch:.1f} s/epoch ({n} embeddings, batch {batch}); "
        f"{ens['member_samples_per_s']:.3g} member-samples/s",
    }
    loop = time_loop(e, h, L, k, batch, steps, 2, dev)
    ratio = loop * T / ens["seconds_per_step"]
    res["loop"] = {
        "seconds_per_member_step": loop,
        "ratio": ratio,
        "summary": f"{ratio:.1f}x (loop {loop * T:.2f} s vs ensemble {ens['seconds_per_step']:.3f} s "
        "per step of all members)",
    }
    res["ms"] = time_ms(ens["ensemble"], e, 1024, dev)
    res["ms"]["summary"] = f"{res['ms']['seconds']:.1f} s for {res['ms']['latents']} latents x {n} embeddings"
    del ens
    e5, h5 = _data(min(n, 65536), 512, 512, dev)
    ens5 = time_ensemble(e5, h5, T, L, k, batch, max(2, steps // 2), dev)
    try:
        sp = time_sparsify(e5, h5, L, k, batch, max(2, steps // 2), dev)
    except Exception as exc:  # a peer that fails to run is a row with its error
        sp = {"error": f"{type(exc).__name__}: {exc}"}
    if "error" in sp:
        res["sparsify"] = {**sp, "summary": sp["error"]}
    else:
        r = ens5["member_samples_per_s"] / sp["samples_per_s"]
        res["sparsify"] = {
            **sp,
            "ensemble_member_samples_per_s": ens5["member_samples_per_s"],
            "ratio": r,
            "summary": f"{r:.2f}x per member (d_in = d_out = 512)",
        }
    ext = Path("benchmarks/results/gpu_extract.json")
    if ext.is_file() and not smoke:
        x = json.loads(ext.read_text())
        res["extract"] = {
            **x,
            "summary": f"{x['extract_img_s_bf16']:.0f} img/s extraction, "
            f"{x['raw_forward_img_s_bf16']:.0f} img/s raw forward (bf16)",
        }
    out = Path("benchmarks/results/gpu_smoke.json" if smoke else "benchmarks/results/gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
