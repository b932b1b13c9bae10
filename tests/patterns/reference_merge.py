"""The merge as it was first written, one leader at a time over all latents: the definition the
blocked merge (:func:`lanic_hub.patterns.merge.merge_latents`) must reproduce exactly."""

from __future__ import annotations

import torch

from lanic_hub.patterns.merge import Merge, standardize


@torch.no_grad()
def merge_one_leader_at_a_time(
    directions, profiles, member, candidates, priority, cos_threshold=0.7, corr_threshold=0.5
):
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
        corr = prof[:, idx].T @ prof[:, lead] / n
        ok = corr >= corr_threshold
        joined = [lead]
        if ok.any():
            cand, score, mem = idx[ok], corr[ok], member[idx[ok]]
            best = torch.full((n_members,), -2.0).scatter_reduce(0, mem, score, reduce="amax")
            pick = score >= best[mem]
            cand, mem = cand[pick], mem[pick]
            first = torch.zeros(n_members, dtype=torch.bool)
            for c, m in zip(cand.tolist(), mem.tolist(), strict=True):
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
