"""``lanic-eval``: evaluate LanIC models and baselines on a suite, one results JSON each.

A results file (``<out>/results/<suite>/<slug>.json``, schema below) records the model id and
revision, the dataset (spec, fingerprint, split, rows), the lanic-hub version, the seed and the
wall time, and the metrics. Every model is evaluated on its own; one that fails leaves the other
files untouched. The leaderboard (:mod:`.leaderboard`) is regenerated from whatever files exist.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import FINDINGS
from ..data.phantom import truth
from ..errors import DataError
from ..explain import decomposition_by_pattern
from ..records.results import EvalResults
from . import metrics as M
from .leaderboard import write_leaderboard
from .records import SCHEMA_VERSION, SuiteData
from .suites import check_suite_data, load_suite

TOP_PATTERNS = 10
"""The sparse path keeps the bias plus the top-10 patterns (by |contribution|) of each prediction."""

ROW_CHUNK = 1024
"""Rows decomposed at a time: the evaluation's memory is bounded in the number of rows (at paper
shape a chunk's (rows, P + T*k, C) contribution sort is the largest buffer, ~0.35 GB)."""


def _chunks(n: int, size: int = ROW_CHUNK):
    return (slice(a, min(n, a + size)) for a in range(0, n, size))


def _accuracy_block(logits: np.ndarray, d: SuiteData, te: np.ndarray, va: np.ndarray, n_boot: int, seed: int):
    p = 1 / (1 + np.exp(-logits))
    au = M.auroc_with_ci(d.y[te], logits[te], d.mask[te], n_boot=n_boot, seed=seed)
    thr = M.f1_thresholds(d.y[va], p[va], d.mask[va])
    notes = [
        f"{f}: a single class among the {int(d.mask[te, c].sum())} labelled test rows; no AUROC "
        "(left out of the macro mean)"
        for c, f in enumerate(FINDINGS[: d.y.shape[1]])
        if np.isnan(au["per_finding"][c])
    ]
    return {
        "notes": notes,
        "auroc": au,
        "auprc": M.auprc(d.y[te], logits[te], d.mask[te]),
        "f1": M.f1_at(d.y[te], p[te], thr, d.mask[te]),
        "f1_thresholds_from_validate": thr,
        "ece": M.expected_calibration_error(d.y[te], p[te], d.mask[te]),
    }


