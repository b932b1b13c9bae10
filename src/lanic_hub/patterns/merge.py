"""Merge latents of different members into patterns (pure function on tensors).

Two latents are the same pattern when their encoder directions point the same way (cosine) AND
they fire on the same samples (Pearson correlation of their activations). Leader clustering:
the most frequent unassigned latent founds a pattern; from every other member, the unassigned
latent most correlated with the leader joins if it passes both thresholds. A pattern thus holds
at most one latent per member, and its **support** (how many members found it) is its size.
Comparisons are only ever against the leader, so patterns do not chain.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import numpy as np
import torch

from .table import SampleTable


class Merge(NamedTuple):
    pattern_of: torch.Tensor
    """(M,) pattern id of each latent, -1 for latents left out (dead, or not given)."""
    support: torch.Tensor
    """(P,) number of members whose latent joined each pattern."""
    leader: torch.Tensor
    """(P,) latent id that founded each pattern."""


def standardize(profiles: torch.Tensor) -> torch.Tensor:
    """Columns of (n, M) activations scaled so that ``a.T @ b / n`` is their Pearson correlation;
    a constant column becomes zeros (correlation 0 with everything)."""
    x = profiles.float() - profiles.float().mean(0)
    sd = x.pow(2).mean(0).sqrt()
    return x / torch.where(sd > 0, sd, torch.ones_like(sd))


def standardize_blocked(
    profiles: torch.Tensor, chunk: int = 4096, out: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`standardize`, the same values, built a block of latents at a time: one (n, M)
    float32 copy beside the input instead of three (at paper shape, 100k latents x 8192 rows:
    3.3 GB rather than 10); ``out=profiles`` (float32) standardizes in place, with no copy."""
    n, M = profiles.shape
    out = torch.empty(n, M) if out is None else out
    for a in range(0, M, chunk):
        out[:, a : a + chunk] = standardize(profiles[:, a : a + chunk])
    return out


class _DenseZ:
    """Standardized columns of a dense (n, M) profile matrix, standardized once."""

    def __init__(self, profiles: torch.Tensor, inplace: bool):
        self.z = standardize_blocked(profiles, out=profiles if inplace else None)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.z.index_select(1, idx)  # index_select instead of basic indexing: 2.6x faster


class _SparseZ:
    """Standardized columns of a :class:`SampleTable`, built on demand from its float64 column
    moments: the only dense arrays are the few columns one leader compares (no (n, M) matrix;
    at paper shape, 8,192 rows x 190k alive latents, that matrix was 6.2 GB)."""

    def __init__(self, table: SampleTable):
        self.table, self.ptr = table, table.column_pointers()
        mean, sd = table.moments()
        self.mean, self.sd = mean.float(), torch.where(sd > 0, sd, torch.ones_like(sd)).float()

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return (self.table.columns(idx, self.ptr) - self.mean[idx]) / self.sd[idx]


#: Slack below the cosine threshold of the blocked pre-filter: the block products may round
#: differently from the per-leader products they stand in for (float32 unit vectors: ~1e-6).
PREFILTER_SLACK = 1e-4

#: The same slack for a bfloat16 pre-filter. Rounding both unit vectors to bfloat16 (unit roundoff
#: u = 2^-8) moves each product a_i b_i by at most (2u + u^2)|a_i b_i|, so the cosine by at most
#: (2u + u^2) sum |a_i b_i| <= 2u + u^2 (Cauchy-Schwarz) = 0.0079; the bfloat16 result rounds by
#: u |cos| <= 0.0039 more: 0.012 in all. 0.02 keeps every pair the exact float32 test would take.
PREFILTER_SLACK_BF16 = 0.02


@functools.cache
def fast_prefilter_dtype(device: str = "cpu") -> torch.dtype:
    """bfloat16 where its matrix products are faster than float32's here (GPUs; CPUs with
    AVX512-BF16 or AMX, where oneDNN runs them natively), else float32. Measured once per process
    on a (256, 512) x (512, 8192) product."""
    if device != "cpu":
        return torch.bfloat16
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 512, generator=g), torch.randn(8192, 512, generator=g)
    best = {}
    for dt in (torch.float32, torch.bfloat16):
        x, y = a.to(dt), b.to(dt)
        x @ y.T  # warm up
        t = time.perf_counter()
        for _ in range(3):
            x @ y.T
        best[dt] = time.perf_counter() - t
    return torch.bfloat16 if best[torch.bfloat16] < 0.7 * best[torch.float32] else torch.float32


