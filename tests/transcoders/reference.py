"""The training loss written out densely from its formula, for the gradient tests: autograd
through it is the reference the sparse custom backward passes must match."""

from __future__ import annotations

import torch


def dense_loss(m, values, indices, pre_relu, h, var, dead, aux_coef: float) -> torch.Tensor:
    """Nested (Matryoshka) FVUs of codes (values, indices) plus AuxK on the dead latents' top
    ReLU pre-activations ``pre_relu`` (B, T, L), with autograd through every input."""
    bins = m.decode_bins(values, indices)
    recon, ref = m.b_dec.expand(len(h), -1, -1), 0
    for j in range(bins.shape[2]):
        recon = recon + bins[:, :, j]
        ref = ref + ((recon - h[:, None]).pow(2).sum(dim=(0, 2)) / var).sum()
    res = (h[:, None] - recon).detach()
    v, i = (pre_relu * dead).topk(m.cfg.aux_k, dim=-1, sorted=False)
    ea = m.decode(v, i) - m.b_dec
    aux = (ea - res).pow(2).sum(dim=(0, 2)) / (res - res.mean(0)).pow(2).sum(dim=(0, 2))
    return ref + aux_coef * aux.sum()