@torch.no_grad()
def evaluate_lanic(model, d: SuiteData, *, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """All metric families for one LanIC model on the suite's test split."""
    from ..transcoders import fidelity as ens_fidelity

    te, va = np.where(d.split == "test")[0], np.where(d.split == "validate")[0]
    if len(te) == 0:
        raise DataError(f"suite {d.name}: the test split is empty")
    clf, ens, bank = model.classifier, model.ensemble, model.bank
    x = d.x.float()
    logits = clf(x).numpy()
    ens_logits, sparse = np.zeros_like(logits), np.zeros_like(logits)
    bias = ens.encoder_bias()
    for rows in _chunks(len(x)):
        parts = decomposition_by_pattern(clf, ens, bank, x[rows], encoder_bias=bias)
        ens_logits[rows] = (parts.bias + parts.patterns.sum(1) + parts.unbanked).numpy()
        # sparse path: bias + the top patterns of each prediction
        pc = parts.patterns  # (rows, P, C)
        k = min(TOP_PATTERNS, pc.shape[1])
        sparse[rows] = (
            parts.bias + (pc.gather(1, pc.abs().topk(k, dim=1).indices).sum(1) if k else 0)
        ).numpy()
    if getattr(model.config, "removed", None):  # a changed model: its removed items are taken out
        removed = model.removed_contributions(x).numpy()
        logits, ens_logits, sparse = logits - removed, ens_logits - removed, sparse - removed
    out: dict[str, Any] = {}
    if d.accuracy:
        out["accuracy"] = {
            "classifier": _accuracy_block(logits, d, te, va, n_boot, seed),
            "ensemble_path": _accuracy_block(ens_logits, d, te, va, n_boot, seed),
            f"top{TOP_PATTERNS}_patterns_path": _accuracy_block(sparse, d, te, va, n_boot, seed),
        }
        cm, em = (
            out["accuracy"]["classifier"]["auroc"]["macro"],
            out["accuracy"]["ensemble_path"]["auroc"]["macro"],
        )
    h = clf.hidden(x[te])
    fid = ens_fidelity(ens, x[te], h)
    out["fidelity"] = {
        "logit_r2": M.logit_r2(logits[te], ens_logits[te]),
        "auroc_drop_macro": (cm - em) if d.accuracy else None,
        "fvu": {lv: float(np.mean(v)) for lv, v in fid["fvu"].items()},
        "l0": float(np.mean(fid["l0"])),
        "dead_fraction": float(np.mean(fid["dead_fraction"])),
        "dense_fraction": float(np.mean(fid["dense_fraction"])),
    }
    pats = bank.patterns
    cats = sorted({p.category for p in pats})
    mono: dict[str, Any] = {
        "patterns": len(pats),
        "ms": M.summary([p.ms for p in pats]),
        "ms_by_category": {c: M.summary([p.ms for p in pats if p.category == c]) for c in cats},
        "purity": M.summary([np.nan if p.purity["auroc"] is None else p.purity["auroc"] for p in pats]),
        "text_coherence": M.summary([np.nan if p.text_coherence is None else p.text_coherence for p in pats]),
        "bank_measured_on": bank.meta.measured_on,
    }
    if truth.is_phantom(d.rows.column_names) and len(pats):
        from ..patterns.phantom_check import ground_truth_check, pattern_activations

        gt = ground_truth_check(pattern_activations(ens, bank, x[te]).numpy(), bank, d.rows.select(te))
        mono["ground_truth"] = {k: v for k, v in gt.items() if k != "factors"}
        mono["ground_truth"]["factors"] = {
            f: {"auroc_moderate_plus": v["auroc_moderate_plus"], "best_pattern_name": v["best_pattern_name"]}
            for f, v in gt["factors"].items()
        }
    out["monosemanticity"] = mono
    out["explanations"] = explanation_metrics(clf, ens, bank, x[te])
    out["stability"] = stability(ens, [p.support for p in pats], seed=seed)
    return out


@torch.no_grad()
def explanation_metrics(clf, ens, bank, x: torch.Tensor, steps=(1, 5, 10, 20)):
    """Coverage, completeness and deletion / insertion faithfulness, over ``x`` a chunk of rows at
    a time (:data:`ROW_CHUNK`).

    Deletion: switch off the latents of the top-m patterns of a prediction, recompute the ensemble
    path *through the decoder*, and compare the logit change with the sum of the patterns'
    contributions. Insertion: start from the bias and add the top-m patterns' latents back. For an
    exact decomposition both gaps are ~0, and the curves show how fast the logit moves.
    """
    from ..transcoders.ensemble import flat_latents

    W2, b2 = clf.fc2.weight, clf.fc2.bias
    base = b2 + W2 @ ens.b_dec.mean(0)
    bias = ens.encoder_bias()
    n_cover, completeness = [], 0.0
    moved: dict[int, list[torch.Tensor]] = {m: [] for m in steps}
    gap_d: dict[int, float] = {}
    gap_i: dict[int, float] = {}
    for rows in _chunks(len(x)):
        e = x[rows]
        parts = decomposition_by_pattern(clf, ens, bank, e, encoder_bias=bias)
        logits = clf(e)
        total = parts.bias + parts.patterns.sum(1) + parts.unbanked + parts.error
        completeness = max(completeness, float((total - logits).abs().max()))
        n_cover.append(parts.n_cover)
        v, i = ens.encode(e, bias=bias)
        lat_pid = bank.latent_pattern[flat_latents(i, ens.cfg.n_latents)]
        full = ens.decode(v, i).mean(1) @ W2.T + b2
        for m in steps:
            for c in range(logits.shape[1]):
                pc = parts.patterns[:, :, c]
                k = min(m, pc.shape[1])
                if k == 0:
                    continue
                top = pc.abs().topk(k, dim=1).indices  # (rows, k)
                hit = (lat_pid.unsqueeze(-1) == top.view(-1, 1, 1, k)).any(-1)  # (rows, T, k_latents)
                off = ens.decode(v * ~hit, i).mean(1) @ W2[c] + b2[c]
                on = ens.decode(v * hit, i).mean(1) @ W2[c] + b2[c]
                contrib = pc.gather(1, top).sum(1)
                gap_d[m] = max(gap_d.get(m, 0.0), float((full[:, c] - off - contrib).abs().max()))
                gap_i[m] = max(gap_i.get(m, 0.0), float((on - base[c] - contrib).abs().max()))
                moved[m].append((full[:, c] - off).abs())
    cover = torch.cat(n_cover).float().numpy().ravel()
    out: dict[str, Any] = {
        "patterns_for_90pct": M.summary(cover),
        # the paper's "each prediction decomposes into 20-50 patterns"
        "patterns_for_90pct_in_20_50": float(((cover >= 20) & (cover <= 50)).mean()) if len(cover) else None,
        "completeness_error_max": completeness,
    }
    out["deletion"] = {
        str(m): {
            "mean_abs_logit_change": float(torch.cat(moved[m]).mean()),
            "max_gap_to_contributions": gap_d[m],
        }
        for m in steps
        if moved[m]
    }
    out["insertion"] = {str(m): {"max_gap_to_contributions": gap_i[m]} for m in steps if moved[m]}
    return out


def stability(ens, supports: list[int], pairs: int = 10, seed: int = 0) -> dict[str, Any]:
    """Hungarian-matched decoder similarity between random member pairs, and the support spread."""
    T = ens.cfg.n_members
    rng = np.random.default_rng(seed)
    W = ens.W_dec.detach().numpy()
    sims = []
    if T > 1:
        for _ in range(pairs):
            a, b = rng.choice(T, 2, replace=False)
            sims.append(M.hungarian_similarity(W[a], W[b]))
    return {
        "hungarian_decoder_similarity": M.summary(np.array(sims)) if sims else None,
        "pairs": len(sims),
        "support": M.summary(np.array(supports, dtype=float)),
    }


def evaluate_baselines(model, d: SuiteData, *, n_boot: int = 200, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Baselines on the suite's embeddings (trained on its train split): linear probe, zero-shot,
    SAE + sparse probe, a single plain-TopK transcoder, LanIC sub-ensembles of 1 and 10 members."""
    from ..baselines import LinearProbe, SAESparseProbe, ZeroShot
    from ..transcoders import train_ensemble

    tr, va, te = (np.where(d.split == s)[0] for s in ("train", "validate", "test"))
    if len(tr) == 0 or len(te) == 0:
        raise DataError(f"suite {d.name}: baselines need non-empty train and test splits")
    x = d.x.float()
    xn = x.numpy()
    res: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()

    def add(name: str, logits: np.ndarray, t0: float, extra: dict | None = None) -> None:
        res[name] = {"accuracy": {"model": _accuracy_block(logits, d, te, va, n_boot, seed)}, **(extra or {})}
        res[name]["seconds"] = round(time.perf_counter() - t0, 2)

    add("linear probe", LinearProbe().fit(xn[tr], d.y[tr], d.mask[tr]).logits(xn), t)
    t = time.perf_counter()
    try:
        add("zero-shot prompts", ZeroShot.from_backbone(model.backbone).logits(xn), t)
    except Exception as exc:  # noqa: BLE001 (a backbone without a text tower: say so in the results)
        res["zero-shot prompts"] = {"error": str(exc)}
    t = time.perf_counter()
    sae = SAESparseProbe().fit(xn[tr], d.y[tr], d.mask[tr])
    add("SAE + sparse probe", sae.logits(xn), t, {"nonzero_coefficients": sae.nonzero_coefficients()})
    clf, ens = model.classifier, model.ensemble
    with torch.no_grad():
        h = clf.hidden(x)
    t = time.perf_counter()
    from dataclasses import replace

    from ..training import preset_schedule

    one_cfg = replace(ens.cfg, n_members=1, levels=(ens.cfg.n_latents,), first_member=0)
    single, _ = train_ensemble(x[tr], h[tr], one_cfg, preset_schedule(ens.cfg), progress=False)
    from ..transcoders.ensemble import first_members

    with torch.no_grad():
        v, i = single.encode(x)
        add("single TopK transcoder", clf.head(single.decode(v, i)[:, 0]).numpy(), t)
        for n in (1, 10):
            if n < ens.T:
                t = time.perf_counter()
                sub = first_members(ens, n)
                v, i = sub.encode(x)
                add(f"LanIC ensemble, first {n} members", clf.head(sub.decode(v, i).mean(1)).numpy(), t)
    return res


def results_doc(
    model_id: str, revision: str | None, kind: str, d: SuiteData, metrics: dict, seconds: float, seed: int
) -> EvalResults:
    """The results record of one model (or baseline) on suite data ``d`` (its test split)."""
    from ..constants import VERSION as __version__

    return EvalResults.from_dict(
        {
            "schema": SCHEMA_VERSION,
            "model": {"id": model_id, "revision": revision, "kind": kind},
            "suite": d.name,
            "findings": list(FINDINGS),
            "dataset": {
                "spec": d.spec,
                "fingerprint": d.fingerprint,
                "split": "test",
                "rows": int((d.split == "test").sum()),
            },
            "lanic_hub": __version__,
            "seed": seed,
            "seconds": round(seconds, 2),
            "metrics": metrics,
        },
        f"results of {model_id} on {d.name}",
    )


def write_results(out: Path, suite: str, name: str, doc: EvalResults) -> Path:
    """Write ``doc`` to ``<out>/results/<suite>/<slug of name>.json`` (atomically)."""
    p = EvalResults.path(out, suite, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    return doc.write(p)


def run(
    models: list[str],
    suite: str,
    out: str | Path,
    *,
    data: str | None = None,
    baselines: bool = True,
    n_boot: int = 200,
    seed: int = 0,
    progress: bool = True,
    log=print,
    phantom_n: int | None = None,
    spec: str | None = None,
    embeddings: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate every model (and, once per backbone, the baselines); regenerate the leaderboard."""
    from ..modeling import LanICModel

    if spec is None:
        check_suite_data(suite, data)
    out = Path(out)
    written, failed = [], {}
    done_backbones: set[str] = set()
    for mid in models:
        t0 = time.perf_counter()
        try:
            model = LanICModel.from_pretrained(mid)
            kw: dict[str, Any] = {"phantom_n": phantom_n} if phantom_n else {}
            d = load_suite(
                suite, model, out, data=data, progress=progress, spec=spec, embeddings=embeddings, **kw
            )
            log(f"{mid}: evaluating on {suite} ({int((d.split == 'test').sum())} test rows)")
            met = evaluate_lanic(model, d, n_boot=n_boot, seed=seed)
            folder = model.folder
            rev = folder.name if folder is not None and folder.parent.name == "snapshots" else None
            written.append(
                write_results(
                    out, suite, mid, results_doc(mid, rev, "lanic", d, met, time.perf_counter() - t0, seed)
                )
            )
            bb_key = json.dumps(model.config.backbone, sort_keys=True)
            if baselines and d.accuracy and bb_key not in done_backbones:
                done_backbones.add(bb_key)
                for name, met in evaluate_baselines(model, d, n_boot=n_boot, seed=seed).items():
                    full = f"{name} [{mid}]"
                    doc = results_doc(full, None, "baseline", d, met, met.get("seconds", 0.0), seed)
                    written.append(write_results(out, suite, full, doc))
        except Exception as exc:  # noqa: BLE001 (one failed model never erases the others' results)
            failed[mid] = f"{type(exc).__name__}: {exc}"
            log(f"{mid}: FAILED: {failed[mid]}\n{traceback.format_exc(limit=3)}")
    board = write_leaderboard(out, suite)
    return {"written": [str(p) for p in written], "failed": failed, "leaderboard": board}