@torch.no_grad()
def merge_latents(
    directions: torch.Tensor,
    profiles: torch.Tensor | SampleTable,
    member: torch.Tensor,
    candidates: torch.Tensor,
    priority: torch.Tensor,
    cos_threshold: float = 0.7,
    corr_threshold: float = 0.5,
    block: int = 256,
    progress: bool = False,
    overwrite_profiles: bool = False,
    prefilter_dtype: torch.dtype | None = None,
) -> Merge:
    """Cluster latents across members.

    ``directions`` (M, d) encoder directions, ``profiles`` (n, M) activations on n shared samples
    (dense, or a :class:`~lanic_hub.patterns.table.SampleTable`: then no dense (n, M) copy is made,
    and the correlations come from float64 column moments, equal to the dense path's to ~1e-7),
    ``member`` (M,) the member of each latent, ``candidates`` (M,) bool, the latents to cluster
    (alive ones), ``priority`` (M,) leaders are taken in decreasing order of it.

    The leaders' cosines with every free latent are one matrix product per ``block`` of leaders
    (instead of one matrix-vector product over all M latents per leader, which made the merge
    quadratic in M and memory-bound); each leader then resolves its few candidates exactly as the
    sequential definition does (the same comparisons, on the same latents, in the same order), so
    the patterns are the same as one leader at a time.

    ``overwrite_profiles``: standardize a float32 ``profiles`` in place (the caller's tensor is
    overwritten) instead of beside a copy.

    ``prefilter_dtype``: the dtype of the blocked cosine pre-filter (default:
    :func:`fast_prefilter_dtype`). In bfloat16 it passes every pair within
    :data:`PREFILTER_SLACK_BF16` of the threshold, a superset of the pairs the float32 test
    takes; that exact test, unchanged, then decides, so the patterns are the same in either dtype.
    """
    from ..utils.progress import tqdm

    M = directions.shape[0]
    dirs = torch.nn.functional.normalize(directions.float(), dim=1)
    pdt = prefilter_dtype or fast_prefilter_dtype(dirs.device.type)
    slack = PREFILTER_SLACK if pdt == torch.float32 else PREFILTER_SLACK_BF16
    pdirs = dirs if pdt == torch.float32 else dirs.to(pdt)
    n = max(profiles.shape[0], 1)
    if isinstance(profiles, SampleTable):
        prof = _SparseZ(profiles)
    else:
        prof = _DenseZ(profiles, overwrite_profiles and profiles.dtype == torch.float32)
    order = torch.argsort(priority.float().masked_fill(~candidates, float("-inf")), descending=True)
    order = order[: int(candidates.sum())].numpy()
    mem = member.numpy()
    n_members = int(mem.max()) + 1 if M else 0
    free = candidates.numpy().copy()
    pattern_of = np.full(M, -1, dtype=np.int64)
    supports, leaders = [], []
    bar = tqdm(total=len(order), desc="merge", unit="latent", disable=not progress)
    free_idx, free_dirs = np.zeros(0, dtype=np.int64), pdirs[:0]
    for start in range(0, len(order), block):
        chunk = order[start : start + block]
        chunk = chunk[free[chunk]]
        bar.update(min(block, len(order) - start))
        if not len(chunk):
            continue
        if not len(free_idx) or free.sum() < 0.75 * len(free_idx):  # compact the free set now and then
            free_idx = np.flatnonzero(free)
            free_dirs = pdirs.index_select(0, torch.from_numpy(free_idx))
        sims = pdirs.index_select(0, torch.from_numpy(chunk)) @ free_dirs.T  # claimed ones drop out below
        near = sims.float() >= cos_threshold - slack  # compared in float32: the bound is not rounded
        rows, cols = (x.numpy() for x in near.nonzero(as_tuple=True))  # row-major: each row's columns ascend
        ptr = np.searchsorted(rows, np.arange(len(chunk) + 1))
        for r, lead in enumerate(chunk.tolist()):
            if not free[lead]:  # claimed by a leader earlier in this block
                continue
            idx = free_idx[cols[ptr[r] : ptr[r + 1]]]
            idx = idx[free[idx] & (mem[idx] != mem[lead])]
            joined = [lead]
            if len(idx):
                t_idx = torch.from_numpy(idx)
                # the exact test, as one leader at a time computes it
                cos = dirs.index_select(0, t_idx) @ dirs.index_select(0, torch.tensor([lead]))[0]
                t_idx = t_idx[cos >= cos_threshold]
                joined += _best_per_member(t_idx, prof, lead, n, member, n_members, corr_threshold)
            pattern_of[joined] = len(leaders)
            free[joined] = False
            supports.append(len(joined))
            leaders.append(lead)
    bar.close()
    return Merge(
        torch.from_numpy(pattern_of),
        torch.tensor(supports, dtype=torch.long),
        torch.tensor(leaders, dtype=torch.long),
    )


def _best_per_member(
    idx: torch.Tensor, prof, lead: int, n: int, member: torch.Tensor, n_members: int, at: float
) -> list[int]:
    """Of the candidates ``idx`` (ascending), the one best correlated with ``lead`` in each other
    member, if its correlation reaches ``at`` (ties: the first in ``idx``)."""
    if not len(idx):
        return []
    # only for the few that point the same way. The same product as the definition's (a gathered
    # (n, c) block, transposed, times the leader's column), so the float32 sums round the same way
    # and near-ties break the same way
    corr = prof(idx).T @ prof(torch.tensor([lead]))[:, 0] / n
    ok = corr >= at
    if not ok.any():
        return []
    cand, score, mem = idx[ok], corr[ok], member[idx[ok]]
    best = torch.full((n_members,), -2.0).scatter_reduce(0, mem, score, reduce="amax")
    pick = score >= best[mem]
    out, first = [], torch.zeros(n_members, dtype=torch.bool)
    for c, m in zip(cand[pick].tolist(), mem[pick].tolist(), strict=True):
        if not first[m]:
            first[m] = True
            out.append(c)
    return out
