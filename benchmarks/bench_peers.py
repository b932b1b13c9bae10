"""lanic-hub against its peers, side by side in one run, on the same data (issue 10).

Three trainers of ONE TopK sparse coder at paper width (d_in = d_out = 512, L = 2048, k = 32,
batch 1024, fp32, Adam at the same learning rate and cosine schedule, the same samples):

(a) lanic-hub: a one-member ``TranscoderEnsemble`` (plain TopK, no Matryoshka levels) trained
    by ``lanic_hub.transcoders.train.train_ensemble``, the production trainer;
(b) eai-sparsify: ``SparseCoder(transcode=True)`` stepped the way ``sparsify.Trainer`` steps it
    (fused encoder, FVU loss, gradient parallel to the decoder removed, unit-norm decoder);
(c) SAELens: ``TopKTrainingSAE`` trained by ``SAETrainer`` on an activation iterator. SAELens has
    no TopK transcoder trainer, so it autoencodes the targets (same shapes and FLOPs; its FVU is
    of a different task and is not compared).

Then the ensemble: lanic-hub's 100-member ensemble against 100 sequential runs of the best peer
(its per-member throughput), and the achieved fraction of a ``torch.matmul`` peak of the
encoder's own shape, measured in the same run. Peers that cannot be installed or run are rows
with the error. Install them with ``pip install -e '.[bench]'``.

Data: synthetic embeddings with sparse structure (x: unit vectors mixing 8-24 of 4,096 random
atoms), targets y = relu(x W + b) of width 512, as a classifier hidden layer would be.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any

import torch

D, H, L, K, BATCH = 512, 512, 2048, 32, 1024
LR = 1e-3


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(4096, D, generator=g), dim=1)
    n_act = torch.randint(8, 25, (n,), generator=g)
    idx = torch.randint(0, 4096, (n, 24), generator=g)
    coef = torch.rand(n, 24, generator=g) * (torch.arange(24) < n_act[:, None])
    x = torch.nn.functional.normalize(torch.einsum("nj,njd->nd", coef, atoms[idx]), dim=1)
    w = torch.randn(D, H, generator=g) / math.sqrt(D) * 3
    y = torch.relu(x @ w + 0.1 * torch.randn(H, generator=g))
    return x, y


def _fvu(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


# ----------------------------------------------------------------------------------- trainers
def train_lanic(x, y, xt, yt, members: int = 1) -> dict[str, Any]:
    from lanic_hub.transcoders import TrainConfig, TranscoderConfig
    from lanic_hub.transcoders.fidelity import fidelity
    from lanic_hub.transcoders.train import train_ensemble

    cfg = TranscoderConfig(d_in=D, d_out=H, n_latents=L, k=K, n_members=members, levels=(L,))
    tc = TrainConfig(epochs=1, batch_size=BATCH, lr=LR, warmup_steps=1)
    t = time.perf_counter()
    ens, _ = train_ensemble(x, y, cfg, tc, progress=False)
    s = time.perf_counter() - t
    fv = fidelity(ens, xt, yt)["fvu"]
    return {"seconds": s, "fvu": float(statistics.mean(fv[max(fv)]))}


def sparsify_step(sc, opt, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step as ``sparsify.Trainer`` takes it with the FVU loss and no AuxK."""
    out = sc(x, y)
    out.fvu.backward()
    sc.remove_gradient_parallel_to_decoder_directions()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sc.set_decoder_norm_to_unit_norm()


def train_sparsify(x, y, xt, yt) -> dict[str, Any]:
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    from sparsify import SparseCoder, SparseCoderConfig

    torch.manual_seed(0)
    sc = SparseCoder(D, SparseCoderConfig(num_latents=L, k=K, transcode=True))
    total = len(x) // BATCH
    opt = torch.optim.Adam(sc.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total))
    t = time.perf_counter()
    sc.b_dec.data = y[:BATCH].mean(0)  # as sparsify.Trainer does on its first batch
    for s in range(total):
        sl = slice(s * BATCH, (s + 1) * BATCH)
        sparsify_step(sc, opt, x[sl], y[sl])
        sched.step()
    sec = time.perf_counter() - t
    with torch.no_grad():
        fvu = _fvu(sc(xt, yt).sae_out, yt)
    return {"seconds": sec, "fvu": fvu}


