"""Training the ensemble: nested (Matryoshka) FVUs + AuxK, unit-norm decoders, warmup + cosine LR,
atomic checkpoints that a rerun resumes from, and a progress bar with live FVU / L0 / dead fraction."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import ConfigError, DataError
from ..utils.progress import tqdm
from .ensemble import TranscoderConfig, TranscoderEnsemble
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


CHECKPOINT = "checkpoint.safetensors"


def run_identity(
    cfg: TranscoderConfig,
    tcfg: TrainConfig,
    e: torch.Tensor,
    h: torch.Tensor,
    heldout: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the ensemble config, the schedule (everything
    in the training config that changes the result) and a hash of the training data."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for x in (e, h):
        digest.update(str(tuple(x.shape)).encode())
        digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    skip = [
        "checkpoint_every",
        "checkpoint_seconds",
        "chunk_latents",
        "convergence_checks",
        "convergence_rows",
        "plateau_tol",
    ]
    if tcfg.plateau_every is None:  # the cosine schedule: the plateau settings change nothing
        skip += ["plateau_every", "plateau_window", "plateau_stop_tol", "cooldown"]
    else:  # the held-out rows decide the budget: they are part of the run
        for x in heldout or ():
            digest.update(str(tuple(x.shape)).encode())
            digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    schedule = {k: v for k, v in asdict(tcfg).items() if k not in skip}
    return {"config": cfg.to_dict(), "schedule": schedule, "data": digest.hexdigest()}


def plateau_step(curve: list[tuple[int, float]], window: int, tol: float) -> int | None:
    """The first check of a held-out FVU curve ((step, FVU), in order) at which the FVU had fallen
    by less than ``tol`` (relative) over the ``window`` checks before it; None if none has."""
    for j in range(window, len(curve)):
        before, now = curve[j - window][1], curve[j][1]
        if (before - now) / max(before, 1e-12) < tol:
            return curve[j][0]
    return None


def _save_checkpoint(
    folder: Path,
    model: TranscoderEnsemble,
    opt,
    epoch: int,
    step: int,
    since: torch.Tensor,
    g: torch.Generator,
    identity: dict[str, Any],
    curve: list[tuple[int, float]],
    heldout_curve: list[tuple[int, float]] = (),
) -> None:
    """One file, renamed into place: weights, Adam moments, latent ages and the data-order RNG,
    with epoch, step, the FVU curve so far and the run's identity (:func:`run_identity`) in its
    metadata. Nothing in it is pickled, and a kill at any moment leaves the previous complete
    checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    t = {f"model.{k}": v.detach() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for i, st in osd["state"].items():
        t |= {f"opt.{i}.{k}": torch.as_tensor(v).detach() for k, v in st.items()}
    t |= {"since": since, "rng": g.get_state()}
    meta = {
        "epoch": str(epoch),
        "step": str(step),
        "identity": json.dumps(identity, sort_keys=True),
        "param_groups": json.dumps(osd["param_groups"]),
        "curve": json.dumps([list(c) for c in curve]),
        "heldout_curve": json.dumps([list(c) for c in heldout_curve]),
    }
    tmp = folder / f"{CHECKPOINT}.tmp{os.getpid()}"
    save_file({k: v.contiguous() for k, v in t.items()}, tmp, metadata=meta)
    os.replace(tmp, folder / CHECKPOINT)


class StaleCheckpointError(ConfigError):
    """The checkpoint belongs to another run (config, schedule or data)."""


def _load_checkpoint(path: Path, identity: dict[str, Any], model: TranscoderEnsemble, opt):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in f.keys()}
        epoch, step, groups = int(meta["epoch"]), int(meta["step"]), json.loads(meta["param_groups"])
        saved = json.loads(meta.get("identity", "{}"))
        curve = [(int(s), float(f)) for s, f in json.loads(meta.get("curve", "[]"))]
        held = [(int(s), float(f)) for s, f in json.loads(meta.get("heldout_curve", "[]"))]
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(
            f"{path}: not a readable lanic-hub checkpoint ({exc}); delete it to start over"
        ) from exc
    differs = [k for k in identity if saved.get(k) != identity[k]]
    if differs:
        raise StaleCheckpointError(
            f"{path}: checkpoint was made with another {' and '.join(differs)} "
            f"({ {k: saved.get(k) for k in differs} }); use a new folder or delete it"
        )
    model.load_state_dict({k[len("model.") :]: v for k, v in t.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in t.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})
    return epoch, step, t["since"], t["rng"], curve, held


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
    identity = run_identity(cfg, tcfg, e, h, heldout if plateau else None) if ck else {}
    if ck and (ck / CHECKPOINT).is_file():
        try:
            start_epoch, step, since, rng, curve, held_curve = _load_checkpoint(
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
                curve.append((step, _full_fvu(model, *probe)))
            if plateau and decay is None:
                if step % tcfg.plateau_every == 0:
                    held_curve.append((step, _full_fvu(model, *heldout)))
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
            _save_checkpoint(ck, model, opt, epoch + 1, step, since, g, identity, curve, held_curve)
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


@torch.no_grad()
def _full_fvu(model: TranscoderEnsemble, e: torch.Tensor, h: torch.Tensor, block: int = 256) -> float:
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


__all__ = ["StaleCheckpointError", "TrainConfig", "train_ensemble", "fidelity", "check_pairs", "run_identity"]


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
