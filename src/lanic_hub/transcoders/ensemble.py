"""An ensemble of T Matryoshka transcoders (TopK or JumpReLU) as ONE module: one wide encoder
matmul, sparse decoders.

Member t: ``z_t = TopK_k(ReLU(W_enc_t (e - b_pre_t) + b_enc_t))``, ``ĥ_t = W_dec_t z_t + b_dec_t``.
All encoders read the same ``e``, so ``W_enc_t (e - b_pre_t) + b_enc_t`` for every member is
``e @ W_enc + c`` with ``W_enc`` of shape (d, T*L) and ``c = b_enc - W_enc_t b_pre_t`` folded
once per call. Decoding gathers only the k selected decoder rows of each member
(``embedding_bag``), so it costs T*k*H per sample instead of T*L*H.

Matryoshka nesting: a level m reconstructs from the selected latents whose index is < m; the
loss sums the FVU of every level. Explanations use the full level.

JumpReLU (``activation="jumprelu"``) replaces the TopK by a learned threshold per latent,
``z = pre * 1[pre > θ]`` (Rajamanoharan et al., 2024, arXiv 2407.14435), with an L0 penalty
trained through straight-through pseudo-derivatives. ``k`` then caps the active latents per
member and sample (codes keep their k slots); the L0 penalty keeps the mean below it. Two
choices make it independent of the data's scale: thresholds start at a quantile of the data's
pre-activations, and the kernel's bandwidth is relative to the threshold (ε = w θ).

Why one module of ~530 lines: the config (:class:`TranscoderConfig`), the module and the custom
autograd functions of its forward (the blocked TopK, the JumpReLU and its L0 step, the sparse
pre-activation gradient) are one contract. The saved weights' shapes follow the config, and each
autograd function's backward is only correct for the forward that calls it here. The training
loop (:mod:`.train`), its step (:mod:`.step`), checkpoints and fidelity are apart.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

ACTIVATIONS = ("topk", "jumprelu")


@dataclass(frozen=True)
class TranscoderConfig:
    """Shape and training of the ensemble. Validation is in ``__post_init__``."""

    d_in: int
    """Embedding width d."""
    d_out: int
    """Classifier hidden width H (the reconstruction target)."""
    n_latents: int = 256
    """Latents per member, L."""
    k: int = 8
    """Active latents per member and sample (TopK: exactly k; JumpReLU: at most k)."""
    n_members: int = 100
    """Ensemble size T; members differ by seed."""
    levels: tuple[int, ...] | None = None
    """Matryoshka prefix sizes, ascending, ending at L. None: (L/32, L/8, L). (L,) is plain TopK."""
    level_weights: tuple[float, ...] | None = None
    """Weight of each level's FVU in the loss (default: all 1)."""
    aux_k: int = 32
    """Dead latents used by the AuxK revival loss."""
    aux_coef: float = 1 / 32
    """Weight of the AuxK loss beside the reconstruction loss."""
    dead_after: int = 2000
    """A latent that has not fired for this many samples counts as dead for AuxK."""
    activation: str = "topk"
    """'topk' (exactly the k largest) or 'jumprelu' (a learned threshold per latent, at most k)."""
    l0_coef: float = 1e-2
    """JumpReLU: weight of the mean L0 per member in the loss (next to each member's FVUs)."""
    jump_bandwidth: float = 0.5
    """JumpReLU: width of the rectangle kernel in the thresholds' pseudo-derivatives, relative to
    each threshold (ε = w θ). The thresholds start from the data
    (:meth:`TranscoderEnsemble.init_from_data`)."""
    jump_lr_scale: float = 50.0
    """JumpReLU: learning rate of log θ relative to the other parameters. The encoder's scale grows
    several-fold in a short schedule; at 1x the thresholds lag far behind it (measured on the
    phantom preset: the cap of k bound on 50-80 % of samples whatever the L0 weight)."""
    encoder_init: str = "random"
    """'random' (small Gaussian encoder, random unit decoder rows) or 'data' (each latent starts
    at one training pair: its encoder column points along that row's centred embedding, its decoder
    row along the row's centred hidden layer; see :meth:`TranscoderEnsemble.init_from_data`)."""
    seed: int = 0
    """Members differ by seed: member t draws from a generator keyed by (seed, t)."""
    first_member: int = 0
    """Global index of this module's first member (member-parallel training trains slices)."""

    def __post_init__(self) -> None:
        if min(self.d_in, self.d_out, self.n_latents, self.k, self.n_members) < 1:
            raise ConfigError(f"all sizes must be >= 1: {self}")
        if self.k > self.n_latents:
            raise ConfigError(f"k = {self.k} exceeds the number of latents L = {self.n_latents}")
        lv = self.resolved_levels
        if list(lv) != sorted(set(lv)) or lv[-1] != self.n_latents or lv[0] < 1:
            raise ConfigError(f"levels must be ascending, distinct, >= 1 and end at L={self.n_latents}: {lv}")
        if self.level_weights is not None and len(self.level_weights) != len(lv):
            raise ConfigError(f"level_weights {self.level_weights} must have one weight per level {lv}")
        if self.encoder_init not in ("random", "data"):
            raise ConfigError(f"encoder_init must be 'random' or 'data', got {self.encoder_init!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not (self.jump_bandwidth > 0 and self.jump_lr_scale > 0 and self.l0_coef >= 0):
            raise ConfigError(
                "JumpReLU needs jump_bandwidth > 0, jump_lr_scale > 0 and l0_coef >= 0: "
                f"{self.jump_bandwidth}, {self.jump_lr_scale}, {self.l0_coef}"
            )

    def block_rows(self, budget: int = 1 << 28, most: int = 4096) -> int:
        """Rows per block when a pass materialises (rows, T*L) pre-activations: at most ``most``,
        fewer where the block would pass ``budget`` floats (1 GB): 1,310 rows at paper shape."""
        return max(1, min(most, budget // (self.n_members * self.n_latents)))

    @property
    def resolved_levels(self) -> tuple[int, ...]:
        if self.levels is not None:
            return tuple(self.levels)
        L = self.n_latents
        return tuple(sorted({max(1, L // 32), max(1, L // 8), L}))

    def slice(self, start: int, stop: int) -> TranscoderConfig:
        """The config of members [start, stop) of this ensemble."""
        from dataclasses import replace

        return replace(self, n_members=stop - start, first_member=self.first_member + start)

    def to_dict(self) -> dict:
        """JSON-ready fields (``levels`` resolved); :meth:`from_dict` is the inverse."""
        d = asdict(self)
        d["levels"] = list(self.resolved_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TranscoderConfig:
        """The config of :meth:`to_dict`'s output (JSON lists back to tuples)."""
        d = dict(d)
        for name in ("levels", "level_weights"):
            if d.get(name) is not None:
                d[name] = tuple(d[name])
        return cls(**d)


def flat_latents(indices: torch.Tensor, n_latents: int) -> torch.Tensor:
    """Global latent ids ``t * L + i`` (the row of latent (t, i) in every (T*L,)-indexed table) of
    per-member indices (B, T, k), in the same shape."""
    T = indices.shape[1]
    return indices + torch.arange(T, device=indices.device).view(1, T, 1) * n_latents


def member_range(ens: TranscoderEnsemble, start: int, stop: int) -> TranscoderEnsemble:
    """A view-free copy of members [start, stop) of ``ens`` (its config says which they are:
    ``first_member``)."""
    if not 0 <= start < stop <= ens.cfg.n_members:
        raise ConfigError(f"members [{start}, {stop}) are not a range of the ensemble's {ens.cfg.n_members}")
    part = TranscoderEnsemble(ens.cfg.slice(start, stop))
    L = ens.cfg.n_latents
    with torch.no_grad():
        part.W_enc.copy_(ens.W_enc[:, start * L : stop * L])
        part.b_enc.copy_(ens.b_enc[start * L : stop * L])
        for name in ens.member_params():
            getattr(part, name).copy_(getattr(ens, name)[start:stop])
    return part.eval()


def first_members(ens: TranscoderEnsemble, n: int) -> TranscoderEnsemble:
    """A view-free copy of members [0, n) of ``ens``."""
    return member_range(ens, 0, n)


def ensemble_fingerprint(ens: TranscoderEnsemble) -> str:
    """sha256 of the ensemble's weights: a pattern bank is only valid for the ensemble it was built on."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(ens.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def concat_members(parts: list[TranscoderEnsemble]) -> TranscoderEnsemble:
    """One ensemble from consecutive member slices (the inverse of ``TranscoderConfig.slice``)."""
    from dataclasses import replace

    first = parts[0].cfg
    total = sum(p.cfg.n_members for p in parts)
    for a, b in zip(parts, parts[1:], strict=False):
        if b.cfg.first_member != a.cfg.first_member + a.cfg.n_members:
            raise ConfigError("member slices are not consecutive")
    out = TranscoderEnsemble.__new__(TranscoderEnsemble)
    nn.Module.__init__(out)
    out.cfg = replace(first, n_members=total)
    out.W_dec = nn.Parameter(torch.cat([p.W_dec.data for p in parts]))
    out.W_enc = nn.Parameter(torch.cat([p.W_enc.data for p in parts], dim=1))
    out.b_enc = nn.Parameter(torch.cat([p.b_enc.data for p in parts]))
    for name in parts[0].member_params():
        setattr(out, name, nn.Parameter(torch.cat([getattr(p, name).data for p in parts])))
    return out


class EnsembleOutput(NamedTuple):
    """What one forward pass gives."""

    values: torch.Tensor
    """(B, T, k) activations of the selected latents (>= 0)."""
    indices: torch.Tensor
    """(B, T, k) their latent indices in 0..L-1."""
    recon: torch.Tensor
    """(B, T, H) each member's full-level reconstruction ĥ_t."""
    pre: torch.Tensor
    """(B, T, L) pre-activations after ReLU (needed by AuxK; not kept by ``encode``)."""


class TranscoderEnsemble(nn.Module):
    """T Matryoshka transcoders e -> h (TopK or JumpReLU, ``cfg.activation``), trained together in
    one pass."""

    def __init__(self, cfg: TranscoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        T, L, d, H = cfg.n_members, cfg.n_latents, cfg.d_in, cfg.d_out
        # members differ by seed: each member draws from its own generator, keyed by its global
        # index, so a member is the same whichever process (or ensemble slice) it is trained in
        decs, encs = [], []
        for t in range(cfg.first_member, cfg.first_member + T):
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + t)
            decs.append(torch.randn(L, H, generator=g))
            # small encoder weights: first reconstructions stay near b_dec (= mean h) instead of
            # overshooting it several-fold through k unit-norm decoder rows
            encs.append(torch.randn(d, L, generator=g) * (0.1 * d**-0.5))

        dec = torch.stack(decs)
        self.W_dec = nn.Parameter(dec / dec.norm(dim=-1, keepdim=True))  # (T, L, H), unit-norm rows
        self.W_enc = nn.Parameter(torch.cat(encs, dim=1))  # (d, T * L)
        self.b_enc = nn.Parameter(torch.zeros(T * L))
        self.b_pre = nn.Parameter(torch.zeros(T, d))
        self.b_dec = nn.Parameter(torch.zeros(T, H))
        if cfg.activation == "jumprelu":
            # a placeholder: init_from_data sets each threshold from the data
            self.log_threshold = nn.Parameter(torch.full((T, L), math.log(0.1)))

    def member_params(self) -> tuple[str, ...]:
        """The parameters whose first axis is the member (W_enc and b_enc hold members as column
        blocks of L)."""
        return ("b_pre", "W_dec", "b_dec") + (("log_threshold",) if self.cfg.activation == "jumprelu" else ())

    @property
    def T(self) -> int:
        return self.cfg.n_members

    @torch.no_grad()
    def init_from_data(self, e: torch.Tensor, h: torch.Tensor, rows: int = 1024) -> None:
        """b_pre <- mean(e), b_dec <- mean(h): every member starts at the data means.

        JumpReLU: each latent's threshold starts at the (1 - k/L) quantile of its pre-activations
        on (up to) ``rows`` rows, so every latent fires on about k/L of the data and a sample has
        about k active latents, whatever the data's scale (at least 1e-6: thresholds are > 0).
        """
        self.b_pre.copy_(e.mean(0).expand_as(self.b_pre))
        self.b_dec.copy_(h.mean(0).expand_as(self.b_dec))
        if self.cfg.encoder_init == "data":
            cfg = self.cfg
            T, L, k = cfg.n_members, cfg.n_latents, cfg.k
            ec, hc = e - e.mean(0), h - h.mean(0)
            for t in range(T):  # each member its own rows, keyed like its weights
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + cfg.first_member + t + 7)
                rows_t = torch.randint(0, len(e), (L,), generator=g)
                u = ec[rows_t]
                # the row's own code is about its hidden deviation split over k latents
                scale = hc[rows_t].norm(dim=1) / k / u.pow(2).sum(1).clamp(min=1e-12)
                self.W_enc[:, t * L : (t + 1) * L] = (u * scale[:, None]).T
                self.W_dec[t] = torch.nn.functional.normalize(hc[rows_t], dim=1)
        if self.cfg.activation == "jumprelu":
            cfg, sample = self.cfg, e[:rows]
            q = 1 - cfg.k / cfg.n_latents
            step = max(1, 2048 // cfg.n_latents)  # members at a time: bounded memory at any T
            for a in range(0, cfg.n_members, step):
                b = min(cfg.n_members, a + step)
                pre = self.member_chunk(a, b).preacts(sample, relu=False)
                self.log_threshold[a:b] = pre.quantile(q, dim=0).clamp(min=1e-6).log()

    def preacts(
        self,
        e: torch.Tensor,
        relu: bool = True,
        bias: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, L) = ReLU(W_enc_t (e - b_pre_t) + b_enc_t) for all members, one matmul
        (``relu=False``: before the ReLU). ``bias``: :meth:`encoder_bias`, if the caller keeps it.
        ``out``: a buffer of at least B*T*L floats to write into. A training step passes one: a
        fresh (4096, 2048) float tensor is 33.5 MB, above glibc's largest mmap threshold (32 MB), so
        every allocation of it faults its pages in anew (8 of the matmul's 32 ms on 2 cores)."""
        T, L = self.cfg.n_members, self.cfg.n_latents
        c = self.encoder_bias() if bias is None else bias
        if out is not None:
            out = out.view(-1)[: len(e) * T * L].view(len(e), T * L)
        pre = torch.addmm(c.reshape(-1), e, self.W_enc, out=out).view(-1, T, L)  # bias in the BLAS call
        return F.relu(pre) if relu else pre

    def encoder_bias(self) -> torch.Tensor:
        """(T, L) ``b_enc_t - W_enc_t b_pre_t``, the folded bias of the one encoder matmul. It reads
        all of ``W_enc`` (T*L*d): a caller whose weights do not change may compute it once and pass
        it to :meth:`encode` (``LanICModel`` does, for explanations)."""
        T, L = self.cfg.n_members, self.cfg.n_latents
        return self.b_enc.view(T, L) - torch.einsum("dtl,td->tl", self.W_enc.view(-1, T, L), self.b_pre)

    def encode_for_training(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values, indices, pre) for training: the same TopK codes as :meth:`forward`, with a
        backward pass that touches only the selected latents.

        The forward is one dense matmul, with no autograd graph over the (B, T, L)
        pre-activations. The backward (:class:`_SelectedPreacts`) forms the encoder gradient as a
        sparse (B x T*L, B*T*k non-zeros) times dense product, which is what the dense gradient
        of TopK equals: every unselected latent's gradient is exactly zero.
        ``pre`` is returned detached and before the ReLU, for AuxK's choice of dead latents.
        """
        with torch.no_grad():
            pre = self.preacts(e, relu=False)
            values, indices = self.codes_from_preacts(pre)
        if self.cfg.activation == "topk":
            return self.selected(e, values, indices), indices, pre
        raw = self.selected(e, pre.gather(-1, indices), indices)
        return self.jump(raw, indices), indices, pre

    @torch.no_grad()
    def codes_from_preacts(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (values, indices) from pre-activations before the ReLU, without autograd.

        TopK: TopK before ReLU selects the same positive values (one pass fewer over B*T*L);
        where fewer than k are positive, the rest come out as exact zeros after the clamp.
        JumpReLU: the k latents furthest above their threshold; those not above it are zeros.
        """
        if self.cfg.activation == "topk":
            values, indices = blocked_topk(pre, self.cfg.k)
            return values.clamp_(min=0), indices
        margin, indices = blocked_topk(pre - self.threshold.detach(), self.cfg.k)
        return pre.gather(-1, indices).mul_(margin > 0), indices

    @property
    def threshold(self) -> torch.Tensor:
        """(T, L) JumpReLU thresholds θ = exp(log θ)."""
        return self.log_threshold.exp()

    def jump(self, raw: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """JumpReLU of the selected pre-activations ``raw`` (B, T, j), differentiable w.r.t. the
        thresholds through the straight-through pseudo-derivative."""
        flat = flat_latents(indices, self.cfg.n_latents)
        theta = self.threshold.reshape(-1)[flat]
        return _JumpReLU.apply(raw, theta, self.cfg.jump_bandwidth * theta.detach())

    def l0_penalty(self, pre: torch.Tensor) -> torch.Tensor:
        """(T,) mean number of latents above threshold per sample (before the cap), with the
        straight-through pseudo-derivative w.r.t. the thresholds; ``pre`` is not differentiated."""
        theta = self.threshold
        return _StepL0.apply(pre.detach(), theta, self.cfg.jump_bandwidth * theta.detach())

    def member_chunk(self, start: int, stop: int) -> TranscoderEnsemble:
        """Members [start, stop) as an ensemble whose tensors are leaves sharing this one's values
        (the encoder slice copied contiguous), for a training step taken chunk by chunk: the
        chunk's intermediates stay small enough for the CPU caches; its gradients are added back
        by :func:`lanic_hub.transcoders.train.ensemble_grads`."""
        L = self.cfg.n_latents
        part = TranscoderEnsemble.__new__(TranscoderEnsemble)
        nn.Module.__init__(part)
        part.cfg = self.cfg.slice(start, stop)
        cols = slice(start * L, stop * L)
        part.W_enc = self.W_enc.detach()[:, cols].requires_grad_()  # strided: BLAS reads it in place
        part.b_enc = self.b_enc.detach()[cols].requires_grad_()
        for name in self.member_params():
            setattr(part, name, getattr(self, name).detach()[start:stop].requires_grad_())
        return part

    def selected(self, e: torch.Tensor, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """``values`` (B, T, j) = pre-activations at ``indices``, made differentiable w.r.t. the
        encoder parameters by a sparse backward pass."""
        return _SelectedPreacts.apply(e, self.W_enc, self.b_pre, self.b_enc, values, indices)

    def decode(self, values: torch.Tensor, indices: torch.Tensor, limit: int | None = None) -> torch.Tensor:
        """(B, T, H) reconstructions from sparse codes; ``limit`` keeps latents with index < limit."""
        B, T, k = values.shape
        L, H = self.cfg.n_latents, self.cfg.d_out
        if limit is not None and limit < L:
            values = values * (indices < limit)
        flat = flat_latents(indices, L).view(B * T, k)
        out = F.embedding_bag(
            flat, self.W_dec.view(T * L, H), per_sample_weights=values.reshape(B * T, k), mode="sum"
        )
        return out.view(B, T, H) + self.b_dec

    def decode_bins(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """(B, T, n_levels, H): what each Matryoshka bin adds, in ONE sparse gather.

        Each member's k selected latents are sorted by index and cut into bags at the level
        boundaries, so one ``embedding_bag`` sums every bin. Level j's reconstruction is
        ``b_dec + bins[:, :, :j + 1].sum(2)`` (no bias inside the bins).
        """
        B, T, k = values.shape
        L, H = self.cfg.n_latents, self.cfg.d_out
        levels = torch.tensor(self.cfg.resolved_levels, device=indices.device)
        idx_s, order = indices.sort(dim=-1)
        val_s = values.gather(-1, order)
        below = (idx_s.unsqueeze(-1) < levels).sum(dim=-2)  # (B, T, n_levels): entries in each prefix
        starts = torch.cat([torch.zeros_like(below[..., :1]), below[..., :-1]], dim=-1)
        rows = torch.arange(B * T, device=indices.device).view(B, T, 1) * k
        offsets = (rows + starts).reshape(-1)
        flat = flat_latents(idx_s, L).reshape(-1)
        bins = F.embedding_bag(
            flat, self.W_dec.view(T * L, H), offsets=offsets, per_sample_weights=val_s.reshape(-1), mode="sum"
        )
        return bins.view(B, T, len(levels), H)

    def forward(self, e: torch.Tensor) -> EnsembleOutput:
        pre = self.preacts(e, relu=False)
        _, indices = self.codes_from_preacts(pre)
        values = pre.gather(-1, indices)
        values = F.relu(values) if self.cfg.activation == "topk" else self.jump(values, indices)
        return EnsembleOutput(values, indices, self.decode(values, indices), F.relu(pre))

    @torch.no_grad()
    def encode(self, e: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse codes (values, indices), each (B, T, k). ``bias``: see :meth:`preacts`."""
        return self.codes_from_preacts(self.preacts(e, relu=False, bias=bias))

    @torch.no_grad()
    def dense_codes(self, e: torch.Tensor) -> torch.Tensor:
        """(B, T, L) dense z (zeros except the active codes), for analysis on small batches."""
        v, i = self.encode(e)
        return v.new_zeros(e.shape[0], self.cfg.n_members, self.cfg.n_latents).scatter_(-1, i, v)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Keep decoder rows at unit norm (the activation carries the scale)."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-8))


def blocked_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest entries of each row of ``x`` (..., L), unsorted: (values, indices), the same
    values as ``x.topk(k, dim=-1, sorted=False)`` (where entries tie at the k-th value, possibly
    other indices of equal value).

    On a CPU, ``torch.topk`` costs about half of the encoder matmul at paper width. Cut each row
    into blocks of s; the k largest entries lie in the k blocks with the largest maxima (a block
    outside them has k blocks whose maxima are all at least its own maximum). So: block maxima
    (one vectorised pass), top-k blocks, then top-k of their k*s entries. Where L/s would be
    under 8k (no gain) and off the CPU, ``torch.topk`` itself.
    """
    L = x.shape[-1]
    s = next((s for s in (8, 4) if L % s == 0 and L // s >= 8 * k), 0)
    if not s or x.device.type != "cpu":
        return x.topk(k, dim=-1, sorted=False)
    lead = x.shape[:-1]
    _, b = x.reshape(*lead, L // s, s).amax(-1).topk(k, dim=-1, sorted=False)  # the top blocks
    idx = (b.unsqueeze(-1) * s + torch.arange(s, device=x.device)).reshape(*lead, k * s)
    values, c = x.gather(-1, idx).topk(k, dim=-1, sorted=False)  # a gather along the last axis
    return values, idx.gather(-1, c)


class _JumpReLU(torch.autograd.Function):
    """``x * 1[x > θ]``. Gradient w.r.t. x: the gate; w.r.t. θ, the pseudo-derivative
    ``-(θ / ε) K((x - θ) / ε)`` with the rectangle kernel K = 1[|u| < 1/2] (Rajamanoharan et al.);
    ``eps`` broadcasts against ``x``."""

    @staticmethod
    def forward(ctx, x, theta, eps):
        ctx.save_for_backward(x, theta, eps)
        return x * (x > theta)

    @staticmethod
    def backward(ctx, grad):
        x, theta, eps = ctx.saved_tensors
        near = ((x - theta).abs() < eps / 2).to(grad.dtype)
        return grad * (x > theta), -(theta / eps) * near * grad, None


class _StepL0(torch.autograd.Function):
    """(T,) ``mean_b sum_l 1[pre > θ]``; w.r.t. θ (T, L) the pseudo-derivative
    ``-(1 / ε) K((pre - θ) / ε)`` with ε (T, L)."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta, eps)
        return (pre > theta).sum(dim=(0, 2)).to(pre.dtype) / len(pre)

    @staticmethod
    def backward(ctx, grad):
        pre, theta, eps = ctx.saved_tensors
        near = ((pre - theta).abs() < eps / 2).sum(0).to(grad.dtype)  # (T, L)
        return None, -(near / eps) * grad.view(-1, 1) / len(pre), None


class _SelectedPreacts(torch.autograd.Function):
    """Identity on the selected pre-activations; backward gives the exact encoder gradients.

    With ``pre[b, t, l] = relu(sum_d e[b, d] W[d, t*L + l] + b_enc[t*L + l] - (W_t^T b_pre_t)[l])``
    and a gradient ``g`` only at the selected (b, t, l):

    - dW[:, t*L + l] = sum_b g[b, t, l] e[b]     (a sparse-dense product, B*T*k non-zeros)
    - db_enc[t*L + l] = sum_b g[b, t, l]
    - db_pre[t] = -W_t @ db_enc_t
    """

    @staticmethod
    def forward(ctx, e, W_enc, b_pre, b_enc, values, indices):
        ctx.save_for_backward(e, W_enc, values, indices)
        ctx.b_pre = b_pre.detach()
        ctx.mark_non_differentiable(indices)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        e, W, values, indices = ctx.saved_tensors
        B, T, j = values.shape
        d, TL = W.shape
        L = TL // T
        g = (grad * (values > 0)).reshape(B, T * j)
        flat = flat_latents(indices, L).reshape(B, T * j)
        cols, order = flat.sort(dim=1)  # CSR wants sorted columns in each row
        vals = g.gather(1, order)
        crow = torch.arange(0, B * T * j + 1, T * j, device=e.device)
        with warnings.catch_warnings():  # "CSR support is in beta": the product used here is stable
            warnings.simplefilter("ignore", UserWarning)
            G = torch.sparse_csr_tensor(
                crow, cols.reshape(-1), vals.reshape(-1), (B, TL), dtype=e.dtype, check_invariants=False
            )
        gb = torch.zeros(TL, dtype=g.dtype, device=g.device).index_add_(0, flat.reshape(-1), g.reshape(-1))
        gW = None
        if ctx.needs_input_grad[1]:  # sum_b g (e_b - b_pre_t): the sparse product, then the b_pre part
            gWt = G.t() @ e.to(G.dtype)  # (TL, d)
            gWt.view(T, L, d).addcmul_(gb.view(T, L, 1), ctx.b_pre.view(T, 1, d), value=-1.0)
            gW = gWt.t()
        gpre = (
            -torch.einsum("dtl,tl->td", W.view(d, T, L), gb.view(T, L)) if ctx.needs_input_grad[2] else None
        )
        return None, gW, gpre, gb, None, None
