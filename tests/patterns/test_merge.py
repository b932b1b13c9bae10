"""Merging latents across members: same direction AND same samples, one latent per member."""

from __future__ import annotations

import pytest
import torch

from lanic_hub.patterns.merge import merge_latents


def _world(seed: int = 0):
    """3 members x 4 latents. Concept A is found by every member, concept B by members 0 and 1;
    member 2's latent 1 points like A but fires on other samples; the rest are noise."""
    g = torch.Generator().manual_seed(seed)
    d, n = 16, 200
    A, B = torch.randn(d, generator=g), torch.randn(d, generator=g)
    fire_a = (torch.rand(n, generator=g) < 0.3).float()
    fire_b = (torch.rand(n, generator=g) < 0.2).float()
    fire_x = (torch.rand(n, generator=g) < 0.3).float()
    dirs = torch.randn(12, d, generator=g)
    prof = torch.relu(torch.randn(n, 12, generator=g)) * (torch.rand(n, 12, generator=g) < 0.1)
    for t, j in ((0, 2), (1, 0), (2, 3)):  # concept A at different latent indices
        dirs[4 * t + j] = A + 0.1 * torch.randn(d, generator=g)
        prof[:, 4 * t + j] = fire_a * (1 + 0.1 * torch.rand(n, generator=g))
    for t, j in ((0, 0), (1, 3)):
        dirs[4 * t + j] = B + 0.1 * torch.randn(d, generator=g)
        prof[:, 4 * t + j] = fire_b * (1 + 0.1 * torch.rand(n, generator=g))
    dirs[4 * 2 + 1] = A + 0.1 * torch.randn(d, generator=g)
    prof[:, 4 * 2 + 1] = fire_x
    member = torch.arange(12) // 4
    return dirs, prof, member


def test_merge_groups_the_shared_concepts_and_counts_support():
    dirs, prof, member = _world()
    m = merge_latents(dirs, prof, member, torch.ones(12, dtype=torch.bool), (prof > 0).float().mean(0))
    pa = m.pattern_of[2]
    assert m.pattern_of[4 + 0] == pa and m.pattern_of[8 + 3] == pa
    assert m.support[pa] == 3
    pb = m.pattern_of[0]
    assert pb != pa and m.pattern_of[4 + 3] == pb and m.support[pb] == 2
    assert m.pattern_of[9] not in (pa, pb)  # same direction, different samples: not merged
    # every latent is in exactly one pattern, at most one latent per member per pattern
    assert (m.pattern_of >= 0).all()
    assert int(m.support.sum()) == 12
    for p in range(len(m.support)):
        mem = member[m.pattern_of == p]
        assert len(mem) == len(set(mem.tolist())) == m.support[p]


def test_merge_respects_candidates_and_thresholds():
    dirs, prof, member = _world()
    cand = torch.ones(12, dtype=torch.bool)
    cand[8 + 3] = False
    m = merge_latents(dirs, prof, member, cand, (prof > 0).float().mean(0))
    assert m.pattern_of[8 + 3] == -1
    assert m.support[m.pattern_of[2]] == 2
    strict = merge_latents(
        dirs, prof, member, torch.ones(12, dtype=torch.bool), torch.rand(12), 0.9999, 0.9999
    )
    assert (strict.support == 1).all()  # nothing is that similar: every latent is its own pattern


