"""How good a backbone is on the phantom world, per finding: the calibration report.

On held-out phantoms (measured on the phantom world with the given seeds):
- a linear probe on image embeddings, against the report-derived labels (U-Ignore; blank = 0);
- the same probe against the ground truth at moderate or higher severity (positives) vs absent;
- zero-shot prompts ('pleural effusion' vs 'no pleural effusion', as a small generic template
  ensemble, and as the bare pair) against the same ground truth;
- a linear probe per device against its ground-truth presence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ..constants import FINDINGS
from ..data.phantom import DEVICE_FACTORS, PhantomConfig, generate
from ..data.phantom.case import FACTOR_OF_FINDING
from ..utils.progress import tqdm
from .resolve import Backbone

#: How each finding is named in prompts.
PROMPT_NAMES = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "pulmonary edema",
    "Pleural Effusion": "pleural effusion",
}
#: CheXzero-style positive / negative prompts: the bare pair, and a generic template ensemble
#: (the same templates for every finding; embeddings are averaged per side).
PLAIN_TEMPLATES = (("{x}",), ("no {x}",))
ENSEMBLE_TEMPLATES = (("{x}.", "There is {x}.", "{X}."), ("No {x}.", "There is no {x}.", "No {x} is seen."))


def zero_shot_direction(bb: Backbone, finding: str, templates=ENSEMBLE_TEMPLATES) -> np.ndarray:
    """Mean positive-prompt embedding minus mean negative-prompt embedding; score = e . direction."""
    x = PROMPT_NAMES[finding]

    def fill(ts):
        return [t.format(x=x, X=x[0].upper() + x[1:]) for t in ts]

    return (bb.encode_text(fill(templates[0])).mean(0) - bb.encode_text(fill(templates[1])).mean(0)).numpy()


def embed_studies(bb: Backbone, studies, batch: int = 128, progress: bool = True) -> np.ndarray:
    """Image embeddings of phantom studies through the backbone's own preprocessing."""
    from PIL import Image

    out = []
    for i in tqdm(range(0, len(studies), batch), desc="embed", disable=not progress):
        x = torch.stack(
            [bb.preprocess(Image.fromarray(s.image).convert("RGB")) for s in studies[i : i + batch]]
        )
        out.append(bb.encode_image(x).numpy())
    return np.concatenate(out)


def _report_labels(studies, finding: str) -> tuple[np.ndarray, np.ndarray]:
    """(keep, y): U-Ignore (uncertain rows dropped), blank = 0."""
    lab = np.array([np.nan if s.labels[finding] is None else s.labels[finding] for s in studies])
    lab = np.nan_to_num(lab, nan=0.0)
    return lab != -1.0, lab


def _probe_scores(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Logistic-regression scores on ``x_test``; NaN when the training labels have one class."""
    if len(np.unique(y)) < 2:
        return np.full(len(x_test), np.nan)
    return LogisticRegression(C=1.0, max_iter=2000).fit(x, y).decision_function(x_test)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    ok = 0 < y.sum() < len(y) and not np.isnan(s).any()
    return float(roc_auc_score(y, s)) if ok else float("nan")


def calibration_report(
    bb: Backbone,
    world: PhantomConfig | None = None,
    *,
    n_train: int = 3000,
    n_test: int = 2000,
    train_seed: int = 0,
    test_seed: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-finding AUROCs of probe (report labels and ground truth), zero-shot, and device probes."""
    world = world or PhantomConfig()
    tr = list(generate(n_train, train_seed, world, num_proc=2, progress=progress))
    te = list(generate(n_test, test_seed, world, num_proc=2, progress=progress))
    xtr, xte = embed_studies(bb, tr, progress=progress), embed_studies(bb, te, progress=progress)
    rows: dict[str, dict[str, float]] = {}
    for f in FINDINGS:
        fac = FACTOR_OF_FINDING[f]

        ktr, ytr = _report_labels(tr, f)
        kte, yte = _report_labels(te, f)
        score = _probe_scores(xtr[ktr], ytr[ktr], xte)
        sev = np.array([s.case.findings[fac].severity for s in te])
        present = np.array([s.case.findings[fac].present for s in te])
        mod = (~present) | (sev >= 0.5)
        zs = xte @ zero_shot_direction(bb, f)
        zs_plain = xte @ zero_shot_direction(bb, f, PLAIN_TEMPLATES)
        rows[f] = {
            "probe_vs_report_labels": _auroc(yte[kte], score[kte]),
            "probe_vs_truth_all": _auroc(present.astype(int), score),
            "probe_vs_truth_moderate_plus": _auroc(present[mod].astype(int), score[mod]),
            "zero_shot_vs_truth_moderate_plus": _auroc(present[mod].astype(int), zs[mod]),
            "zero_shot_vs_truth_all": _auroc(present.astype(int), zs),
            "zero_shot_plain_vs_truth_moderate_plus": _auroc(present[mod].astype(int), zs_plain[mod]),
            "test_positives_truth": int(present.sum()),
        }
    devices = {}
    for d in DEVICE_FACTORS:
        ytr_d = np.array([s.case.factor_present(d) for s in tr], dtype=int)
        yte_d = np.array([s.case.factor_present(d) for s in te], dtype=int)
        devices[d] = _auroc(yte_d, _probe_scores(xtr, ytr_d, xte))
    macro = float(np.nanmean([r["probe_vs_report_labels"] for r in rows.values()]))
    return {
        "data": f"phantom world, probe trained on seed {train_seed} (n={n_train}), tested on seed "
        f"{test_seed} (n={n_test})",
        "backbone": bb.identity(),
        "findings": rows,
        "macro_probe_vs_report_labels": macro,
        "devices": devices,
    }


def format_report(rep: dict[str, Any]) -> str:
    """Markdown tables of :func:`calibration_report`."""
    lines = [
        f"Measured on: {rep['data']}",
        "",
        "| finding | probe vs report labels | probe vs truth (all) | probe vs truth (moderate+) "
        "| zero-shot vs truth (moderate+) | zero-shot (all) | zero-shot, bare prompt pair (moderate+) |",
        "|---|---|---|---|---|---|---|",
    ]
    for f, r in rep["findings"].items():
        lines.append(
            f"| {f} | {r['probe_vs_report_labels']:.3f} | {r['probe_vs_truth_all']:.3f} | "
            f"{r['probe_vs_truth_moderate_plus']:.3f} | {r['zero_shot_vs_truth_moderate_plus']:.3f} | "
            f"{r['zero_shot_vs_truth_all']:.3f} | {r['zero_shot_plain_vs_truth_moderate_plus']:.3f} |"
        )
    lines += [
        "",
        f"Macro probe AUROC vs report labels: {rep['macro_probe_vs_report_labels']:.3f} (target 0.80-0.92)",
        "",
        "| device | probe AUROC vs truth |",
        "|---|---|",
    ]
    lines += [f"| {d} | {a:.3f} |" for d, a in rep["devices"].items()]
    return "\n".join(lines) + "\n"
