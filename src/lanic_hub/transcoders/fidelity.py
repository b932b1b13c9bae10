"""How well a trained ensemble reconstructs: the full-level FVU of every member, whether a training
curve had flattened (:func:`convergence`, :func:`plateau_step`), the fidelity report of a trained
ensemble on held-out pairs (:func:`fidelity`), and the input-reconstruction variant's targets and
hidden half (:func:`with_input_target`, :func:`hidden_part`)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, DataError
from .ensemble import TranscoderEnsemble


def plateau_step(curve: list[tuple[int, float]], window: int, tol: float) -> int | None:
    """The first check of a held-out FVU curve ((step, FVU), in order) at which the FVU had fallen
    by less than ``tol`` (relative) over the ``window`` checks before it; None if none has."""
    for j in range(window, len(curve)):
        before, now = curve[j - window][1], curve[j][1]
        if (before - now) / max(before, 1e-12) < tol:
            return curve[j][0]
    return None


@torch.no_grad()
def full_fvu(model: TranscoderEnsemble, e: torch.Tensor, h: torch.Tensor, block: int = 256) -> float:
    """Mean over members of the full-level FVU on (e, h), ``block`` rows at a time (the whole
    ensemble's codes and reconstructions of one block stay in cache)."""
    was = model.training
    model.eval()
    sse = torch.zeros(model.cfg.n_members, dtype=torch.float64, device=e.device)
    for a in range(0, len(e), block):
        v, i = model.encode(e[a : a + block])
        sse += (model.decode(v, i) - h[a : a + block, None, :]).pow(2).sum(dim=(0, 2)).double()
    var = (h - h.mean(0)).pow(2).sum().double()
    model.train(was)
    return float((sse / var.clamp(min=1e-12)).mean())


def convergence(curve: list[tuple[int, float]], total: int, tol: float) -> dict[str, Any]:
    """Whether the FVU curve had flattened: it fell by less than ``tol`` (relative) over the last
    quarter of the schedule. None where the curve does not cover it (a short run, or one resumed
    from a checkpoint written before checkpoints kept the curve)."""
    at = dict(curve)
    q3 = round(total * 0.75)
    if q3 not in at or total not in at or q3 == total:
        return {"curve": [list(c) for c in curve], "converged": None, "last_quarter_drop": None, "tol": tol}
    drop = (at[q3] - at[total]) / max(at[q3], 1e-12)
    return {
        "curve": [list(c) for c in curve],
        "converged": bool(drop < tol),
        "last_quarter_drop": float(drop),
        "tol": tol,
    }


@torch.no_grad()
def fidelity(
    model: TranscoderEnsemble,
    e: torch.Tensor,
    h: torch.Tensor,
    batch: int | None = None,
    dense_threshold: float = 0.1,
) -> dict[str, Any]:
    """Per-member FVU at every Matryoshka level, L0, dead (never fired here) and dense (> 10 %)
    fractions; for JumpReLU also how often the cap of k active latents bound (more were above
    their thresholds). ``batch``: rows at a time (default: 4,096, fewer where the (rows, T*L)
    pre-activations would pass 1 GB: 1,310 at paper shape)."""
    cfg = model.cfg
    if batch is None:
        batch = cfg.block_rows()
    var = (h - h.mean(0)).pow(2).sum()
    sq = {m: torch.zeros(cfg.n_members) for m in cfg.resolved_levels}
    counts = torch.zeros(cfg.n_members, cfg.n_latents)
    l0 = torch.zeros(cfg.n_members)
    capped = torch.zeros(cfg.n_members)
    for i in range(0, len(e), batch):
        eb, hb = e[i : i + batch].to(model.W_enc.dtype), h[i : i + batch].to(model.W_enc.dtype)
        pre = model.preacts(eb, relu=False)
        v, idx = model.codes_from_preacts(pre)  # what encode() returns, from the same matmul
        if cfg.activation == "jumprelu":
            capped += ((pre > model.threshold).sum(-1) > cfg.k).sum(0)
        for m in cfg.resolved_levels:
            r = model.decode(v, idx, limit=m if m < cfg.n_latents else None)
            sq[m] += (r - hb[:, None, :]).pow(2).sum(dim=(0, 2))
        on = (v > 0).float()
        l0 += on.sum(dim=(0, 2))
        counts.scatter_add_(
            1, idx.permute(1, 0, 2).reshape(cfg.n_members, -1), on.permute(1, 0, 2).reshape(cfg.n_members, -1)
        )
    n = len(e)
    freq = counts / n
    out = {
        "fvu": {str(m): (sq[m] / var).tolist() for m in cfg.resolved_levels},
        "l0": (l0 / n).tolist(),
        "dead_fraction": (freq == 0).float().mean(1).tolist(),
        "dense_fraction": (freq > dense_threshold).float().mean(1).tolist(),
    }
    if cfg.activation == "jumprelu":
        out["cap_bound_fraction"] = (capped / n).tolist()
    return out


def with_input_target(e: torch.Tensor, h: torch.Tensor, weight: float) -> tuple[torch.Tensor, float]:
    """The training target ``[h, s·e]`` of transcoders that must also reconstruct their input,
    and ``s``.

    With ``s² = weight · Var(h) / Var(e)`` (total per-sample variances), the FVU of the joint
    target is ``(FVU_h + weight · FVU_e) / (1 + weight)``: the loss asks each latent to write
    what it reads. A latent that reads a chest tube in e must then also write the tube back, so
    an effusion-evidence latent can no longer read the tube for free. Keep only the h half of the
    trained decoders with :func:`hidden_part` to explain the classifier."""
    if weight <= 0:
        raise ConfigError(f"the input-reconstruction weight must be > 0, got {weight}")
    var_h = float((h - h.mean(0)).pow(2).sum(1).mean())
    var_e = float((e - e.mean(0)).pow(2).sum(1).mean())
    if var_e <= 0:
        raise DataError("the embeddings do not vary: nothing to reconstruct")
    s = (weight * var_h / var_e) ** 0.5
    return torch.cat([h, s * e], dim=1), s


def hidden_part(ens: TranscoderEnsemble, d_out: int) -> TranscoderEnsemble:
    """The ensemble with each decoder row and bias cut to their first ``d_out`` outputs (the h
    half of a transcoder trained on :func:`with_input_target`). The encoder and so the codes are
    unchanged; the decoder rows are no longer unit-norm in h (they were in ``[h, s·e]``)."""
    from dataclasses import replace as _replace

    if not 0 < d_out <= ens.cfg.d_out:
        raise ConfigError(f"cannot keep {d_out} of the ensemble's {ens.cfg.d_out} outputs")
    out = TranscoderEnsemble(_replace(ens.cfg, d_out=d_out))
    sd = ens.state_dict()
    sd["W_dec"] = sd["W_dec"][..., :d_out].contiguous()
    sd["b_dec"] = sd["b_dec"][..., :d_out].contiguous()
    out.load_state_dict(sd)
    return out.train(ens.training)
