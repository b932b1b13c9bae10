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
