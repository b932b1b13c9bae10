"""Per-latent scores as pure functions and streaming accumulators on tensors.

MonoSemanticity (Pach et al., 2025). With activations min-max scaled to ``ã ∈ [0, 1]`` over the
dataset and unit embeddings ``ê_n`` from an encoder::

    MS = Σ_{n<m} ã_n ã_m ê_n·ê_m / Σ_{n<m} ã_n ã_m

Because ``Σ_{n≠m} ã_n ã_m ê_n·ê_m = ||Σ_n ã_n ê_n||² - Σ_n ã_n²`` (unit ``ê``) and
``Σ_{n≠m} ã_n ã_m = (Σ_n ã_n)² - Σ_n ã_n²``, MS needs only ``Σ a ê`` (one vector per latent),
``Σ a``, ``Σ a²``, ``Σ ê``, N, min and max, all of which add up over batches: the score is exact,
one pass, O(N·d) per latent, and for sparse codes only the active (sample, latent) pairs cost
anything. The min-max scaling is folded in afterwards (``ã = (a - lo) / (hi - lo)``).
Sums accumulate in float64; the tests check the score against the pairwise definition to 1e-5
(float32 inputs, batches, a latent with a large offset and a tiny range included).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch


class LatentStats(NamedTuple):
    """Scores of M latents (or patterns) over one dataset."""

    frequency: torch.Tensor
    """(M,) fraction of samples where the activation is > 0."""
    max: torch.Tensor
    mean: torch.Tensor
    """(M,) mean activation over all samples (zeros included)."""
    ms: torch.Tensor
    """(M,) MonoSemanticity score; NaN for a latent with fewer than two samples above its minimum."""


class ScoreAccumulator:
    """Streams sparse activations (sample, latent, value) of M latents and the samples' embeddings.

    Memory is O(M·d) whatever the number of samples. ``add`` takes the non-zero entries only:
    every absent (sample, latent) pair is an activation of exactly 0.
    """

    def __init__(self, n_latents: int, d: int, device: torch.device | str = "cpu") -> None:
        self.M, self.d = n_latents, d
        z = lambda *s: torch.zeros(*s, dtype=torch.float64, device=device)  # noqa: E731
        self.n = 0
        self.count = z(n_latents)
        self.sum = z(n_latents)
        self.sumsq = z(n_latents)
        self.max = z(n_latents)
        self.min_pos = torch.full((n_latents,), float("inf"), dtype=torch.float64, device=device)
        self.sum_ae = z(n_latents, d)
        self.sum_e = z(d)

    def add(self, rows: torch.Tensor, latents: torch.Tensor, values: torch.Tensor, emb: torch.Tensor) -> None:
        """Add a batch: ``emb`` (B, d) unit embeddings, and the non-zero activations given as three
        flat tensors: the row of ``emb`` (0..B-1), the latent (0..M-1) and the value (> 0)."""
        keep = values > 0
        rows, latents, v = rows[keep], latents[keep], values[keep].double()
        e = emb.double()
        self.n += e.shape[0]
        self.sum_e += e.sum(0)
        self.count.index_add_(0, latents, torch.ones_like(v))
        self.sum.index_add_(0, latents, v)
        self.sumsq.index_add_(0, latents, v * v)
        self.max.scatter_reduce_(0, latents, v, reduce="amax")
        self.min_pos.scatter_reduce_(0, latents, v, reduce="amin")
        # Σ a ê as one sparse (M x B) times dense (B x d) product in float64: no (E, d) scratch
        # (E = B*T*k entries is 1.6M at paper shape: it was 6.7 GB a batch)
        order = torch.argsort(latents, stable=True)
        crow = torch.zeros(self.M + 1, dtype=torch.long, device=e.device)
        crow[1:] = torch.bincount(latents, minlength=self.M).cumsum(0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            a = torch.sparse_csr_tensor(crow, rows[order], v[order], (self.M, e.shape[0]))
            self.sum_ae.addmm_(a, e)

    def add_dense(self, acts: torch.Tensor, emb: torch.Tensor) -> None:
        """Add a batch of dense, non-negative activations (B, M): ``Σ a ê`` is one matrix product.

        The batch is computed in the inputs' precision and accumulated in float64. Each column is
        first shifted by its batch minimum m (``a = m + c``), so rounding in the product and the sums
        is relative to the column's range, not its offset (a latent that fires on every sample
        with a small range loses nothing): ``Σ a ê = Σ c ê + m Σ ê``, ``Σ a = Σ c + B m``,
        ``Σ a² = Σ c² + 2 m Σ c + B m²``.
        """
        if not len(acts):
            return
        B, emb = acts.shape[0], emb.to(acts.dtype)
        m = acts.amin(0)
        c = acts - m
        # sums over the batch in its own precision (torch reduces pairwise), then float64
        md, ed_sum, sc = m.double(), emb.sum(0).double(), c.sum(0).double()
        self.n += B
        self.sum_e += ed_sum
        self.count += acts.sign().sum(0).double()  # activations are >= 0: sign is 1 where fired
        self.sum += sc + B * md
        self.sumsq += (c * c).sum(0).double() + 2 * md * sc + B * md * md
        self.max = torch.maximum(self.max, acts.amax(0).double())
        # a column with a zero in this batch never fires on every sample: its min_pos is unused
        self.min_pos = torch.minimum(self.min_pos, torch.where(md > 0, md, torch.full_like(md, float("inf"))))
        self.sum_ae += (c.T @ emb).double() + md.unsqueeze(1) * ed_sum

    def _norms_sq(self, lo: torch.Tensor, r: torch.Tensor, rows: int = 8192) -> torch.Tensor:
        """``||Σ ã ê||²`` of every latent, ``Σ ã ê = (Σ a ê - lo Σ ê) / r``, over blocks of rows: the
        (M, d) float64 temporaries are 840 MB each at paper shape (M = 204,800, d = 512), and
        allocating them dominated pass 1's cost on small datasets. The same operations per row
        as on the whole matrix, so the same result, bit for bit (tested)."""
        out = torch.empty(self.M, dtype=torch.float64, device=self.sum_ae.device)
        for a in range(0, self.M, rows):
            v = (self.sum_ae[a : a + rows] - lo[a : a + rows, None] * self.sum_e) / r[a : a + rows, None]
            out[a : a + rows] = (v * v).sum(1)
        return out

    def result(self) -> LatentStats:
        n = self.n
        # the minimum over the dataset is 0 unless the latent fired on every sample
        lo = torch.where(self.count >= n, self.min_pos, torch.zeros_like(self.min_pos))
        rng = self.max - lo
        ok = rng > 0
        r = torch.where(ok, rng, torch.ones_like(rng))
        s1 = (self.sum - n * lo) / r  # Σ ã
        s2 = (self.sumsq - 2 * lo * self.sum + n * lo * lo) / (r * r)  # Σ ã²
        num = self._norms_sq(lo, r) - s2  # ||Σ ã ê||² - Σ ã²
        den = s1 * s1 - s2
        # defined only with two samples above the minimum: a latent that fires once is undefined
        # exactly, and den is checked against the rounding of add_dense's float32 batch sums
        # (Σã² is off by ~1e-7 relative there, so one firing sample must not pass as den ~ 1e-7;
        # where ok, s1 >= 1, so this bound is also above the old absolute floor of 1e-12)
        ms = torch.where(
            ok & (self.count >= 2) & (den > 1e-6 * s1 * s1),
            num / den.clamp(min=1e-12),
            torch.full_like(num, float("nan")),
        )
        return LatentStats(
            frequency=(self.count / max(n, 1)).float(),
            max=self.max.float(),
            mean=(self.sum / max(n, 1)).float(),
            ms=ms.float(),
        )


def ms_scores(acts: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """MS of every column of dense activations ``acts`` (N, M) given unit embeddings ``emb`` (N, d)."""
    acc = ScoreAccumulator(acts.shape[1], emb.shape[1], acts.device)
    acc.add_dense(acts, emb)
    return acc.result().ms


def cross_group_similarity(
    group_sums: torch.Tensor, group_sq: torch.Tensor, group_n: torch.Tensor
) -> torch.Tensor:
    """Mean cosine similarity over pairs of unit vectors drawn from *different* groups.

    For S sets of groups: ``group_sums`` (S, G, d) is each group's vector sum, ``group_sq`` (S, G)
    each group's ``||sum||²`` and ``group_n`` (S, G) its size. Same-group pairs (two sentences of
    one report) are left out, and it is linear in the number of vectors:
    ``Σ_{i,j in different groups} s_i·s_j = ||Σ_g sum_g||² - Σ_g ||sum_g||²``.
    """
    total = group_sums.sum(1)
    num = (total * total).sum(-1) - group_sq.sum(1)
    n = group_n.sum(1)
    den = n * n - (group_n * group_n).sum(1)
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))


def _group_then_descending(groups: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The order of flat entries by group, then by value from the largest, ties in input order: a
    stable sort by value, then by group. For float32 values, one stable sort of an int64 key (the
    group in the high 32 bits, the value's order-preserving bit pattern, flipped, in the low ones)."""
    if values.dtype != torch.float32 or len(values) == 0 or bool(torch.isnan(values).any()):
        order = torch.argsort(values, descending=True, stable=True)
        return order[torch.argsort(groups[order], stable=True)]
    b = (values + 0.0).view(torch.int32).long()  # + 0.0: -0.0 sorts with +0.0, as it compares
    monotone = torch.where(b < 0, b ^ 0x7FFFFFFF, b)  # signed, increasing with the value
    return torch.argsort(groups.long() * 2**32 + (2**31 - 1 - monotone), stable=True)


