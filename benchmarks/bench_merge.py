"""The merge at paper shape (target: <= 60 s on 2 cores) and side by side with the one-leader-at-a-time
definition it reproduces (the same patterns, faster).

Synthetic latents shaped like a paper-scale bank: T = 100 members with 1,000 alive latents each
(a 20k-phantom paper-shape run had 98,190 alive of 204,800), d = 512 encoder directions, activation
profiles on 4,096 sample rows, 17,000 concepts each found by some members (noisy directions and
firing), 30% noise latents. The side-by-side pair runs at T = 100 x 150 alive latents, alternating
the two (A B A B ...), and reports the median of the paired ratios.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lanic_hub.utils.system import peak_rss_gb, reset_peak_rss


def clustered_latents(
    alive_per: int, concepts: int, T: int = 100, d: int = 512, n: int = 4096, seed: int = 0
):
    """(directions (M, d), profiles (n, M), member (M,), priority (M,)) of a synthetic bank."""
    g = torch.Generator().manual_seed(seed)
    M = T * alive_per
    C = torch.nn.functional.normalize(torch.randn(concepts, d, generator=g), dim=1)
    conc = torch.randint(0, concepts, (M,), generator=g)
    noise = torch.rand(M, generator=g) < 0.3
    dirs = C[conc] + 0.02 * torch.randn(M, d, generator=g)
    dirs[noise] = torch.randn(int(noise.sum()), d, generator=g)
    fire = torch.rand(concepts, n, generator=g) < 0.016
    prof = torch.zeros(n, M)
    for a in range(0, M, 8192):
        b = min(M, a + 8192)
        f = fire[conc[a:b]].T.float() * (1 + 0.2 * torch.rand(n, b - a, generator=g))
        nz = noise[a:b]
        f[:, nz] = (torch.rand(n, int(nz.sum()), generator=g) < 0.016).float()
        prof[:, a:b] = f
    member = torch.arange(M) // alive_per
    return dirs, prof, member, (prof > 0).float().mean(0)


def main() -> dict:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lanic_hub.patterns.merge import fast_prefilter_dtype, merge_latents
    from lanic_hub.patterns.table import SampleTable
    from tests.patterns.reference_merge import merge_one_leader_at_a_time

    # side by side, alternating, on a bank small enough for the one-leader-at-a-time definition
    dirs, prof, member, freq = clustered_latents(150, 2500)
    cand = torch.ones(len(freq), dtype=torch.bool)
    ratios, same = [], True
    for _ in range(3):
        t = time.perf_counter()
        ref = merge_one_leader_at_a_time(dirs, prof, member, cand, freq)
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        got = merge_latents(dirs, prof, member, cand, freq)
        t_new = time.perf_counter() - t
        ratios.append(t_ref / t_new)
        same &= torch.equal(ref.pattern_of, got.pattern_of) and torch.equal(ref.leader, got.leader)
    side = {
        "latents": len(freq),
        "patterns": len(got.support),
        "median_ratio": float(np.median(ratios)),
        "ratio_spread": [float(min(ratios)), float(max(ratios))],
        "same_patterns": bool(same),
    }
    del dirs, prof
    # paper shape
    dirs, prof, member, freq = clustered_latents(1000, 17000)
    rss0 = peak_rss_gb()
    reset_peak_rss()
    every = torch.ones(len(freq), dtype=torch.bool)
    auto = fast_prefilter_dtype()
    t = time.perf_counter()
    m = merge_latents(dirs, prof, member, every, freq)
    secs = time.perf_counter() - t
    fp32 = {}
    if auto != torch.float32:  # the float32 pre-filter beside it: the same patterns, slower
        t = time.perf_counter()
        m32 = merge_latents(dirs, prof, member, every, freq, prefilter_dtype=torch.float32)
        s32 = time.perf_counter() - t
        fp32 = {
            "seconds_float32_prefilter": s32,
            "ratio_float32_over_auto": s32 / secs,
            "same_patterns_as_float32": bool(
                torch.equal(m.pattern_of, m32.pattern_of) and torch.equal(m.leader, m32.leader)
            ),
        }
    # the bank build's own input: the profiles as a sparse sample table (columns built on demand)
    r, c = prof.nonzero(as_tuple=True)
    table = SampleTable.from_entries(r, c, prof[r, c], prof.shape)
    del r, c
    t = time.perf_counter()
    ms = merge_latents(dirs, table, member, every, freq)
    s_sparse = time.perf_counter() - t
    sparse = {
        "seconds_sparse_table": s_sparse,
        "sparse_table_entries": len(table.vals),
        "same_patterns_sparse_as_dense": bool(
            torch.equal(m.pattern_of, ms.pattern_of) and torch.equal(m.leader, ms.leader)
        ),
    }
    paper = {
        "prefilter_dtype": str(auto).removeprefix("torch."),
        **fp32,
        **sparse,
        "latents": len(freq),
        "sample_rows": prof.shape[0],
        "patterns": len(m.support),
        "merged_patterns": int((m.support > 1).sum()),
        "seconds": secs,
        "peak_rss_gb": peak_rss_gb(),
        "peak_rss_gb_before_merge": rss0,
    }
    print(
        f"merge at paper shape: {paper['latents']} latents -> {paper['patterns']} patterns in {secs:.1f} s "
        f"(target 60; {paper['prefilter_dtype']} pre-filter"
        + (
            f", float32 pre-filter {fp32['seconds_float32_prefilter']:.1f} s, same patterns: "
            f"{fp32['same_patterns_as_float32']}"
            if fp32
            else ""
        )
        + f"; from the sparse table {s_sparse:.1f} s, same patterns: "
        f"{sparse['same_patterns_sparse_as_dense']}"
        + f"); vs one leader at a time on {side['latents']} latents: {side['median_ratio']:.1f}x "
        f"(median of {len(ratios)} alternating pairs), same patterns: {side['same_patterns']}"
    )
    return {"paper_shape": paper, "side_by_side": side}


if __name__ == "__main__":
    main()