def train_saelens(x, y, xt, yt) -> dict[str, Any]:
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    torch.manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=H, d_sae=L, k=K, device="cpu", dtype="float32"))
    n = (len(y) // BATCH) * BATCH
    cfg = SAETrainerConfig(
        total_training_samples=n,
        train_batch_size_samples=BATCH,
        lr=LR,
        lr_scheduler_name="cosineannealing",
        lr_end=0.0,
        device="cpu",
        logger=LoggingConfig(log_to_wandb=False),
    )

    def provider():
        while True:
            for s in range(0, n, BATCH):
                yield y[s : s + BATCH]

    import contextlib
    import io

    t = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        SAETrainer(cfg=cfg, sae=sae, data_provider=provider()).fit()
    sec = time.perf_counter() - t
    with torch.no_grad():
        fvu = _fvu(sae(yt), yt)
    return {"seconds": sec, "fvu": fvu, "note": "autoencodes y (SAELens has no TopK transcoder trainer)"}


def _peer(name: str, fn, *args) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # a missing or failing peer is a row with its error, not a crash
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        first = (str(exc).splitlines() or [""])[0][:200]
        return {"error": f"{type(exc).__name__}: {first} ({os.path.basename(where.filename)}:{where.lineno})"}


def matmul_peak(T: int, repeats: int = 3) -> float:
    a, w = torch.randn(BATCH, D), torch.randn(D, T * L)
    torch.matmul(a, w)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, w)
        ts.append(time.perf_counter() - t)
    return 2 * BATCH * D * T * L / statistics.median(ts)


def ensemble_throughput(x, y, T: int, steps: int, repeats: int = 2) -> dict[str, Any]:
    """Member-samples/s of the T-member ensemble's training step as the production trainer takes
    it (cache-sized member chunks, sparse encoder backward, fused Adam, decoder renormalisation),
    median over repeats."""
    from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble
    from lanic_hub.transcoders.train import TrainConfig, ensemble_grads, make_adam

    cfg = TranscoderConfig(d_in=D, d_out=H, n_latents=L, k=K, n_members=T, levels=(L,))
    ens = TranscoderEnsemble(cfg)
    ens.init_from_data(x[: 4 * BATCH], y[: 4 * BATCH])
    opt = make_adam(ens.parameters(), LR)
    var = (y - y.mean(0)).pow(2).sum(1).mean() * BATCH
    chunk = max(1, TrainConfig().chunk_latents // L)  # the production trainer's CPU chunking

    def run() -> None:
        for s in range(steps):
            sl = slice(s * BATCH, (s + 1) * BATCH)
            ensemble_grads(ens, x[sl], y[sl], var, None, chunk)
            opt.step()
            ens.normalize_decoder()

    run()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t)
    sec = statistics.median(ts)
    return {"seconds_per_step": sec / steps, "member_samples_per_s": T * BATCH * steps / sec}


def main(n_train: int = 65536, repeats: int = 3, T: int = 100) -> dict[str, Any]:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    x, y = make_data(n_train + 8192)
    x, y, xt, yt = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    rows: dict[str, Any] = {}
    for name, fn in [
        ("lanic-hub", train_lanic),
        ("eai-sparsify", train_sparsify),
        ("SAELens", train_saelens),
    ]:
        runs = [_peer(name, fn, x, y, xt, yt) for _ in range(repeats)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            rows[name] = runs[0]
        else:
            sec = statistics.median(r["seconds"] for r in ok)
            rows[name] = {
                "samples_per_s": n_train / sec,
                "fvu": statistics.median(r["fvu"] for r in ok),
                "runs": len(ok),
                **({"note": ok[0]["note"]} if "note" in ok[0] else {}),
            }
        print(f"  {name}: {rows[name]}", flush=True)
    # the ensemble: member-samples/s at T members, and a 4-member run trained on the same samples
    # as (a) for the members' FVU (members are independent, so T does not change it)
    ens = ensemble_throughput(x, y, T, steps=3, repeats=3)
    ens["fvu_mean_4_members"] = train_lanic(x, y, xt, yt, members=4)["fvu"]
    peak = matmul_peak(T)
    ens["achieved_gflops_dense_equivalent"] = 4 * D * L * ens["member_samples_per_s"] / 1e9
    ens["achieved_gflops_performed"] = (2 * D * L + 2 * K * D + 6 * K * H) * ens["member_samples_per_s"] / 1e9
    ens["matmul_peak_gflops"] = peak / 1e9
    ens["fraction_of_peak"] = ens["achieved_gflops_performed"] * 1e9 / peak
    peers = {k: v for k, v in rows.items() if k != "lanic-hub" and "samples_per_s" in v}
    best = max(peers, key=lambda k: peers[k]["samples_per_s"], default=None)
    if best:
        ens["best_peer"] = best
        ens["ratio_vs_best_peer_per_member"] = ens["member_samples_per_s"] / peers[best]["samples_per_s"]
    if "samples_per_s" in rows.get("eai-sparsify", {}):
        ens["ratio_vs_sparsify_per_member"] = (
            ens["member_samples_per_s"] / rows["eai-sparsify"]["samples_per_s"]
        )
    rows[f"lanic-hub ensemble T={T}"] = ens
    print(f"  ensemble T={T}: {ens}", flush=True)
    return {
        "data": f"synthetic: {n_train} train / 8192 held-out pairs, d_in = d_out = {D}",
        "shape": f"L={L} k={K} batch={BATCH} fp32, {torch.get_num_threads()} threads",
        "rows": rows,
    }


if __name__ == "__main__":
    main()
