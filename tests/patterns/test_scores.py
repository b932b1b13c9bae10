"""The pattern scores against their definitions, computed directly (O(N²) where the definition is)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lanic_hub.patterns.scores import (
    ScoreAccumulator,
    cross_group_similarity,
    grouped_topk,
    merge_topk,
    ms_scores,
)
from lanic_hub.transcoders.analysis import auroc_matrix


def ms_direct(a: np.ndarray, e: np.ndarray) -> float:
    """Pach et al.'s definition, pair by pair."""
    at = (a - a.min()) / (a.max() - a.min())
    num = den = 0.0
    for n in range(len(a)):
        for m in range(n + 1, len(a)):
            w = at[n] * at[m]
            num += w * float(e[n] @ e[m])
            den += w
    return num / den


def test_ms_matches_the_pairwise_definition():
    g = torch.Generator().manual_seed(0)
    N, M, d = 40, 6, 5
    e = torch.nn.functional.normalize(torch.randn(N, d, generator=g), dim=1).double()
    acts = torch.relu(torch.randn(N, M, generator=g)).double()
    acts[:, 3] = torch.rand(N, generator=g).double() + 0.5  # fires on every sample: min > 0
    acts[:, 4] = 0.0
    acts[:3, 4] = torch.tensor([1.0, 2.0, 0.5]).double()  # rare
    got = ms_scores(acts, e)
    for j in range(M):
        assert got[j].item() == pytest.approx(ms_direct(acts[:, j].numpy(), e.numpy()), abs=1e-5)


def test_ms_streams_over_batches_and_marks_degenerate_latents():
    g = torch.Generator().manual_seed(1)
    N, M, d = 64, 4, 3
    e = torch.nn.functional.normalize(torch.randn(N, d, generator=g), dim=1)
    acts = torch.relu(torch.randn(N, M, generator=g))
    acts[:, 2] = 0.0  # dead
    acts[:, 3] = 0.0
    acts[7, 3] = 1.0  # fires once: no pair
    acc = ScoreAccumulator(M, d)
    for a in range(0, N, 10):
        acc.add_dense(acts[a : a + 10], e[a : a + 10])
    s = acc.result()
    whole = ms_scores(acts, e)
    assert torch.allclose(s.ms[:2], whole[:2], atol=1e-6)
    assert torch.isnan(s.ms[2]) and torch.isnan(s.ms[3])
    assert s.frequency.tolist() == pytest.approx((acts > 0).float().mean(0).tolist())
    assert s.max.tolist() == pytest.approx(acts.max(0).values.tolist())
    assert s.mean.tolist() == pytest.approx(acts.mean(0).tolist(), abs=1e-6)


def test_ms_of_a_latent_that_fires_on_identical_embeddings_is_one():
    e = torch.nn.functional.normalize(torch.randn(10, 4), dim=1)
    e[:5] = e[0]
    acts = torch.zeros(10, 1)
    acts[:5, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ms_scores(acts, e)[0].item() == pytest.approx(1.0, abs=1e-6)


def test_cross_group_similarity_leaves_out_same_group_pairs():
    g = torch.Generator().manual_seed(2)
    vecs = torch.nn.functional.normalize(torch.randn(9, 5, generator=g), dim=1)
    owner = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3])
    pairs = [float(vecs[i] @ vecs[j]) for i in range(9) for j in range(9) if i != j and owner[i] != owner[j]]
    sums = torch.zeros(4, 5).index_add_(0, owner, vecs)
    n = torch.bincount(owner).float()
    got = cross_group_similarity(sums[None], (sums * sums).sum(1)[None], n[None])
    assert got.item() == pytest.approx(np.mean(pairs), abs=1e-6)


def test_grouped_topk_equals_a_per_group_sort():
    g = torch.Generator().manual_seed(3)
    groups = torch.randint(0, 7, (200,), generator=g)
    values = torch.rand(200, generator=g)
    ids = torch.arange(200)
    v, i = grouped_topk(groups, values, ids, 8, 5)
    for c in range(8):
        mine = values[groups == c].sort(descending=True).values[:5]
        assert v[c, : len(mine)].tolist() == pytest.approx(mine.tolist())
        assert (i[c, len(mine) :] == -1).all()
        assert torch.equal(values[i[c, : len(mine)]], v[c, : len(mine)])
    assert (i[7] == -1).all()  # an empty group
    # merging in two halves gives the same tables
    a = grouped_topk(groups[:90], values[:90], ids[:90], 8, 5)
    b = merge_topk(*a, groups[90:], values[90:], ids[90:])
    assert torch.equal(b[0], v) and torch.equal(b[1], i)