def grouped_topk(
    groups: torch.Tensor, values: torch.Tensor, ids: torch.Tensor, n_groups: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest ``values`` of each group, from flat (group, value, id) entries.

    Returns (G, k) values (``-inf`` where a group has fewer than k entries) and ids (-1 there).
    Sorting the flat entries costs O(E log E) and never forms a dense (G, samples) matrix.
    """
    order = _group_then_descending(groups, values)
    g, v, i = groups[order], values[order], ids[order]
    start = torch.zeros(n_groups + 1, dtype=torch.long, device=g.device)
    start[1:] = torch.bincount(g, minlength=n_groups).cumsum(0)
    pos = torch.arange(len(g), device=g.device) - start[g]
    keep = pos < k
    out_v = torch.full((n_groups, k), float("-inf"), dtype=values.dtype, device=values.device)
    out_i = torch.full((n_groups, k), -1, dtype=torch.long, device=ids.device)
    out_v[g[keep], pos[keep]] = v[keep]
    out_i[g[keep], pos[keep]] = i[keep]
    return out_v, out_i


def merge_topk(
    best_v: torch.Tensor, best_i: torch.Tensor, groups: torch.Tensor, values: torch.Tensor, ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold new flat entries into running (G, k) top-k tables (see :func:`grouped_topk`).

    The same tables as ``grouped_topk`` over the old entries followed by the new ones (an old entry
    wins a tie), at a cost in the entries that can still enter a table: a new value that does not
    beat its group's k-th best is dropped first; the rest form a top-k table of their own, over
    the groups they touch only, and each touched group's old and new rows (2k values, old first)
    are merged by one stable row-wise sort. The old entries are never sorted again. The tables
    are updated in place and returned.
    """
    k = best_v.shape[1]
    enters = values > best_v[groups, k - 1]
    if not bool(enters.any()):
        return best_v, best_i
    groups, values, ids = groups[enters], values[enters], ids[enters]
    touched, local = torch.unique(groups, return_inverse=True)
    new_v, new_i = grouped_topk(local, values, ids, len(touched), k)
    both_v = torch.cat([best_v[touched], new_v], dim=1)
    both_i = torch.cat([best_i[touched], new_i], dim=1)
    order = torch.sort(both_v, dim=1, descending=True, stable=True).indices[:, :k]
    best_v[touched] = both_v.gather(1, order)
    best_i[touched] = both_i.gather(1, order)
    return best_v, best_i
