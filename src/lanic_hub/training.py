"""``lanic-hub train``: the classifier, then the transcoder ensemble, from an embeddings folder.

Reads the embeddings (``lanic-hub embed``) and the labels of the same dataset, trains the
classifier on the train split (early stopping on validate), computes its hidden layer, trains the
ensemble on it, and writes everything with a fidelity report measured on the test split.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbone.embed import load_embeddings
from .classifier import ClassifierConfig, DiagnosticClassifier, macro_auroc, train_classifier
from .constants import FINDINGS
from .data.schema import dataset_fingerprint, label_matrix
from .errors import ConfigError, DataError
from .records import TrainingReport
from .trained import load_ensemble, load_trained, save_weights
from .transcoders import TrainConfig, TranscoderConfig, TranscoderEnsemble, fidelity, train_ensemble
from .transcoders.ensemble import ensemble_fingerprint, first_members
from .transcoders.fidelity import hidden_part, with_input_target

__all__ = [  # the train stage; load_trained, first_members, ensemble_fingerprint live below it
    "PRESETS",
    "ensemble_fingerprint",
    "first_members",
    "load_trained",
    "preset_schedule",
    "train_from_embeddings",
]

#: Ready configurations. 'paper' is CXR-LanIC's scale; 'phantom' keeps T = 100 at a CPU-sized L.
#: Budgets are optimiser steps, so a preset trains as long on a small dataset as on a large one
#: (an epoch budget gave the paper preset 70 steps on 20k phantoms: FVU 0.54).
from .data.phantom import truth
from .presets import PRESETS  # noqa: E402  (re-exported: lanic_hub.training.PRESETS)


def path_aurocs(
    clf: DiagnosticClassifier,
    ens: TranscoderEnsemble,
    e: torch.Tensor,
    y: np.ndarray,
    m: np.ndarray,
    batch: int | None = None,
) -> dict[str, Any]:
    """Macro / per-finding AUROC of the classifier, the ensemble path and each single-member path.
    Rows go through the ensemble a block at a time (the same bound on pre-activations as
    :func:`~lanic_hub.transcoders.fidelity`: 1,310 rows at paper shape), so memory does not grow
    with the rows beyond the (N, T, C) member logits."""
    if batch is None:
        batch = ens.cfg.block_rows()
    cls, ens_logits, member_logits = [], [], []
    with torch.no_grad():
        bias = ens.encoder_bias()
        for r in range(0, len(e), batch):
            eb = e[r : r + batch]
            v, i = ens.encode(eb, bias=bias)
            recon = ens.decode(v, i)  # (B, T, H)
            cls.append(clf(eb))
            ens_logits.append(clf.head(recon.mean(1)))
            member_logits.append(clf.head(recon))  # (B, T, C)
    cls, ens_logits = torch.cat(cls).numpy(), torch.cat(ens_logits).numpy()
    per_member = torch.cat(member_logits)
    members = [macro_auroc(per_member[:, t].numpy(), y, m) for t in range(ens.T)]
    c_macro, c_per = macro_auroc(cls, y, m)
    e_macro, e_per = macro_auroc(ens_logits, y, m)
    # (T, 1 + C): each member's macro and per-finding AUROC, summarised over members
    table = np.array([[macro, *per] for macro, per in members], dtype=float)
    return {
        "classifier": {"macro": c_macro, **dict(zip(FINDINGS, c_per, strict=True))},
        "ensemble_path": {"macro": e_macro, **dict(zip(FINDINGS, e_per, strict=True))},
        "single_member": {
            name: {"min": float(np.min(col)), "median": float(np.median(col)), "max": float(np.max(col))}
            for name, col in zip(("macro", *FINDINGS), table.T, strict=True)
        },
    }


def baseline_aurocs(
    x: torch.Tensor,
    y: np.ndarray,
    mask: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
    backbone_spec: str | None,
) -> dict[str, Any]:
    """Test-split AUROCs of the baselines trained on the same train split and embeddings."""
    from .baselines import LinearProbe, SAESparseProbe, ZeroShot

    xn = x.numpy()
    res: dict[str, Any] = {}
    lp = LinearProbe().fit(xn[tr], y[tr], mask[tr])
    sae = SAESparseProbe().fit(xn[tr], y[tr], mask[tr])
    models: dict[str, Any] = {"linear_probe": lp, "sae_sparse_probe": sae}
    if backbone_spec:
        from .backbone import BackboneError, load_backbone

        try:
            models["zero_shot"] = ZeroShot.from_backbone(load_backbone(backbone_spec))
        except BackboneError as exc:  # the backbone may live elsewhere; say so, do not fail training
            res["zero_shot"] = {"error": str(exc)}
    for name, m in models.items():
        macro, per = macro_auroc(m.logits(xn[te]), y[te], mask[te])
        res[name] = {"macro": macro, **dict(zip(FINDINGS, per, strict=True))}
    res["sae_sparse_probe"]["nonzero_coefficients"] = sae.nonzero_coefficients()
    return res


def matryoshka_vs_topk(
    ens: TranscoderEnsemble,
    x_tr: torch.Tensor,
    h_tr: torch.Tensor,
    x_te: torch.Tensor,
    h_te: torch.Tensor,
    test_rows,
    train: TrainConfig,
    n_members: int = 10,
    progress: bool = False,
) -> dict[str, Any]:
    """Best single-latent AUROC per ground-truth factor, and FVU / L0 / dead fraction: the
    ensemble's first members vs ensembles of the same L, k and member count trained on the same
    data as plain TopK (one level) and as JumpReLU (the same levels; k is then a cap)."""
    from .data.phantom import ALL_FACTORS, FINDING_FACTORS
    from .transcoders.analysis import best_latents

    n = min(n_members, ens.T)
    base = replace(ens.cfg, n_members=n, first_member=0)
    variants = {"matryoshka": ens if n == ens.T else first_members(ens, n)}
    others = {
        "plain_topk": replace(base, levels=(base.n_latents,), activation="topk"),
        "jumprelu": replace(base, activation="jumprelu"),
    }
    for name, cfg in others.items():
        if cfg != variants["matryoshka"].cfg:  # a JumpReLU ensemble is compared with TopK instead
            variants[name] = train_ensemble(x_tr, h_tr, cfg, train, progress=progress)[0]
    gt = {f: truth.presence_of(test_rows, f) for f in ALL_FACTORS}
    out: dict[str, Any] = {
        "members_compared": n,
        "measured_on": "test split, all severities; findings also at moderate+ (severity >= 0.5 vs absent)",
        "fidelity": {},
    }
    for name, model in variants.items():
        res = {f: r["auroc"] for f, r in best_latents(model, x_te, gt).items()}
        for f in FINDING_FACTORS:
            sev = truth.severity(test_rows, f)
            keep = ~gt[f] | (sev >= 0.5)
            res[f"{f}@moderate+"] = best_latents(model, x_te[torch.as_tensor(keep)], {f: gt[f][keep]})[f][
                "auroc"
            ]
        out[name] = res
        fid = fidelity(model, x_te, h_te)
        out["fidelity"][name] = {
            "levels": list(model.cfg.resolved_levels),
            "fvu_full_test": float(np.mean(fid["fvu"][str(model.cfg.n_latents)])),
            "l0_test": float(np.mean(fid["l0"])),
            "dead_fraction_train": float(np.mean(fidelity(model, x_tr, h_tr)["dead_fraction"])),
        }
    return out


@torch.no_grad()
def input_fvu(ens: TranscoderEnsemble, e: torch.Tensor, scale: float, d_out: int) -> float:
    """FVU of the ensemble's input reconstruction (the outputs after the first ``d_out``,
    divided by ``scale``) on ``e``, a block of rows at a time."""
    sse, step = 0.0, ens.cfg.block_rows()
    for a in range(0, len(e), step):
        x = e[a : a + step]
        v, i = ens.encode(x)
        sse += float((ens.decode(v, i).mean(1)[:, d_out:] / scale - x).pow(2).sum())
    return sse / max(float((e - e.mean(0)).pow(2).sum()), 1e-12)


def _train_members(
    x: torch.Tensor,
    h: torch.Tensor,
    tcfg: TranscoderConfig,
    train: TrainConfig,
    out: Path,
    progress: bool,
    heldout: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[TranscoderEnsemble | None, dict[str, Any]]:
    """Train the ensemble here, or, under torchrun, this rank's slice of members (no gradient sync:
    members are independent); rank 0 gathers the slices from disk and returns the whole ensemble.
    A killed run resumes from its checkpoint; a checkpoint of another run (other config, schedule
    or data) is replaced, as the rest of ``out`` is."""
    from .backbone.embed import dist_info
    from .transcoders.ensemble import concat_members

    rank, world = dist_info()
    if world == 1:
        return train_ensemble(
            x,
            h,
            tcfg,
            train,
            checkpoint_dir=out / "checkpoint",
            progress=progress,
            stale_checkpoint="restart",
            heldout=heldout,
        )
    bounds = [tcfg.n_members * r // world for r in range(world + 1)]
    part_cfg = tcfg.slice(bounds[rank], bounds[rank + 1])
    part, rep = train_ensemble(
        x,
        h,
        part_cfg,
        train,
        checkpoint_dir=out / "checkpoint" / f"rank{rank}",
        progress=progress and rank == 0,
        stale_checkpoint="restart",
        heldout=heldout,
    )
    save_weights(part.state_dict(), part_cfg.to_dict(), out / f"members-{rank:03d}.safetensors")
    torch.distributed.barrier()
    if rank != 0:
        return None, rep
    parts = [load_ensemble(out / f"members-{r:03d}.safetensors") for r in range(world)]
    for r in range(world):
        (out / f"members-{r:03d}.safetensors").unlink()
        (out / f"members-{r:03d}.json").unlink()
    return concat_members(parts).eval(), {**rep, "member_parallel_processes": world}


def text_stream(emb, x_img: torch.Tensor, rows: set[int]) -> torch.Tensor:
    """Report and sentence embeddings of the given rows, centred per modality against the modality
    gap: each text cloud is moved so that its mean is the image mean (and re-normalised), so the
    classifier and transcoders see text where images live."""
    if emb.report is None or emb.sentence is None:
        raise DataError(
            "multimodal training needs text embeddings: rerun `lanic-hub embed` without --no-text"
        )
    keep_r = torch.tensor([int(r) in rows for r in emb.row_ids]) & emb.has_report
    keep_s = torch.tensor([int(r) in rows for r in emb.sentence_row])
    mu = x_img.mean(0)
    parts = []
    for t in (emb.report[keep_r].float(), emb.sentence[keep_s].float()):
        t = torch.unique(t, dim=0)  # report sentences repeat a lot; each distinct text once
        if len(t):
            parts.append(torch.nn.functional.normalize(t - t.mean(0) + mu, dim=1))
    if not parts:
        raise DataError("no report or sentence embeddings among the training rows")
    return torch.cat(parts)


def preset_schedule(cfg: TranscoderConfig) -> TrainConfig:
    """The image-stream schedule of the preset an ensemble of this shape comes from ('paper' at
    its L, else 'phantom'; smoke mode: :data:`lanic_hub.smoke.STEPS` steps), as the evaluation's
    baselines train with it."""
    from .smoke import steps as smoke_steps

    preset = "paper" if cfg.n_latents == PRESETS["paper"]["ensemble"]["n_latents"] else "phantom"
    # the baselines train to the preset's maximum: they have no held-out rows to stop on
    schedule = replace(TrainConfig(**PRESETS[preset]["train"]), plateau_every=None)
    n = smoke_steps(None)
    return schedule if n is None else replace(schedule, steps=n)


def train_from_embeddings(
    embeddings: str | Path,
    out: str | Path,
    *,
    data: str | None = None,
    preset: str = "phantom",
    n_members: int | None = None,
    n_latents: int | None = None,
    policy: str = "U-Ignore",
    classifier: ClassifierConfig | None = None,
    multimodal: bool | None = None,
    activation: str = "topk",
    input_weight: float | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> TrainingReport | None:
    """Train classifier + ensemble; write ``classifier.safetensors``, ``ensemble.safetensors`` (each
    with a ``.json`` config beside it) and ``fidelity.json`` under ``out``.

    ``multimodal`` adds the train split's report and sentence embeddings to the transcoders'
    training stream (targets: the classifier's hidden layer on them), see :func:`text_stream`,
    for the preset's ``multimodal_steps``; None (default): whenever the embeddings have text.
    ``activation`` is 'topk' (default) or 'jumprelu' (see :class:`TranscoderConfig`).
    ``input_weight`` λ > 0 trains the transcoders to reconstruct their input too (loss
    ``FVU_h + λ FVU_e``, :func:`~lanic_hub.transcoders.train.with_input_target`); the saved
    ensemble keeps the h half of its decoders. None: the preset's (0: h alone).
    ``steps`` overrides the preset's step budget (either stream); ``epochs`` replaces it by that
    many passes over the stream. ``n_members`` / ``n_latents`` override the preset's T / L.
    """
    from .data.open import open_dataset

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    w_in = float(PRESETS[preset].get("input_weight", 0.0) if input_weight is None else input_weight)
    if not w_in >= 0:  # before any work: NaN too
        raise ConfigError(f"input_weight must be >= 0, got {w_in}")
    emb = load_embeddings(embeddings)
    spec = data or emb.manifest.data_spec
    if not spec:
        raise DataError(f"{embeddings}: the manifest does not say which dataset it came from; pass --data")
    ds = open_dataset(spec)
    if dataset_fingerprint(ds) != emb.manifest.dataset.fingerprint:
        raise DataError(
            f"{spec} is not the dataset these embeddings were made from (fingerprint "
            f"{dataset_fingerprint(ds)} != {emb.manifest.dataset.fingerprint})"
        )
    rows = emb.row_ids.numpy()
    sub = ds.select(rows)
    y, mask = label_matrix(sub, policy=policy)
    split = np.array(sub["split"])
    x = emb.image.float()
    parts = {s: np.where(split == s)[0] for s in ("train", "validate", "test")}
    for s, idx in parts.items():
        if len(idx) == 0:
            raise DataError(f"{spec}: the {s!r} split is empty among the {len(rows)} embedded rows")
    tr, va, te = parts["train"], parts["validate"], parts["test"]
    clf, clf_rep = train_classifier(
        x[tr].numpy(), y[tr], mask[tr], x[va].numpy(), y[va], mask[va], classifier, progress=progress
    )
    with torch.no_grad():
        h = clf.hidden(x)
    from .smoke import members as smoke_members
    from .smoke import steps as smoke_steps

    n_members = smoke_members(n_members)
    if epochs is None:
        steps = smoke_steps(steps)
    p = PRESETS[preset]
    ens_kw = dict(p["ensemble"], activation=activation)
    if n_members is not None:
        ens_kw["n_members"] = n_members
    if n_latents is not None and n_latents != ens_kw["n_latents"]:
        ens_kw["n_latents"] = n_latents
        ens_kw.pop("levels", None)  # the preset's levels end at its own L
    tcfg = TranscoderConfig(d_in=x.shape[1], d_out=h.shape[1], **ens_kw)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x_fit, h_fit = x[tr], h[tr]
    schedule = TrainConfig(**p["train"])
    if multimodal is None:  # auto: the text stream whenever the embeddings have it
        multimodal = emb.report is not None and emb.sentence is not None and bool(emb.has_report[tr].any())
    if multimodal:
        x_text = text_stream(emb, x[tr], set(emb.row_ids[tr].tolist()))
        with torch.no_grad():
            x_fit, h_fit = torch.cat([x_fit, x_text]), torch.cat([h_fit, clf.hidden(x_text)])
        schedule = replace(schedule, steps=p.get("multimodal_steps", schedule.steps))
    if epochs is not None:
        schedule = replace(schedule, epochs=epochs, steps=None)
    if steps is not None:
        schedule = replace(schedule, steps=steps)
    fit_cfg, target, scale = tcfg, h_fit, None
    held = (x[va], h[va]) if schedule.plateau_every is not None else None  # ends a plateau schedule
    if w_in > 0:
        target, scale = with_input_target(x_fit, h_fit, w_in)
        fit_cfg = replace(tcfg, d_out=target.shape[1])
        held = (x[va], torch.cat([h[va], scale * x[va]], 1)) if held else None
    ens, ens_rep = _train_members(x_fit, target, fit_cfg, schedule, out, progress, held)
    if ens is not None and w_in > 0:
        fvu_e = input_fvu(ens, x[te], scale, h.shape[1])
        ens = hidden_part(ens, h.shape[1])
    ens_rep["input_reconstruction"] = (
        {"weight": w_in, "scale": scale, "fvu_e_test": fvu_e} if w_in > 0 else {"weight": 0.0}
    )
    ens_rep["multimodal"] = {
        "enabled": multimodal,
        "stream_rows": len(x_fit),
        "image_rows": len(tr),
        "steps": schedule.total_steps(len(x_fit)),
        "epochs": round(schedule.total_steps(len(x_fit)) / max(1, -(-len(x_fit) // schedule.batch_size)), 2),
    }
    if ens is None:  # a non-zero rank of a member-parallel run: rank 0 writes the results
        return None
    fid = fidelity(ens, x[te], h[te])
    fid_tr = fidelity(ens, x[tr], h[tr])  # dead / dense are defined on the training set
    report = {
        "schema_version": TrainingReport.SCHEMA,
        "measured_on": f"{spec}, test split ({len(te)} rows); trained on train ({len(tr)}), "
        f"early-stopped on validate ({len(va)})",
        "policy": policy,
        "classifier": clf_rep,
        "ensemble": ens_rep,
        "fidelity": {
            "fvu_mean": {lv: float(np.mean(v)) for lv, v in fid["fvu"].items()},
            "l0_mean": float(np.mean(fid["l0"])),
            "dead_fraction_mean_train": float(np.mean(fid_tr["dead_fraction"])),
            "dense_fraction_mean_train": float(np.mean(fid_tr["dense_fraction"])),
            "per_member_test": fid,
            "per_member_train": fid_tr,
        },
        "auroc": path_aurocs(clf, ens, x[te], y[te], mask[te]),
    }
    report["baselines"] = baseline_aurocs(x, y, mask, tr, te, emb.manifest.backbone.spec)
    report["labels"] = {
        s: {
            f: {"positive": int(y[idx, j][mask[idx, j]].sum()), "labelled": int(mask[idx, j].sum())}
            for j, f in enumerate(FINDINGS)
        }
        for s, idx in parts.items()
    }
    if truth.is_phantom(sub.column_names):  # a phantom world: compare against the ground truth
        # the variants train as many steps as the ensemble took (a plateau schedule: to its end)
        same = replace(schedule, plateau_every=None, steps=ens_rep["steps"])
        report["ground_truth_detection"] = matryoshka_vs_topk(
            ens, x_fit, h_fit, x[te], h[te], sub.select(te), same, progress=progress
        )
    from .health import training_checks

    rec = TrainingReport.from_dict(json.loads(json.dumps(report)), out / TrainingReport.FILE)
    rec.health = [c.to_dict() for c in training_checks(rec)]
    save_weights(
        clf.state_dict(),
        {"d_in": x.shape[1], **asdict(replace(classifier or ClassifierConfig())), "findings": list(FINDINGS)},
        out / "classifier.safetensors",
    )
    save_weights(ens.state_dict(), tcfg.to_dict(), out / "ensemble.safetensors")
    rec.write(out)
    return rec
