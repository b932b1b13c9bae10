"""Ensemble training speed, side by side in one run, on the same data, steps and config:

(a) the TranscoderEnsemble module (one wide encoder matmul, sparse decode);
(b) a Python loop over plain nn.Module TopK transcoders, one member after the other, as research
    code does (dense decode through nn.Linear).

Also the achieved FLOP/s of (a) against a torch.matmul peak of the encoder's shape measured in the
same run. Targets on CPU: (a) >= 1.5x faster than (b); >= 70 % of the matmul peak.
FLOPs are counted two ways: dense-equivalent (encoder forward 2*B*d*T*L plus its dense weight
gradient 2*B*d*T*L, what (b) computes), and performed (the encoder forward plus the sparse
gradient and sparse decoder that (a) actually computes, 2*B*T*(d*L + k*d + 3*k*H)). The time of
the encoder matmul and TopK alone (forward, no gradients) bounds the performed fraction.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble
from lanic_hub.transcoders.train import TrainConfig, ensemble_grads, make_adam


class PlainTranscoder(nn.Module):
    """A single TopK transcoder written the straightforward way."""

    def __init__(self, d: int, h: int, L: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.b_pre = nn.Parameter(torch.zeros(d))
        self.enc = nn.Linear(d, L)
        self.dec = nn.Linear(L, h)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.enc(e - self.b_pre))
        v, i = pre.topk(self.k, dim=-1)
        return self.dec(torch.zeros_like(pre).scatter(-1, i, v))

    def train_step(self, opt, e: torch.Tensor, h: torch.Tensor, var: torch.Tensor) -> None:
        """One optimisation step the way research code writes it; decoder columns kept unit-norm."""
        loss = (self(e) - h).pow(2).sum() / var
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            self.dec.weight.div_(self.dec.weight.norm(dim=0, keepdim=True).clamp(min=1e-8))


def _time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run(
    d: int,
    H: int,
    L: int,
    k: int,
    T: int,
    batch: int,
    steps: int,
    loop_members: int,
    repeats: int = 3,
) -> dict:
    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(batch * steps, d), dim=1)
    h = torch.relu(e @ torch.randn(d, H) * 0.3)
    var = (h - h.mean(0)).pow(2).sum(1).mean() * batch
    cfg = TranscoderConfig(d_in=d, d_out=H, n_latents=L, k=k, n_members=T, levels=(L,), aux_coef=0)
    ens = TranscoderEnsemble(cfg)
    ens.init_from_data(e, h)
    opt = make_adam(ens.parameters(), 1e-3)  # the production optimizer (fused where available)
    chunk = max(1, TrainConfig().chunk_latents // L)  # and its CPU member chunks

    def ensemble_epoch():
        for s in range(steps):
            sl = slice(s * batch, (s + 1) * batch)
            ensemble_grads(ens, e[sl], h[sl], var, None, chunk)
            opt.step()
            ens.normalize_decoder()

    members = [PlainTranscoder(d, H, L, k) for _ in range(loop_members)]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in members]

    def loop_epoch():
        for m, o in zip(members, opts, strict=True):
            for s in range(steps):
                m.train_step(o, e[s * batch : (s + 1) * batch], h[s * batch : (s + 1) * batch], var)

    ensemble_epoch()  # warm-up
    loop_epoch()
    t_ens = _time(ensemble_epoch, repeats)
    t_loop = _time(loop_epoch, repeats) * T / loop_members
    a, w = torch.randn(batch, d), torch.randn(d, T * L)
    torch.matmul(a, w)
    t_mm = _time(lambda: [torch.matmul(a, w) for _ in range(5)], repeats) / 5
    peak = 2 * batch * d * T * L / t_mm

    def select_only():  # the encoder matmul and the TopK alone, chunk by chunk as in training
        with torch.no_grad():
            for s in range(steps):
                for a in range(0, T, chunk):
                    ens.member_chunk(a, min(T, a + chunk)).encode(e[s * batch : (s + 1) * batch])

    select_only()
    t_select = _time(select_only, repeats)
    achieved = 4 * batch * d * T * L * steps / t_ens  # dense-equivalent: what the loop computes
    # performed: encoder forward, sparse encoder gradient, sparse decoder forward and backward
    performed = (2 * d * L + 2 * k * d + 6 * k * H) * T * batch * steps / t_ens
    return {
        "shape": f"d={d} H={H} L={L} k={k} T={T} batch={batch}",
        "ensemble_s": t_ens,
        "loop_s": t_loop,
        "speedup": t_loop / t_ens,
        "member_samples_per_s": T * batch * steps / t_ens,
        "matmul_peak_gflops": peak / 1e9,
        "achieved_gflops": achieved / 1e9,
        "fraction_of_peak": achieved / peak,
        "performed_gflops": performed / 1e9,
        "performed_fraction_of_peak": performed / peak,
        # what the forward matmul + TopK alone leave: the bound on the performed fraction with
        # every other part of the step (decoder, gradients, Adam) free
        "select_only_s": t_select,
        "performed_fraction_ceiling": performed * t_ens / t_select / peak,
        "loop_members_timed": loop_members,
    }


def step_vs_floor(
    d: int = 256, H: int = 256, L: int = 2048, k: int = 32, T: int = 10, batch: int = 4096, repeats: int = 5
) -> dict:
    """A whole training step (gradients, fused Adam, unit-norm decoders) with autograd (A) and
    written out (B, :func:`lanic_hub.transcoders.step.topk_step`), against the encoder matmul +
    TopK alone (F, the floor), interleaved A B F A B F ... on the same batch and weights, with
    the default Matryoshka levels and AuxK on (a quarter of the latents counted dead)."""
    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(batch, d), dim=1)
    h = torch.relu(e @ torch.randn(d, H) * 0.3)
    var = (h - h.mean(0)).pow(2).sum(1).mean() * batch
    cfg = TranscoderConfig(d_in=d, d_out=H, n_latents=L, k=k, n_members=T)
    ens = TranscoderEnsemble(cfg)
    ens.init_from_data(e, h)
    opt = make_adam(ens.parameters(), 1e-3)
    chunk = max(1, TrainConfig().chunk_latents // L)
    dead = torch.rand(T, L, generator=torch.Generator().manual_seed(1)) < 0.25

    def step(explicit: bool):
        def run():
            ensemble_grads(ens, e, h, var, dead, chunk, explicit=explicit)
            opt.step()
            ens.normalize_decoder()

        return run

    buffer = torch.empty(batch * chunk * L)

    def floor():  # at its fastest: one buffer for every chunk's pre-activations, as the step has
        with torch.no_grad():
            for a in range(0, T, chunk):
                part = ens.member_chunk(a, min(T, a + chunk))
                part.codes_from_preacts(part.preacts(e, relu=False, out=buffer))

    # the same gradients, first: both steps from the same weights
    grads = {}
    for explicit in (False, True):
        ensemble_grads(ens, e, h, var, dead, chunk, explicit=explicit)
        grads[explicit] = {n: p.grad.clone() for n, p in ens.named_parameters()}
    diff = max(float((grads[True][n] - grads[False][n]).abs().max()) for n in grads[True])
    scale = max(float(grads[False][n].abs().max()) for n in grads[False])
    times: dict[str, list[float]] = {"autograd": [], "explicit": [], "floor": []}
    fns = {"autograd": step(False), "explicit": step(True), "floor": floor}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {n: statistics.median(v) for n, v in times.items()}
    paired = [a / b for a, b in zip(times["autograd"], times["explicit"], strict=True)]
    return {
        "shape": f"d={d} H={H} L={L} k={k} T={T} batch={batch}",
        "levels": list(cfg.resolved_levels),
        "repeats": repeats,
        "median_s": med,
        "times_s": times,
        "autograd_over_floor": med["autograd"] / med["floor"],
        "explicit_over_floor": med["explicit"] / med["floor"],
        "speedup": med["autograd"] / med["explicit"],
        "speedup_paired": [min(paired), max(paired)],
        "max_grad_diff": diff,
        "max_grad": scale,
    }


def main() -> dict:
    torch.set_num_threads(2)
    sf = step_vs_floor()
    print(
        f"training step, {sf['shape']}, levels {sf['levels']}, AuxK on, interleaved x{sf['repeats']}: "
        f"autograd {sf['median_s']['autograd']:.3f} s, explicit {sf['median_s']['explicit']:.3f} s, "
        f"matmul + TopK alone {sf['median_s']['floor']:.3f} s -> {sf['autograd_over_floor']:.2f}x and "
        f"{sf['explicit_over_floor']:.2f}x the floor (target <= 1.3); explicit {sf['speedup']:.2f}x "
        f"faster (paired {sf['speedup_paired'][0]:.2f}-{sf['speedup_paired'][1]:.2f}); gradients "
        f"differ by at most {sf['max_grad_diff']:.1e} (largest entry {sf['max_grad']:.1e})",
        flush=True,
    )
    rows = [
        run(256, 256, 256, 8, 100, 512, 4, loop_members=20),  # the phantom preset
        run(512, 256, 2048, 32, 10, 4096, 2, loop_members=5, repeats=2),
    ]  # paper width and the paper preset's batch, 10 members
    for r in rows:
        print(
            f"{r['shape']}: ensemble {r['ensemble_s']:.2f} s vs loop {r['loop_s']:.2f} s "
            f"(loop timed on {r['loop_members_timed']} members, scaled) -> {r['speedup']:.2f}x "
            "(target >= 1.5); "
            f"{r['member_samples_per_s']:.0f} member-samples/s; dense-equivalent "
            f"{r['achieved_gflops']:.0f} GFLOP/s = {r['fraction_of_peak']:.0%} of the "
            f"{r['matmul_peak_gflops']:.0f} GFLOP/s matmul peak, performed "
            f"{r['performed_gflops']:.0f} GFLOP/s = {r['performed_fraction_of_peak']:.0%} (target >= 70%); "
            f"the encoder matmul + TopK alone take {r['select_only_s']:.2f} s: at most "
            f"{r['performed_fraction_ceiling']:.0%} with the rest of the step free"
        )
    return {"rows": rows, "step_floor": sf}


if __name__ == "__main__":
    main()