def _clustered(seed: int, T: int = 12, L: int = 40, n: int = 300, concepts: int = 25, d: int = 32):
    """T members x L latents: each concept is found by a random subset of members (noisy
    directions and activations), the rest are noise; frequencies tie often (priority ties)."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(concepts, d, generator=g)
    fires = torch.rand(n, concepts, generator=g) < torch.rand(concepts, generator=g) * 0.4
    dirs = torch.randn(T * L, d, generator=g)
    prof = torch.relu(torch.randn(n, T * L, generator=g)) * (torch.rand(n, T * L, generator=g) < 0.05)
    for c in range(concepts):
        for t in torch.nonzero(torch.rand(T, generator=g) < 0.6).flatten().tolist():
            j = t * L + int(torch.randint(L, (1,), generator=g))
            dirs[j] = C[c] + float(torch.rand(1, generator=g)) * 0.8 * torch.randn(d, generator=g)
            prof[:, j] = fires[:, c] * (1 + 0.3 * torch.rand(n, generator=g))
    member = torch.arange(T * L) // L
    freq = ((prof > 0).float().mean(0) * 20).round() / 20  # coarse: many equal priorities
    return dirs, prof, member, freq


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block", [1, 7, 256])
@pytest.mark.parametrize("prefilter", [torch.float32, torch.bfloat16])
def test_blocked_merge_equals_one_leader_at_a_time(seed, block, prefilter):
    from .reference_merge import merge_one_leader_at_a_time

    dirs, prof, member, freq = _clustered(seed)
    cand = torch.rand(len(freq), generator=torch.Generator().manual_seed(seed)) < 0.9
    for cos, corr in ((0.7, 0.5), (0.5, 0.3), (0.9, 0.8)):
        want = merge_one_leader_at_a_time(dirs, prof, member, cand, freq, cos, corr)
        got = merge_latents(dirs, prof, member, cand, freq, cos, corr, block=block, prefilter_dtype=prefilter)
        assert torch.equal(got.pattern_of, want.pattern_of)
        assert torch.equal(got.support, want.support) and torch.equal(got.leader, want.leader)
    assert (want.support > 1).sum() >= 10  # the worlds do merge


@pytest.mark.parametrize("prefilter", [torch.float32, torch.bfloat16])
def test_near_ties_break_as_the_definition_breaks_them(prefilter):
    """Latents of one concept that fire on the same samples with activations a few percent apart:
    correlations tie to the 5th digit, where float32 sums in another order would pick another
    latent; the blocked merge rounds as the definition does."""
    from .reference_merge import merge_one_leader_at_a_time

    g = torch.Generator().manual_seed(5)
    T, L, n, d, k = 30, 60, 512, 32, 300
    C = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1)
    conc = torch.randint(0, k, (T * L,), generator=g)
    dirs = C[conc] + 0.02 * torch.randn(T * L, d, generator=g)
    fire = (torch.rand(k, n, generator=g) < 0.05).float()
    prof = (fire[conc].T * (1 + 0.2 * torch.rand(n, T * L, generator=g))).contiguous()
    member = torch.arange(T * L) // L
    freq = (prof > 0).float().mean(0)
    cand = torch.ones(T * L, dtype=torch.bool)
    want = merge_one_leader_at_a_time(dirs, prof, member, cand, freq)
    got = merge_latents(dirs, prof, member, cand, freq, prefilter_dtype=prefilter)
    assert torch.equal(got.pattern_of, want.pattern_of) and torch.equal(got.leader, want.leader)
    assert (want.support > 3).sum() > 50


def test_the_bfloat16_prefilter_keeps_pairs_just_above_the_threshold():
    """Pairs of unit vectors in 512 dimensions at cosine 0.7 + 1e-5 (and 0.7 - 1e-5), from
    different members, firing on the same samples: bfloat16 rounds those cosines by up to ~0.01,
    but its slack keeps every pair the float32 test takes, so exactly the pairs above join."""
    g = torch.Generator().manual_seed(0)
    pairs, d, n = 400, 512, 64
    u = torch.nn.functional.normalize(torch.randn(pairs, d, generator=g), dim=1)
    w = torch.randn(pairs, d, generator=g)
    w = torch.nn.functional.normalize(w - (w * u).sum(1, keepdim=True) * u, dim=1)
    c = torch.where(torch.arange(pairs) % 2 == 0, 0.7 + 1e-5, 0.7 - 1e-5).double()
    v = (c[:, None] * u.double() + (1 - c[:, None] ** 2).sqrt() * w.double()).float()
    dirs = torch.cat([u, v])  # member 0: the u's, member 1: the v's
    fire = (torch.rand(n, pairs, generator=g) < 0.3).float() + 1e-3 * torch.rand(n, pairs, generator=g)
    prof = torch.cat([fire, fire], 1)
    member = torch.arange(2 * pairs) // pairs
    prio = torch.cat([torch.full((pairs,), 2.0), torch.ones(pairs)])  # the u's lead
    exact = (dirs[:pairs] * dirs[pairs:]).sum(1) >= 0.7  # float32, as the definition's test
    assert 150 < int(exact.sum()) < 250  # both sides of the threshold are there
    for dt in (torch.float32, torch.bfloat16):
        got = merge_latents(
            dirs, prof, member, torch.ones(2 * pairs, dtype=torch.bool), prio, prefilter_dtype=dt
        )
        joined = got.pattern_of[:pairs] == got.pattern_of[pairs:]
        assert torch.equal(joined, exact), dt


def test_merge_in_place_equals_merge_beside_a_copy():
    """``overwrite_profiles`` standardizes the caller's float32 profiles in place: the same
    patterns, and the tensor left holding the standardized columns."""
    from lanic_hub.patterns.merge import standardize

    dirs, prof, member = _world(3)
    args = (torch.ones(12, dtype=torch.bool), (prof > 0).float().mean(0))
    keep = prof.clone()
    a = merge_latents(dirs, prof, member, *args)
    assert torch.equal(prof, keep)  # by default the input is left alone
    b = merge_latents(dirs, prof, member, *args, overwrite_profiles=True)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert torch.equal(prof, standardize(keep))


def _table(prof: torch.Tensor):
    from lanic_hub.patterns.table import SampleTable

    r, c = prof.nonzero(as_tuple=True)
    return SampleTable.from_entries(r, c, prof[r, c], prof.shape)


def test_sample_table_columns_and_moments_match_the_dense_matrix():
    """The sparse profiles the build hands the merge: any columns, in any order, densify to the
    matrix's own; the column moments are the dense mean and (population) standard deviation."""
    _, prof, _, _ = _clustered(1)
    tab = _table(prof)
    idx = torch.tensor([5, 0, 479, 5, 100])
    assert torch.equal(tab.columns(idx), prof[:, idx])
    assert torch.equal(tab.block(10, 30), prof[:, 10:30])
    mean, sd = tab.moments()
    torch.testing.assert_close(mean, prof.double().mean(0))
    torch.testing.assert_close(sd, prof.double().std(0, unbiased=False))
    empty = tab.from_parts([], (7, 3))
    assert torch.equal(empty.dense(), torch.zeros(7, 3))


@pytest.mark.parametrize("seed", range(4))
def test_merge_on_sparse_profiles_equals_one_leader_at_a_time(seed):
    """The build's path: profiles as a SampleTable (no dense (n, M) copy) give the definition's
    patterns, at every threshold pair."""
    from .reference_merge import merge_one_leader_at_a_time

    dirs, prof, member, freq = _clustered(seed)
    cand = torch.rand(len(freq), generator=torch.Generator().manual_seed(seed)) < 0.9
    tab = _table(prof)
    for cos, corr in ((0.7, 0.5), (0.5, 0.3), (0.9, 0.8)):
        want = merge_one_leader_at_a_time(dirs, prof, member, cand, freq, cos, corr)
        got = merge_latents(dirs, tab, member, cand, freq, cos, corr)
        assert torch.equal(got.pattern_of, want.pattern_of)
        assert torch.equal(got.support, want.support) and torch.equal(got.leader, want.leader)
    assert (want.support > 1).sum() >= 10
