"""Merge latents of different members into patterns (pure function on tensors).

Two latents are the same pattern when their encoder directions point the same way (cosine) AND
they fire on the same samples (Pearson correlation of their activations). Leader clustering:
the most frequent unassigned latent founds a pattern; from every other member, the unassigned
latent most correlated with the leader joins if it passes both thresholds. A pattern thus holds
at most one latent per member, and its **support** (how many members found it) is its size.
Comparisons are only ever against the leader, so patterns do not chain.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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


@torch.no_grad()
def merge_latents(
    directions: torch.Tensor,
    profiles: torch.Tensor,
    member: torch.Tensor,
    candidates: torch.Tensor,
    priority: torch.Tensor,
    cos_threshold: float = 0.7,
    corr_threshold: float = 0.5,
) -> Merge:
    """Cluster latents across members.

    ``directions`` (M, d) encoder directions, ``profiles`` (n, M) activations on n shared samples,
    ``member`` (M,) the member of each latent, ``candidates`` (M,) bool, the latents to cluster
    (alive ones), ``priority`` (M,) leaders are taken in decreasing order of it.
    """
    M = directions.shape[0]
    dirs = torch.nn.functional.normalize(directions.float(), dim=1)
    prof = standardize(profiles)
    n = max(prof.shape[0], 1)
    pattern_of = torch.full((M,), -1, dtype=torch.long)
    free = candidates.clone()
    order = torch.argsort(priority.float().masked_fill(~candidates, float("-inf")), descending=True)
    n_members = int(member.max()) + 1 if M else 0
    supports, leaders = [], []
    for lead in order[: int(candidates.sum())].tolist():
        if not free[lead]:
            continue
        pid = len(leaders)
        idx = free.nonzero(as_tuple=True)[0]
        idx = idx[(dirs[idx] @ dirs[lead] >= cos_threshold) & (member[idx] != member[lead])]
        corr = prof[:, idx].T @ prof[:, lead] / n  # only for the few that point the same way
        ok = corr >= corr_threshold
        joined = [lead]
        if ok.any():
            cand, score, mem = idx[ok], corr[ok], member[idx[ok]]
            # the best-correlated candidate of each other member
            best = torch.full((n_members,), -2.0).scatter_reduce(0, mem, score, reduce="amax")
            pick = score >= best[mem]
            cand, mem = cand[pick], mem[pick]
            first = torch.zeros(n_members, dtype=torch.bool)
            for c, m in zip(cand.tolist(), mem.tolist(), strict=True):  # ties: first in order
                if not first[m]:
                    first[m] = True
                    joined.append(c)
        j = torch.tensor(joined)
        pattern_of[j] = pid
        free[j] = False
        supports.append(len(joined))
        leaders.append(lead)
    return Merge(
        pattern_of, torch.tensor(supports, dtype=torch.long), torch.tensor(leaders, dtype=torch.long)
    )
