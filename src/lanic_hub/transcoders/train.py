"""Training the ensemble: nested (Matryoshka) FVUs + AuxK, unit-norm decoders, warmup + cosine LR
or a held-out plateau budget, atomic checkpoints that a rerun resumes from (:mod:`.checkpoint`),
and a progress bar with live FVU / L0 / dead fraction. What is measured on a trained ensemble is
in :mod:`.fidelity`."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError
from ..utils.progress import tqdm
from .checkpoint import CHECKPOINT, StaleCheckpointError, load_checkpoint, run_identity, save_checkpoint
from .ensemble import TranscoderConfig, TranscoderEnsemble
from .fidelity import convergence, full_fvu, plateau_step
from .step import topk_step


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the ensemble."""

    epochs: int = 20
    """Passes over the data, when ``steps`` is None."""
    steps: int | None = None
    """The budget in optimiser steps (the same on any data size); None: ``epochs`` passes."""
    batch_size: int = 512
    """Rows per step (every member sees the same rows)."""
    lr: float = 2e-3
    """Peak learning rate (Adam; linear warm-up, cosine decay to 0 at the last step)."""
    warmup_steps: int = 50
    """Steps of linear warm-up."""
    seed: int = 0
    """Seed of the data order."""
    checkpoint_every: int = 1
    """Epochs between checkpoints (when a checkpoint folder is given)."""
    checkpoint_seconds: float | None = None
    """Set: a checkpoint is written at the first epoch end at least this many seconds after the
    last one (and at the end), instead of every ``checkpoint_every`` epochs. At paper shape a
    checkpoint (weights and Adam moments of 10^8 parameters) is 1.3 GB, and an epoch of 20k
    phantoms is 4 steps. The model does not depend on when checkpoints are written."""
    convergence_checks: int = 8
    """Times, evenly spread over the schedule, the full-level FVU is measured on a fixed sample of
    the training rows (the first ``convergence_rows``): the run's FVU curve. 0: none."""
    convergence_rows: int = 2048
    """Rows of that sample."""
    plateau_tol: float = 0.05
    """The run counts as converged when its FVU fell by less than this share over the last quarter
    of the schedule; otherwise the report (and the health checks) say it was still falling."""
    plateau_every: int | None = None
    """Steps between checks of the full-level FVU on held-out rows (``heldout`` of
    :func:`train_ensemble`). Set, the data decide the budget: the learning rate stays at its peak
    after warm-up until that FVU fell by less than ``plateau_stop_tol`` (relative) over the last
    ``plateau_window`` checks, then decays to 0 (cosine) over ``cooldown`` times the steps run so
    far, and the run ends (a warmup-stable-decay schedule). ``steps`` stays the maximum: without a
    plateau the decay starts in time to end there. The test counts steps, never seconds, so the
    same seed and data give the same model on any machine. None: the cosine schedule over all
    ``steps``."""
    plateau_window: int = 3
    """Checks over which the held-out FVU must fall by at least ``plateau_stop_tol``."""
    plateau_stop_tol: float = 0.01
    """The relative fall of the held-out FVU over ``plateau_window`` checks below which the run has
    reached its plateau."""
    cooldown: float = 0.2
    """The decay after the plateau lasts this share of the steps run before it."""
    chunk_latents: int = 2048
    """On CPU, a training step handles members in chunks of about this many latents (see
    :func:`ensemble_grads`): the gradient is the same, and a chunk's intermediates stay in cache
    (measured best at 2048 for L = 256 and L = 2048 on 2 cores). On GPU the whole ensemble is one
    chunk: one wide matmul."""

    def __post_init__(self) -> None:
        if (
            self.epochs < 1
            or self.batch_size < 1
            or self.lr <= 0
            or (self.steps is not None and self.steps < 1)
            or (self.plateau_every is not None and self.plateau_every < 1)
            or self.plateau_window < 1
            or not 0 <= self.plateau_stop_tol < 1
            or not 0 < self.cooldown <= 1
        ):
            raise ConfigError(f"invalid training config {self}")

    def decay_window(self, start: int, total: int) -> tuple[int, int]:
        """(start, end) of the plateau schedule's decay when it starts at step ``start``; capped
        at the maximum ``total``."""
        return start, min(total, start + max(1, math.ceil(self.cooldown * start)))

    def latest_decay_start(self, total: int) -> int:
        """The step at which the decay starts when no plateau came first (it then ends at ``total``)."""
        return max(1, math.floor(total / (1 + self.cooldown)))

    def total_steps(self, rows: int) -> int:
        """The schedule's length on ``rows`` training rows."""
        return (
            self.steps if self.steps is not None else max(1, math.ceil(rows / self.batch_size)) * self.epochs
        )


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one (CPU and CUDA: ~7x faster than foreach on
    the ensemble's 10^8 parameters), else the default implementation."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))


def check_pairs(e: torch.Tensor, h: torch.Tensor, cfg: TranscoderConfig) -> None:
    """Clear errors before any training: shapes, emptiness, NaN/inf rows."""
    if e.ndim != 2 or h.ndim != 2 or len(e) != len(h):
        raise DataError(
            f"expected e (N, d) and h (N, H) with the same N, got {tuple(e.shape)} and {tuple(h.shape)}"
        )
    if len(e) == 0:
        raise DataError("no training rows")
    if e.shape[1] != cfg.d_in or h.shape[1] != cfg.d_out:
        raise DataError(
            f"e has width {e.shape[1]} and h {h.shape[1]}; the config says d_in={cfg.d_in}, d_out={cfg.d_out}"
        )
    for name, x in (("embeddings", e), ("hidden activations", h)):
        bad = torch.where(~torch.isfinite(x).all(dim=1))[0]
        if len(bad):
            raise DataError(f"non-finite {name} in rows {bad[:10].tolist()} ({len(bad)} rows)")


def ensemble_loss(
    model: TranscoderEnsemble, e: torch.Tensor, h: torch.Tensor, var: torch.Tensor, dead: torch.Tensor | None
):
    """(loss, full-level FVU per member, L0-proxy fired mask (T, L)) for one batch."""
    cfg = model.cfg
    values, indices, pre = model.encode_for_training(e)  # sparse backward, see _SelectedPreacts
    bins = model.decode_bins(values, indices)  # (B, T, n_levels, H)
    weights = cfg.level_weights or (1.0,) * len(cfg.resolved_levels)
    recon = model.b_dec.expand(len(e), -1, -1)
    loss = e.new_zeros(())
    for j, w in enumerate(weights):  # nested levels: each adds its bin to the previous one
        recon = recon + bins[:, :, j]
        f = (recon - h[:, None, :]).pow(2).sum(dim=(0, 2)) / var.clamp(min=1e-12)
        loss = loss + w * f.sum()
    fvu_full = f
    if cfg.activation == "jumprelu" and cfg.l0_coef > 0:
        loss = loss + cfg.l0_coef * model.l0_penalty(pre).sum()
    if dead is not None and dead.any() and cfg.aux_coef > 0:
        # AuxK: the dead latents' top pre-activations must explain what the member still misses
        # (on at most 128 rows of the batch: it is a revival signal, not the objective)
        n_aux = min(len(e), 128)
        res = (h[:n_aux, None, :] - recon[:n_aux]).detach()
        k = min(cfg.aux_k, cfg.n_latents)
        v, i = (pre[:n_aux].clamp(min=0) * dead.to(pre.dtype)).topk(k, dim=-1, sorted=False)
        v = model.selected(e[:n_aux], v, i)
        ea = model.decode(v, i) - model.b_dec
        res_var = (res - res.mean(0)).pow(2).sum(dim=(0, 2))
        aux = (ea - res).pow(2).sum(dim=(0, 2)) / res_var.clamp(min=1e-12)
        loss = loss + cfg.aux_coef * torch.nan_to_num(aux, nan=0.0).sum()
    fired = torch.zeros(cfg.n_members, cfg.n_latents, dtype=torch.bool, device=e.device)
    fired.scatter_(
        1,
        indices.permute(1, 0, 2).reshape(cfg.n_members, -1),
        values.permute(1, 0, 2).reshape(cfg.n_members, -1) > 0,
    )
    return loss, fvu_full.detach(), fired


def ensemble_grads(
    model: TranscoderEnsemble,
    e: torch.Tensor,
    h: torch.Tensor,
    var: torch.Tensor,
    dead: torch.Tensor | None,
    chunk_members: int,
    explicit: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of :func:`ensemble_loss` written into the parameters' ``.grad``, computed
    ``chunk_members`` members at a time (members are independent, so this is the same gradient).

    On a CPU the whole ensemble's (B, T, ...) intermediates stream through memory; a chunk's fit
    in cache. Returns (loss, full-level FVU per member, fired mask) like :func:`ensemble_loss`
    (the loss may differ by constants: AuxK is skipped in chunks without dead latents, where its
    gradient is zero).

    ``explicit``: the TopK step written out without autograd (:func:`~.step.topk_step`, the same
    gradients to rounding, about 1.5x faster on 2 CPU cores: ``python -m benchmarks ensemble``);
    None: wherever it applies (TopK, on a CPU). A JumpReLU ensemble, and any ensemble off the CPU
    (the sparse products there are untested: no GPU in CI), take autograd through
    :func:`ensemble_loss`.
    """
    T, L = model.cfg.n_members, model.cfg.n_latents
    if explicit is None:
        explicit = model.cfg.activation == "topk" and e.device.type == "cpu"
    elif explicit and model.cfg.activation != "topk":
        raise ConfigError("the explicit step is written for TopK ensembles; JumpReLU takes autograd")
    for p in model.parameters():  # the chunks cover every member: each slice is written once
        if p.grad is None:
            p.grad = torch.empty_like(p)
    total, fvus, fireds = e.new_zeros(()), [], []
    buffer = e.new_empty(len(e) * min(T, chunk_members) * L) if explicit else None  # one for all chunks
    for a in range(0, T, chunk_members):
        b = min(T, a + chunk_members)
        part = model.member_chunk(a, b)
        dead_part = None if dead is None else dead[a:b]
        if explicit:
            loss, fvu, fired = topk_step(part, e, h, var, dead_part, buffer)
        else:
            loss, fvu, fired = ensemble_loss(part, e, h, var, dead_part)
            loss.backward()
        model.W_enc.grad[:, a * L : b * L] = part.W_enc.grad
        model.b_enc.grad[a * L : b * L] = part.b_enc.grad
        for name in model.member_params():
            getattr(model, name).grad[a:b] = getattr(part, name).grad
        total = total + loss.detach()
        fvus.append(fvu)
        fireds.append(fired)
    return total, torch.cat(fvus), torch.cat(fireds)


def train_ensemble(
    e: torch.Tensor,
    h: torch.Tensor,
    cfg: TranscoderConfig,
    tcfg: TrainConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    stop_after_epochs: int | None = None,
    stale_checkpoint: str = "error",
    heldout: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[TranscoderEnsemble, dict[str, Any]]:
    """Train all members in one pass over (e, h). Resumes from ``checkpoint_dir`` if it holds a
    checkpoint of the same run (config, schedule and data, see :func:`run_identity`).

    ``heldout``: (e, h) rows not trained on, whose FVU decides when a schedule with
    ``plateau_every`` ends (required then; the report's ``ended_by`` says what ended the run).

    A checkpoint of another run raises :class:`StaleCheckpointError`, or with
    ``stale_checkpoint="restart"`` is deleted and training starts over.
    ``stop_after_epochs`` ends this call early (after a checkpoint) without changing the schedule,
    for time-sliced jobs: a later call with the same configs continues exactly where it stopped.
    """
    if stale_checkpoint not in ("error", "restart"):
        raise ConfigError(f"stale_checkpoint must be 'error' or 'restart', not {stale_checkpoint!r}")
    tcfg = tcfg or TrainConfig()
    e, h = e.float(), h.float()
    check_pairs(e, h, cfg)
    plateau = tcfg.plateau_every is not None
    if plateau:
        if heldout is None or len(heldout[0]) == 0:
            raise ConfigError(
                "plateau_every is set: give held-out rows (heldout=(e, h)) whose FVU decides when to stop"
            )
        heldout = (heldout[0].float()[: tcfg.convergence_rows], heldout[1].float()[: tcfg.convergence_rows])
        check_pairs(*heldout, cfg)
    model = TranscoderEnsemble(cfg)  # draws from its own generators (cfg.seed); no global seed
    model.init_from_data(e, h)
    groups = [{"params": [p for n, p in model.named_parameters() if n != "log_threshold"]}]
    if cfg.activation == "jumprelu":  # thresholds move in log space, at their own pace
        groups.append({"params": [model.log_threshold], "lr_scale": cfg.jump_lr_scale})
    opt = make_adam(groups, tcfg.lr)
    n = len(e)
    steps_per_epoch = max(1, math.ceil(n / tcfg.batch_size))
    total = tcfg.total_steps(n)
    n_epochs = math.ceil(total / steps_per_epoch)
    g = torch.Generator().manual_seed(tcfg.seed)
    since = torch.zeros(cfg.n_members, cfg.n_latents)  # samples since each latent last fired
    start_epoch, step = 0, 0
    curve: list[tuple[int, float]] = []  # (step, full-level FVU on the probe rows)
    held_curve: list[tuple[int, float]] = []  # (step, full-level FVU on the held-out rows)
    ck = Path(checkpoint_dir) if checkpoint_dir else None
    identity = run_identity(cfg, asdict(tcfg), e, h, heldout if plateau else None) if ck else {}
    if ck and (ck / CHECKPOINT).is_file():
        try:
            start_epoch, step, since, rng, curve, held_curve = load_checkpoint(
                ck / CHECKPOINT, identity, model, opt
            )
            g.set_state(rng)
        except StaleCheckpointError as exc:
            if stale_checkpoint == "error":
                raise
            (ck / CHECKPOINT).unlink()
            if progress:
                tqdm.write(f"starting over: {exc}")
    var = (h - h.mean(0)).pow(2).sum(1).mean()  # per-sample variance; scaled by batch size below

    # the plateau schedule: where its decay starts, replayed from the held-out curve on a resume
    found = plateau_step(held_curve, tcfg.plateau_window, tcfg.plateau_stop_tol) if plateau else None
    decay = tcfg.decay_window(found, total) if found is not None else None
    if plateau and decay is None and step >= tcfg.latest_decay_start(total):
        decay = tcfg.decay_window(tcfg.latest_decay_start(total), total)

    def lr_at(s: int) -> float:
        warm = min(1.0, (s + 1) / max(1, tcfg.warmup_steps))
        if not plateau:
            return tcfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        if decay is None or s < decay[0]:
            return tcfg.lr * warm
        frac = min(1.0, (s - decay[0]) / (decay[1] - decay[0]))
        return tcfg.lr * warm * 0.5 * (1 + math.cos(math.pi * frac))

    chunk = cfg.n_members if e.is_cuda else max(1, tcfg.chunk_latents // cfg.n_latents)
    t0 = saved_at = time.perf_counter()
    bar = tqdm(
        total=total, initial=step, desc=f"ensemble T={cfg.n_members}", unit="step", disable=not progress
    )
    last_fvu = torch.full((cfg.n_members,), float("nan"))
    probe = (e[: tcfg.convergence_rows], h[: tcfg.convergence_rows])  # fixed rows: no RNG drawn
    checks = (
        {round(total * (j + 1) / tcfg.convergence_checks) for j in range(tcfg.convergence_checks)}
        | {round(total * 0.75)}
        if tcfg.convergence_checks and not plateau  # a plateau run's curve is the held-out one
        else set()
    )
    for epoch in range(start_epoch, n_epochs):
        perm = torch.randperm(n, generator=g)
        for b in range(steps_per_epoch):
            if step >= (decay[1] if decay else total):
                break
            idx = perm[b * tcfg.batch_size : (b + 1) * tcfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(step) * group.get("lr_scale", 1.0)
            dead = since > cfg.dead_after
            loss, last_fvu, fired = ensemble_grads(model, e[idx], h[idx], var * len(idx), dead, chunk)
            if not torch.isfinite(loss):  # inputs were checked: this is divergence (lower the LR)
                bad = (~torch.isfinite(last_fvu)).nonzero(as_tuple=True)[0].tolist()
                raise DataError(
                    f"training diverged at epoch {epoch + 1}, step {step + 1}: non-finite loss "
                    f"(members {bad[:10] or 'none'} have non-finite FVU); lower the learning rate "
                    f"(lr={tcfg.lr}) or check the inputs"
                )
            opt.step()
            model.normalize_decoder()
            since += len(idx)
            since[fired] = 0
            step += 1
            bar.update()
            if step % 10 == 0:
                bar.set_postfix(fvu=f"{last_fvu.mean():.4f}", dead=f"{dead.float().mean():.3f}")
            if step in checks:
                curve.append((step, full_fvu(model, *probe)))
            if plateau and decay is None:
                if step % tcfg.plateau_every == 0:
                    held_curve.append((step, full_fvu(model, *heldout)))
                    found = plateau_step(held_curve, tcfg.plateau_window, tcfg.plateau_stop_tol)
                    if found is not None:
                        decay = tcfg.decay_window(found, total)
                if decay is None and step >= tcfg.latest_decay_start(total):
                    decay = tcfg.decay_window(tcfg.latest_decay_start(total), total)
        end = decay[1] if decay else total
        last = stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs
        done = step >= end
        due = (
            (epoch + 1) % tcfg.checkpoint_every == 0
            if tcfg.checkpoint_seconds is None
            else time.perf_counter() - saved_at >= tcfg.checkpoint_seconds
        )
        if ck and (due or epoch + 1 == n_epochs or last or done):
            save_checkpoint(ck, model, opt, epoch + 1, step, since, g, identity, curve, held_curve)
            saved_at = time.perf_counter()
        if last or done:
            break
    bar.close()
    model.eval()
    end = decay[1] if decay else total
    if step < end:
        ended_by = "stopped early (stop_after_epochs): a later call continues"
    elif not plateau:
        ended_by = "schedule (steps)"
    else:
        ended_by = "plateau" if found is not None else "maximum steps"
    report = {
        "steps": step,
        "planned_steps": total,
        "ended_by": ended_by,
        "seconds": round(time.perf_counter() - t0, 2),
        "train_config": asdict(tcfg),
        "config": cfg.to_dict(),
        "final_batch_fvu_mean": float(last_fvu.mean()),
        "convergence": convergence(curve, total, tcfg.plateau_tol)
        if not plateau
        else {
            "curve": [list(c) for c in held_curve],
            "measured_on": f"{len(heldout[0])} held-out rows",
            "converged": found is not None,
            "plateau_step": found,
            "decay": list(decay) if decay else None,
            "tol": tcfg.plateau_stop_tol,
        },
    }
    return model, report


__all__ = ["TrainConfig", "check_pairs", "ensemble_grads", "ensemble_loss", "make_adam", "train_ensemble"]