def _merge_by_one_sort(best_v, best_i, groups, values, ids):
    """The running-table merge as it was first written: one sort of every old and new entry."""
    G, k = best_v.shape
    have = best_i >= 0
    g_old = torch.arange(G).unsqueeze(1).expand(G, k)[have]
    return grouped_topk(
        torch.cat([g_old, groups]), torch.cat([best_v[have], values]), torch.cat([best_i[have], ids]), G, k
    )


def test_one_key_sort_equals_two_stable_sorts():
    """grouped_topk's single int64-key sort orders entries exactly as a stable sort by value
    (descending) then by group: negative, zero (both signs), infinite, tied and tiny values."""
    from lanic_hub.patterns.scores import _group_then_descending

    g = torch.Generator().manual_seed(13)
    special = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-38, -1e-38, 3.5, -3.5])
    values = torch.cat(
        [torch.randint(-3, 4, (300,), generator=g).float() / 2, torch.randn(200, generator=g), special]
    )
    values = values[torch.randperm(len(values), generator=g)]
    groups = torch.randint(0, 9, (len(values),), generator=g)
    two = torch.argsort(values, descending=True, stable=True)
    two = two[torch.argsort(groups[two], stable=True)]
    assert torch.equal(_group_then_descending(groups, values), two)


def test_merge_topk_equals_one_sort_of_all_entries_ties_included():
    """The filtered merge (only entries that beat a group's k-th best, only the groups they hit)
    gives the very tables of one sort over old and new entries, batch after batch; values are drawn
    from 6 levels, so most comparisons are ties, which an old entry wins in both."""
    g = torch.Generator().manual_seed(11)
    G, k = 30, 4
    a = (torch.full((G, k), float("-inf")), torch.full((G, k), -1, dtype=torch.long))
    b = (a[0].clone(), a[1].clone())
    seen = 0
    for n in (5, 40, 200, 0, 300, 1, 150):  # a batch may enter nothing, or hit few groups
        groups = torch.randint(0, G if n != 40 else 3, (n,), generator=g)
        values = torch.randint(1, 7, (n,), generator=g).float()
        ids = torch.arange(seen, seen + n)
        seen += n
        a = _merge_by_one_sort(*a, groups, values, ids)
        b = merge_topk(*b, groups, values, ids)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (a[1] >= 0).all()  # the tables filled, so later batches were filtered


def test_sparse_add_equals_the_entrywise_sums():
    """``add`` forms Σ a·ê as a sparse product: it equals the entry-by-entry float64 sums, with
    repeated (row, latent) pairs, latents that never fire, and a second batch on top."""
    g = torch.Generator().manual_seed(12)
    B, M, d, E = 9, 40, 6, 70
    acc = ScoreAccumulator(M, d)
    want = torch.zeros(M, d, dtype=torch.float64)
    for _ in range(2):
        e = torch.nn.functional.normalize(torch.randn(B, d, generator=g), dim=1)
        rows, lat = torch.randint(0, B, (E,), generator=g), torch.randint(0, M - 5, (E,), generator=g)
        val = torch.rand(E, generator=g)
        acc.add(rows, lat, val, e)
        for r, m, x in zip(rows.tolist(), lat.tolist(), val.double().tolist(), strict=True):
            want[m] += x * e[r].double()
    assert torch.allclose(acc.sum_ae, want, rtol=0, atol=1e-12)
    assert (acc.sum_ae[M - 5 :] == 0).all()


def test_blocked_norms_equal_the_whole_matrix_bit_for_bit():
    """``result`` forms ||Σ ã ê||² over blocks of latents: bit-identical to the whole-matrix formula
    for any block size (one that divides M, one that does not, one larger than M), offsets
    (latents firing on every sample) included."""
    g = torch.Generator().manual_seed(13)
    M, d = 1000, 24
    acc = ScoreAccumulator(M, d)
    acc.sum_ae = torch.randn(M, d, generator=g, dtype=torch.float64) * 50
    acc.sum_e = torch.randn(d, generator=g, dtype=torch.float64) * 30
    lo = torch.where(torch.rand(M, generator=g) < 0.2, torch.rand(M, generator=g), 0.0).double()
    r = torch.rand(M, generator=g, dtype=torch.float64) + 0.01
    v = (acc.sum_ae - lo.unsqueeze(1) * acc.sum_e) / r.unsqueeze(1)
    want = (v * v).sum(1)
    for rows in (1, 7, 250, 8192):
        assert torch.equal(acc._norms_sq(lo, r, rows), want), rows


