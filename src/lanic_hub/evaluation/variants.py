"""Training variants side by side on one embedded dataset: the default (image-only TopK), the
multimodal training stream and JumpReLU, each carried through the pattern bank.

For each variant: the ensemble-path AUROC, image fidelity (FVU per level, L0, dead latents) and,
on a phantom world, the pattern bank's ground-truth figures (detection and naming accuracy, see
:mod:`lanic_hub.patterns.phantom_check`). Everything is measured on the test split's images.

    python eval/compare_training_variants.py --embeddings runs/quickstart/embeddings
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..data.phantom import truth
from ..records import TrainingReport
from ..utils.io import write_text_atomic

#: name -> keyword arguments of :func:`lanic_hub.training.train_from_embeddings`
VARIANTS: dict[str, dict[str, Any]] = {
    "image-only TopK": {"multimodal": False},
    "multimodal TopK (default)": {"multimodal": True},
    "multimodal JumpReLU": {"multimodal": True, "activation": "jumprelu"},
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def run_variant(
    embeddings: Path,
    folder: Path,
    train_kw: dict[str, Any],
    *,
    n_members: int | None,
    bank_config=None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one variant into ``folder`` (reused when complete and made with the same settings),
    build its pattern bank, and measure it on the test split."""
    import torch

    from ..data.open import open_dataset
    from ..patterns import PatternBank
    from ..stages import build_patterns
    from ..trained import load_trained
    from ..training import train_from_embeddings

    settings = json.loads(
        json.dumps(
            {
                "embeddings": str(embeddings),
                "train": train_kw,
                "n_members": n_members,
                "bank": asdict(bank_config) if bank_config else None,
            },
            default=str,
        )
    )
    marker = folder / "variant.json"
    done = marker.is_file() and json.loads(marker.read_text()) == settings
    if not done:
        marker.unlink(missing_ok=True)
        train_from_embeddings(embeddings, folder, n_members=n_members, progress=progress, **train_kw)
        build_patterns(folder, embeddings, config=bank_config, progress=progress)
        write_text_atomic(marker, json.dumps(settings, indent=1))
    rep = TrainingReport.read(folder)
    fid = rep.fidelity
    row: dict[str, Any] = {
        "folder": str(folder),
        "train_seconds": rep.ensemble.seconds,
        "steps": rep.ensemble.steps,
        "stream_rows": rep.ensemble.multimodal["stream_rows"],
        "activation": rep.ensemble.config.get("activation", "topk"),
        "ensemble_path_macro": rep.auroc.ensemble_path.macro,
        "classifier_macro": rep.auroc.classifier.macro,
        "fvu_test": fid.fvu_mean,
        "l0_test": fid.l0_mean,
        "dead_fraction_train": fid.dead_fraction_mean_train,
        "measured_on": rep.measured_on,
    }
    from ..backbone.embed import load_embeddings

    emb = load_embeddings(embeddings)
    ds = open_dataset(emb.manifest.data_spec).select(emb.row_ids.numpy())
    _, ens = load_trained(folder)
    bank = PatternBank.load(folder)
    row["patterns"] = len(bank)
    if truth.is_phantom(ds.column_names):
        from ..patterns.phantom_check import ground_truth_check, pattern_activations

        te = np.where(np.array(ds["split"]) == "test")[0]
        acts = pattern_activations(ens, bank, emb.image[torch.as_tensor(te)]).numpy()
        gt = ground_truth_check(acts, bank, ds.select(te))
        row["ground_truth"] = {k: v for k, v in gt.items() if k != "factors"}
    return row


def compare_variants(
    embeddings: str | Path,
    out: str | Path,
    *,
    variants: dict[str, dict[str, Any]] | None = None,
    n_members: int | None = None,
    bank_config=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and measure every variant; writes ``variants.json`` and ``variants.md`` under ``out``."""
    embeddings, out = Path(embeddings), Path(out)
    rows = {}
    for name, kw in (variants or VARIANTS).items():
        if progress:
            print(f"variant: {name}", flush=True)
        rows[name] = run_variant(
            embeddings, out / _slug(name), kw, n_members=n_members, bank_config=bank_config, progress=progress
        )
    doc = {"embeddings": str(embeddings), "n_members": n_members, "variants": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "variants.json", json.dumps(doc, indent=1))
    write_text_atomic(out / "variants.md", variants_markdown(doc))
    return doc


def variants_markdown(doc: dict[str, Any]) -> str:
    """The comparison as a Markdown table, one column per variant."""
    rows = doc["variants"]
    names = list(rows)
    first = rows[names[0]]
    levels = list(first["fvu_test"])

    def line(label: str, fmt, get) -> str:
        cells = []
        for n in names:
            try:
                v = get(rows[n])
            except (KeyError, TypeError):
                v = None
            cells.append("n/a" if v is None else fmt(v))
        return f"| {label} | " + " | ".join(cells) + " |"

    pct = "{:.1%}".format
    f3 = "{:.3f}".format
    f4 = "{:.4f}".format
    out = [
        f"Measured on: {first['measured_on']}. Images only in every figure (the multimodal stream adds "
        "text rows to training, never to testing).",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        line("ensemble training, s", "{:.1f}".format, lambda r: r["train_seconds"]),
        line("transcoder training rows", str, lambda r: r["stream_rows"]),
        line("optimiser steps", str, lambda r: r["steps"]),
        line("classifier macro AUROC", f4, lambda r: r["classifier_macro"]),
        line("ensemble-path macro AUROC", f4, lambda r: r["ensemble_path_macro"]),
        *[line(f"image FVU, level {lv}", f3, lambda r, lv=lv: r["fvu_test"][lv]) for lv in levels],
        line("L0 (active latents per member)", "{:.2f}".format, lambda r: r["l0_test"]),
        line("dead latents (train)", pct, lambda r: r["dead_fraction_train"]),
        line("patterns in the bank", str, lambda r: r["patterns"]),
    ]
    if "ground_truth" in first:
        n_f = first["ground_truth"]["n_factors"]
        out += [
            line(
                f"factors detected (best pattern AUROC >= 0.95, of {n_f})",
                str,
                lambda r: r["ground_truth"]["factors_detected"],
            ),
            line(
                f"factors named correctly (a pattern named after it detects it, of {n_f})",
                str,
                lambda r: r["ground_truth"]["factors_named_correctly"],
            ),
            line(
                "naming accuracy: detecting patterns named after their factor",
                pct,
                lambda r: r["ground_truth"]["named_after_the_factor_they_detect"],
            ),
            line(
                "pure patterns (AUROC >= 0.8 on one factor)",
                pct,
                lambda r: r["ground_truth"]["pure_patterns_fraction"],
            ),
            line(
                "patterns whose top-20 gallery is >= 80% one factor",
                pct,
                lambda r: r["ground_truth"]["gallery_pure_fraction"],
            ),
        ]
    return "\n".join(out) + "\n"
