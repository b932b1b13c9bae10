"""The TopK ensemble's training step written out: forward, loss and every gradient, without autograd.

Autograd costs more than the math where the step is sparse: its ``embedding_bag`` backward took
20 ms against 1.1 ms for the forward, and it keeps a graph of (B, T, levels, H) intermediates.
Here every sparse product is a gather over the selected entries (B*T*k of them):

- each (row b, member t)'s selected latents, sorted by index, fall into consecutive Matryoshka
  bins; one ``embedding_bag`` over bags (b, t, m) gives every bin, and level j's reconstruction
  is ``b_dec + Σ_{m<=j} bin_m`` (summed in place);
- a bin is in every level from its own on, so ``G[b, t, m] = Σ_{j>=m} dL/drecon_j``; each
  selected value's gradient is ``G[b, t, m] · W_dec[i]``, the bins' CSR matrix D (B*T*n, T*L)
  sampled against ``G @ W_dec^T`` (``torch.sparse.sampled_addmm``); TopK and ReLU pass it only to
  selected, positive latents;
- one stable argsort puts the entries in latent order; each latent is then a bag of both weight
  gradients, ``dW_dec[i] = Σ v G[bag]`` and ``dW_enc[:, i] = Σ g e_b`` (``embedding_bag``, 2-3x
  faster than the same CSR product on CPU), then the folded ``b_pre`` term; ``b_enc`` gets the
  column sums.

The encoder's one matmul carries its bias (``addmm``) into a buffer reused across calls. AuxK
(dead latents explaining the residual) is a second, small gather of the same form on at most 128
rows. The loss is the one of :func:`lanic_hub.transcoders.train.ensemble_loss`, and so are the
gradients, to rounding: a test compares them in float64 over Matryoshka levels, level weights and
AuxK. JumpReLU keeps the autograd path.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .ensemble import TranscoderEnsemble, blocked_topk, flat_latents


def _csr(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, shape, dtype=val.dtype, check_invariants=False)


def _sampled(S: torch.Tensor, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``(G @ W^T)`` at the non-zeros of the CSR ``S`` (in S's order): each selected latent's
    decoder row against the gradient of the bin it sits in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse.sampled_addmm(S, G, W.t(), beta=0.0).values()


def _weight_grads(
    cols: torch.Tensor,
    val: torch.Tensor,
    g: torch.Tensor,
    bag: torch.Tensor,
    row: torch.Tensor,
    G: torch.Tensor,
    e: torch.Tensor,
    n_flat: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dW_dec (T*L, H), dW_enc^T (T*L, d) before its b_pre term) from the selected entries: flat
    latent ``cols``, value ``val``, the gradient ``g`` of its pre-activation, the ``bag`` (row of
    G) it was decoded into and the embedding ``row`` it was encoded from. One stable argsort puts
    the entries in latent order; each latent is then a bag of both sums (``embedding_bag``: 2-3x
    faster than the same CSR product on CPU)."""
    order = cols.argsort(stable=True)
    counts = torch.bincount(cols, minlength=n_flat)
    starts = counts.cumsum(0) - counts
    g_dec = F.embedding_bag(bag[order], G, offsets=starts, per_sample_weights=val[order], mode="sum")
    g_enc = F.embedding_bag(row[order], e, offsets=starts, per_sample_weights=g[order], mode="sum")
    return g_dec, g_enc


