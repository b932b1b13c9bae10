"""Health checks of a built model: are its headline figures where a usable model's are?

Every command that ends with a model (``train``, ``quickstart``, ``build``, ``export``) runs these
on its run report and pattern bank and says loudly when one is out of band, with its likely cause
(too little data, too few labelled rows per finding, an under-trained backbone, a schedule too
short). The same results go into the model folder (``patterns.json`` meta ``health``), its card
and the Space. Pure functions on the training report (``fidelity.json``) and the bank's counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .records import PathAuroc, TrainingReport

#: Bands every model must be in.
MIN_MACRO_AUROC = 0.60
"""Below this the classifier is near chance."""
PROBE_MARGIN = 0.02
"""The classifier (an MLP on the embeddings) must not trail a linear probe on them by more."""
MAX_FVU = 0.5
"""Full-level FVU above this: the ensemble misses half the hidden layer's variance."""
PATH_MARGIN = 0.02
"""The ensemble path (the explained logits) must not trail the classifier by more."""
MIN_PATTERNS = 10
"""A bank with fewer named patterns explains almost nothing."""
MIN_STEPS = 200
"""Fewer transcoder optimiser steps than this is a schedule too short to converge."""
MIN_FIRINGS_PER_LATENT = 50
"""Training rows x k / L: how often an average latent fires during one pass over the data."""
MIN_POSITIVES = 10
"""Labelled positives a finding needs in the train and test splits."""

#: The embedded default's documented ranges (README, "What the quickstart gives"), set from cold
#: runs with 1 and 2 torch threads: a fresh quickstart outside them is broken, not unlucky.
EMBEDDED_DEFAULT: dict[str, tuple[float, float]] = {
    "classifier_macro_auroc": (0.84, 0.88),
    "ensemble_path_macro_auroc": (0.84, 0.88),
    "fvu_full_level": (0.08, 0.14),
    "patterns": (140, 185),
}


@dataclass(frozen=True)
class Check:
    """One health check's outcome."""

    name: str
    ok: bool
    value: float | int | None
    band: str
    message: str
    """What was measured, against what; and, when it failed, the likely cause."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _macro(p: PathAuroc | None) -> float | None:
    v = None if p is None else p.macro
    return None if v is None or v != v else float(v)


def training_checks(report: TrainingReport) -> list[Check]:
    """Checks of a training report (``fidelity.json``, :func:`lanic_hub.training.train_from_embeddings`)."""
    out: list[Check] = []
    where = report.measured_on
    clf = _macro(report.auroc.classifier)
    path = _macro(report.auroc.ensemble_path)
    probe = _macro(report.baselines.get("linear_probe"))
    ens = report.ensemble
    mm, cfg = ens.multimodal, ens.config
    rows, k, L = mm.get("stream_rows"), cfg.get("k"), ens.n_latents
    steps = ens.steps

    few = sorted(
        f"{f} ({c.positive} positives in {split})"
        for split in ("train", "test")
        for f, c in report.labels.get(split, {}).items()
        if c.positive < MIN_POSITIVES
    )
    image_rows = mm.get("image_rows")
    data_cause = (
        f"too few labelled rows per finding: {', '.join(few)}"
        if few
        else f"too little data ({image_rows} training images)"
        if image_rows is not None and image_rows < 1000
        else None
    )
    backbone_cause = (
        f"an under-trained or unsuitable backbone: a linear probe on its embeddings reaches only {probe:.3f}"
        if probe is not None and probe < 0.7
        else None
    )

    if clf is not None:
        causes = [c for c in (backbone_cause, data_cause) if c] or [
            "labels that do not match the images (check the label columns and the uncertainty policy)"
        ]
        out.append(
            Check(
                "classifier_auroc",
                clf >= MIN_MACRO_AUROC,
                clf,
                f">= {MIN_MACRO_AUROC}",
                f"classifier macro AUROC {clf:.3f} on {where}"
                + ("" if clf >= MIN_MACRO_AUROC else f" is near chance. Likely cause: {'; '.join(causes)}."),
            )
        )
    if clf is not None and probe is not None:
        ok = clf >= probe - PROBE_MARGIN
        out.append(
            Check(
                "classifier_vs_linear_probe",
                ok,
                clf - probe,
                f"classifier >= linear probe - {PROBE_MARGIN}",
                f"classifier macro AUROC {clf:.3f} vs {probe:.3f} for a linear probe on the same embeddings"
                + (
                    ""
                    if ok
                    else ". Likely cause: "
                    + (
                        data_cause
                        or "the classifier stopped early (too few validation rows to pick its epoch)"
                    )
                    + "."
                ),
            )
        )
    fvu = report.fvu_full_level
    if fvu is not None:
        ok = fvu <= MAX_FVU
        cause = (
            f"a schedule too short ({steps} optimiser steps)"
            if steps is not None and steps < MIN_STEPS
            else data_cause or "too little data for this many latents"
        )
        out.append(
            Check(
                "fvu",
                ok,
                fvu,
                f"<= {MAX_FVU}",
                f"full-level FVU {fvu:.3f} (the share of the hidden layer's variance the ensemble misses)"
                + ("" if ok else f". Likely cause: {cause}."),
            )
        )
    if clf is not None and path is not None:
        ok = path >= clf - PATH_MARGIN
        out.append(
            Check(
                "ensemble_path_auroc",
                ok,
                path - clf,
                f"ensemble path >= classifier - {PATH_MARGIN}",
                f"ensemble-path macro AUROC {path:.3f} vs the classifier's {clf:.3f}"
                + (
                    ""
                    if ok
                    else ": the explained logits lose accuracy. Likely cause: "
                    + (f"a schedule too short ({steps} steps)" if steps and steps < MIN_STEPS else "high FVU")
                    + "."
                ),
            )
        )
    if steps is not None:
        ok = steps >= MIN_STEPS
        out.append(
            Check(
                "schedule",
                ok,
                steps,
                f">= {MIN_STEPS} steps",
                f"{steps} transcoder optimiser steps"
                + ("" if ok else ": a schedule too short to converge; train for more steps (--steps)."),
            )
        )
    conv = ens.convergence or {}
    if "plateau_step" in conv:  # a plateau schedule: the held-out curve ended the run, or the maximum did
        ok = bool(conv["converged"])
        out.append(
            Check(
                "converged",
                ok,
                conv["plateau_step"],
                f"held-out FVU falls < {conv['tol']:.0%} over the last checks before the maximum",
                (
                    f"the held-out FVU reached its plateau at step {conv['plateau_step']} "
                    f"({conv['measured_on']})"
                    if ok
                    else f"the held-out FVU was still falling at the maximum of {steps} steps. Likely "
                    "cause: a maximum too low for this data; train for more steps (--steps)."
                ),
            )
        )
    elif conv.get("converged") is not None:
        drop = conv["last_quarter_drop"]
        out.append(
            Check(
                "converged",
                bool(conv["converged"]),
                drop,
                f"FVU falls < {conv['tol']:.0%} over the last quarter",
                f"FVU fell {drop:.1%} over the last quarter of the {steps} steps"
                + (
                    ""
                    if conv["converged"]
                    else ": still falling when the schedule ended. Likely cause: a schedule too short "
                    "for this data; train for more steps (--steps)."
                ),
            )
        )
    if rows and k and L:
        firings = rows * k / L
        ok = firings >= MIN_FIRINGS_PER_LATENT
        out.append(
            Check(
                "data_per_latent",
                ok,
                round(firings, 1),
                f">= {MIN_FIRINGS_PER_LATENT} firings per latent per pass",
                f"{rows} training rows x k={k} / L={L}: an average latent fires on {firings:.0f} rows "
                "per pass"
                + (
                    ""
                    if ok
                    else ": too little data for this preset"
                    + (
                        " (the paper preset is sized for ~377k MIMIC-CXR images; try --preset phantom)"
                        if L >= 2048
                        else ""
                    )
                    + "."
                ),
            )
        )
    return out


def bank_checks(counts: dict[str, Any]) -> list[Check]:
    """Checks of a pattern bank's stage counts (``meta['counts']``)."""
    n = int(counts.get("selected", 0))
    ok = n >= MIN_PATTERNS
    msg = f"{n} patterns selected ({counts.get('alive', '?')} alive latents, "
    msg += f"{counts.get('merged', '?')} after merging)"
    if not ok:
        msg += (
            ": the explanations will be mostly 'outside the bank'. Likely cause: the members do not "
            "agree on their latents (a pattern needs min_support members): too little data or an "
            "under-trained ensemble (see the FVU check)"
            if n
            else ": no pattern passed support, frequency and MS; every contribution is outside the bank. "
            "Likely cause: too little data or an under-trained ensemble (see the FVU check)"
        ) + "."
    return [Check("patterns", ok, n, f">= {MIN_PATTERNS}", msg)]