def test_auroc_matrix_matches_sklearn_with_ties():
    rng = np.random.default_rng(4)
    scores = np.maximum(rng.normal(size=(80, 5)), 0)  # many tied zeros, like sparse codes
    labels = rng.random((80, 3)) < 0.3
    labels[:, 2] = False  # single class: NaN
    got = auroc_matrix(scores, labels)
    for j in range(5):
        for c in range(2):
            assert got[j, c] == pytest.approx(roc_auc_score(labels[:, c], scores[:, j]))
    assert np.isnan(got[:, 2]).all()


def test_a_latent_firing_once_has_no_ms_in_float32_batches():
    """One sample above the minimum: MS has no pair and is undefined (NaN), also where add_dense's
    float32 square of the value rounds (0.3 and 0.7 gave MS 1.74 and -10.2 before)."""
    g = torch.Generator().manual_seed(6)
    e = torch.nn.functional.normalize(torch.randn(10, 3, generator=g), dim=1)
    acts = torch.zeros(10, 3)
    acts[4, 0], acts[2, 1] = 0.3, 0.7
    acts[:, 2] = torch.rand(10, generator=g)  # fires everywhere: defined
    ms = ms_scores(acts, e)
    assert torch.isnan(ms[:2]).all()
    assert ms[2].item() == pytest.approx(ms_direct(acts[:, 2].double().numpy(), e.double().numpy()), abs=1e-5)


def test_sparse_and_dense_accumulation_agree():
    g = torch.Generator().manual_seed(5)
    N, M, d = 50, 7, 4
    e = torch.nn.functional.normalize(torch.randn(N, d, generator=g), dim=1)
    acts = torch.relu(torch.randn(N, M, generator=g)) * (torch.rand(N, M, generator=g) < 0.4)
    acts[:, 6] = torch.rand(N, generator=g) + 0.1  # always on
    dense, sparse = ScoreAccumulator(M, d), ScoreAccumulator(M, d)
    for a in range(0, N, 16):
        block = acts[a : a + 16]
        dense.add_dense(block, e[a : a + 16])
        r, c = block.nonzero(as_tuple=True)
        sparse.add(r, c, block[r, c], e[a : a + 16])
    x, y = dense.result(), sparse.result()
    for field in x._fields:
        assert torch.allclose(getattr(x, field), getattr(y, field), atol=1e-6, equal_nan=True), field


def test_float32_batches_keep_the_ms_of_an_offset_latent():
    """Float32 activations, streamed in batches: a latent that fires on every sample with a large
    offset and a tiny range (where the min-max scaling amplifies rounding by offset / range) still
    matches the definition computed in float64."""
    g = torch.Generator().manual_seed(4)
    N, d = 3000, 16
    centres = torch.randn(4, d, generator=g)
    e = torch.nn.functional.normalize(centres[torch.arange(N) % 4] + torch.randn(N, d, generator=g), dim=1)
    acts = torch.cat(
        [
            torch.relu(e @ torch.randn(d, 3, generator=g)),  # follows the embeddings
            100 + 0.01 * torch.relu(e @ torch.randn(d, 1, generator=g)),  # offset 100, range ~0.02
            torch.relu(torch.randn(N, 2, generator=g) - 1.0),  # sparse
        ],
        dim=1,
    )
    a, e64 = acts.double(), e.double()
    scaled = (a - a.min(0).values) / (a.max(0).values - a.min(0).values)
    G = e64 @ e64.T
    G.fill_diagonal_(0)
    s1, s2 = scaled.sum(0), (scaled * scaled).sum(0)
    ref = ((G @ scaled) * scaled).sum(0) / (s1 * s1 - s2)
    acc = ScoreAccumulator(acts.shape[1], d)
    for i in range(0, N, 700):
        acc.add_dense(acts[i : i + 700], e[i : i + 700])
    got = acc.result()
    assert got.ms.double().tolist() == pytest.approx(ref.tolist(), abs=1e-5)
    assert ref[3] > 0.1  # the offset latent's MS is informative, not noise around 0
    assert got.frequency.tolist() == pytest.approx((acts > 0).double().mean(0).tolist())