@torch.no_grad()
def topk_step(
    model: TranscoderEnsemble,
    e: torch.Tensor,
    h: torch.Tensor,
    var: torch.Tensor,
    dead: torch.Tensor | None,
    buffer: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch's loss and gradients for a TopK ensemble, written into the parameters' ``.grad``
    (replacing what was there). Returns (loss, full-level FVU per member, fired mask (T, L)), as
    :func:`~lanic_hub.transcoders.train.ensemble_loss` does. ``buffer``: room for the (B, T*L)
    pre-activations, reused across calls (see :meth:`TranscoderEnsemble.preacts`)."""
    cfg = model.cfg
    T, L, k, H, d = cfg.n_members, cfg.n_latents, cfg.k, cfg.d_out, cfg.d_in
    levels = cfg.resolved_levels
    n, B, dev, dt = len(levels), len(e), e.device, e.dtype
    BT, TL = B * T, T * L
    W, Wd = model.W_enc.detach(), model.W_dec.detach().view(TL, H)
    b_pre, b_dec = model.b_pre.detach(), model.b_dec.detach()
    var = var.clamp(min=1e-12)
    weights = torch.tensor(cfg.level_weights or (1.0,) * n, dtype=dt, device=dev)

    # forward: one matmul with the folded bias, TopK, then every level's bin in one gather
    pre = model.preacts(e, relu=False, out=buffer)
    values, indices = blocked_topk(pre, k)
    idx, order = indices.sort(dim=-1)  # by latent index: a row's bins are consecutive runs
    val = values.gather(-1, order).clamp_(min=0).reshape(-1)
    level = torch.bucketize(idx, torch.tensor(levels, device=dev), right=True)  # each latent's bin
    bag = (torch.arange(BT, device=dev).view(B, T, 1) * n + level).reshape(-1)  # bag (b, t, m)
    counts = torch.bincount(bag, minlength=BT * n)
    cols = flat_latents(idx, L).reshape(-1)
    r = F.embedding_bag(cols, Wd, offsets=counts.cumsum(0) - counts, per_sample_weights=val, mode="sum")
    r = r.view(BT, n, H)  # each bin; in place, r[:, j] becomes level j's reconstruction - h
    r.view(B, T, n, H)[:, :, 0] += b_dec - h.unsqueeze(1)
    for j in range(1, n):
        r[:, j] += r[:, j - 1]
    f = torch.linalg.vector_norm(r, dim=-1).square_().view(B, T, n).sum(0) / var  # (T, n) FVUs
    loss = (f * weights).sum()
    aux_on = dead is not None and cfg.aux_coef > 0 and bool(dead.any())
    if aux_on:  # what the full level misses, for AuxK (before r becomes the gradient)
        res = -r.view(B, T, n, H)[:128, :, -1]

    # backward: dL/dbin_m = Σ_{j>=m} dL/drecon_j (a bin is in every level from its own on)
    G = r.mul_((2 * weights / var).view(1, n, 1))
    for j in range(n - 2, -1, -1):
        G[:, j] += G[:, j + 1]
    D = _csr(torch.cat([counts.new_zeros(1), counts.cumsum(0)]), cols, val, (BT * n, TL))
    G = G.view(BT * n, H)
    g_val = _sampled(D, G, Wd) * (val > 0)  # TopK and ReLU: selected, positive latents only
    brow = torch.arange(B, device=dev).repeat_interleave(T * k)  # the embedding row of each entry
    g_dec, g_Wt = _weight_grads(cols, val, g_val, bag, brow, G, e, TL)
    g_b = torch.zeros(TL, dtype=dt, device=dev).index_add_(0, cols, g_val)

    if aux_on:
        # AuxK on at most 128 rows: the dead latents' top pre-activations explain the residual
        na, ka = min(B, 128), min(cfg.aux_k, L)
        av, ai = (pre[:na].clamp(min=0) * dead.to(dt)).topk(ka, dim=-1, sorted=False)
        ai, o = ai.sort(dim=-1)
        av, acols = av.gather(-1, o).reshape(-1), flat_latents(ai, L).reshape(-1)
        A = _csr(torch.arange(0, na * T * ka + 1, ka, device=dev), acols, av, (na * T, TL))
        diff = F.embedding_bag(acols.view(na * T, ka), Wd, per_sample_weights=av.view(na * T, ka), mode="sum")
        diff = diff.view(na, T, H) - res
        res_var = (res - res.mean(0)).pow(2).sum(dim=(0, 2)).clamp(min=1e-12)
        aux = diff.pow(2).sum(dim=(0, 2)) / res_var
        ok = ~torch.isnan(aux)  # as torch.nan_to_num(aux, nan=0) in the loss
        loss = loss + cfg.aux_coef * aux[ok].sum()
        Ga = diff.mul_((2 * cfg.aux_coef / res_var * ok).view(1, T, 1)).reshape(na * T, H)
        ga = _sampled(A, Ga, Wd) * (av > 0)
        abag = torch.arange(na * T, device=dev).repeat_interleave(ka)
        a_dec, a_Wt = _weight_grads(acols, av, ga, abag, torch.div(abag, T, rounding_mode="floor"),
                                    Ga, e[:na], TL)  # fmt: skip
        g_dec += a_dec
        g_Wt += a_Wt
        g_b.index_add_(0, acols, ga)

    # the encoder's b_pre part: pre = W^T (e - b_pre) + b_enc
    g_Wt.view(T, L, d).addcmul_(g_b.view(T, L, 1), b_pre.view(T, 1, d), value=-1.0)
    model.W_enc.grad = g_Wt.t()
    model.b_enc.grad = g_b
    model.b_pre.grad = -torch.einsum("dtl,tl->td", W.view(d, T, L), g_b.view(T, L))
    model.W_dec.grad = g_dec.view(T, L, H)
    model.b_dec.grad = G.view(B, T, n, H)[:, :, 0].sum(0)

    fired = torch.zeros(T, L, dtype=torch.bool, device=dev)
    fired.scatter_(1, indices.permute(1, 0, 2).reshape(T, -1), values.permute(1, 0, 2).reshape(T, -1) > 0)
    return loss, f[:, -1], fired