def embedded_default_checks(report: TrainingReport, counts: dict[str, Any]) -> list[Check]:
    """The embedded default's figures against their documented ranges (:data:`EMBEDDED_DEFAULT`)."""
    got = {
        "classifier_macro_auroc": _macro(report.auroc.classifier),
        "ensemble_path_macro_auroc": _macro(report.auroc.ensemble_path),
        "fvu_full_level": report.fvu_full_level,
        "patterns": counts.get("selected"),
    }
    out = []
    for name, (lo, hi) in EMBEDDED_DEFAULT.items():
        v = got[name]
        ok = v is not None and lo <= v <= hi
        out.append(
            Check(
                f"embedded_default_{name}",
                ok,
                v,
                f"{lo}-{hi} (documented)",
                f"{name.replace('_', ' ')} {v} vs the documented {lo}-{hi} of the embedded default"
                + (
                    ""
                    if ok
                    else ": this quickstart is not the documented one. Likely cause: an under-trained "
                    "phantom CLIP (delete ~/.cache/lanic-hub/phantom-clip and rerun) or a changed "
                    "environment (torch version); please report it with summary.json."
                ),
            )
        )
    return out


def run_checks(
    report: TrainingReport, counts: dict[str, Any] | None, embedded_default: bool = False
) -> list[Check]:
    """Every check that applies: the training report's, the bank's, and the embedded default's."""
    out = training_checks(report)
    if counts is not None:
        out += bank_checks(counts)
        if embedded_default:
            out += embedded_default_checks(report, counts)
    return out


def failed(checks: list[Check] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed checks, as dicts."""
    return [c for c in (x.to_dict() if isinstance(x, Check) else x for x in checks) if not c["ok"]]


def format_warning(checks: list[Check] | list[dict[str, Any]], where: str = "") -> str:
    """A loud block naming each failed check, or '' when all passed."""
    bad = failed(checks)
    if not bad:
        return ""
    bar = "!" * 100
    lines = [
        bar,
        f"WARNING: {len(bad)} health check{'s' if len(bad) > 1 else ''} failed"
        + (f" for {where}" if where else "")
        + ": this model is probably not usable.",
    ]
    lines += [f"  - {c['message']} (band: {c['band']})" for c in bad]
    lines.append(bar)
    return "\n".join(lines)
