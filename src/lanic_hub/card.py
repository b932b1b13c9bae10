"""The model card: ``model_cards/lanic_model_card.md`` rendered with huggingface_hub's ``ModelCard``.

Results go into the card's ``model-index`` (one entry per finding and the macro average), each
with the dataset and split it was measured on.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .data.schema import DataSource
from .records import EmbeddingsManifest, EvalResults, TrainingReport


def template_path() -> Path:
    return Path(str(resources.files("lanic_hub") / "resources" / "model_card.md"))


#: The paper, for the Hub's paper linking (an ``arxiv:`` tag).
ARXIV = "2510.21464"


def _hub_dataset(model, evaluation: EvalResults | None) -> str | None:
    """The Hub dataset id the model was measured on, where its data spec names one
    (``hf:OWNER/NAME``): the evaluation's, else the one its bank was built on."""
    from .data.open import hub_repo_id

    spec = evaluation.dataset.spec if evaluation is not None else None
    if spec is None and model.bank_meta.embeddings:
        manifest = EmbeddingsManifest.path_in(model.bank_meta.embeddings)
        spec = EmbeddingsManifest.read(manifest).data_spec if manifest.is_file() else None
    return hub_repo_id(spec) if spec else None


def _eval_results(
    results: dict[str, Any],
    dataset: DataSource,
    split: str,
    extra: dict[str, tuple[str, float]] | None = None,
    hub_id: str | None = None,
) -> list[EvalResult]:
    """The model-index: the classifier's AUROCs, then ``extra`` ({metric name: (metric type,
    value)}: the explanation's fidelity figures), all measured on ``split`` of ``dataset``."""
    rows = [(f"AUROC {name}", "roc_auc", v) for name, v in results.items()]
    rows += [(name, kind, v) for name, (kind, v) in (extra or {}).items()]
    out = []
    for name, kind, value in rows:
        if value is None or value != value:  # NaN: a single-class finding has no AUROC
            continue
        out.append(
            EvalResult(
                task_type="image-classification",
                task_name="multi-label chest X-ray finding classification",
                dataset_type=hub_id or dataset.name,
                dataset_name=dataset.name,
                dataset_split=split,
                metric_type=kind,
                metric_name=name,
                metric_value=round(float(value), 4),
            )
        )
    return out


def _licence_fields(dataset: DataSource) -> dict[str, str]:
    """``license: other`` needs a name and a link on the Hub: the data's licence and its page."""
    if dataset.redistributable:
        return {"license": "apache-2.0"}
    name = "".join(c if c.isalnum() else "-" for c in dataset.licence.split("(")[0].split(":")[0].lower())
    fields = {"license": "other", "license_name": "-".join(filter(None, name.split("-")))}
    if dataset.homepage:
        fields["license_link"] = dataset.homepage
    return fields


def _base_model(model) -> str | None:
    """The backbone's Hub repo id, for ``base_model`` (None for a local backbone)."""
    spec = str((model.config.backbone or {}).get("spec", ""))
    return spec.split(":", 1)[1] if spec.startswith("hf-hub:") else None


def render_model_card(
    model,
    *,
    repo_id: str,
    dataset: DataSource,
    report: TrainingReport,
    model_name: str = "CXR-LanIC",
    evaluation: EvalResults | None = None,
    leaderboard: str | None = None,
) -> ModelCard:
    """The card of ``model`` (a :class:`~lanic_hub.modeling.LanICModel`).

    With ``evaluation`` (this model's ``lanic-eval`` results file) and ``leaderboard`` (the suite's
    markdown), the results come from the evaluation harness; without, from the training report
    (``fidelity.json``: test-split AUROCs, baselines, measured_on)."""
    cls = report.auroc.classifier.model_dump()
    path = report.auroc.ensemble_path
    results = dict(cls)
    measured_on = report.measured_on
    split_name = "test"
    if evaluation is not None:
        au = evaluation.metrics.accuracy["classifier"].auroc
        results = {"macro": au.macro, **dict(zip(evaluation.findings, au.per_finding, strict=True))}
        d = evaluation.dataset
        measured_on = f"{d.spec}, {d.split} split ({d.rows} rows), lanic-eval suite '{evaluation.suite}'"
        split_name = d.split
    fid = report.fidelity.fvu_mean
    extra = {
        "ensemble-path macro AUROC (fidelity: the logits rebuilt from the transcoders)": (
            "roc_auc",
            path.macro if path is not None else None,
        ),
        "transcoder FVU, full level (fidelity: hidden-layer variance the ensemble misses)": (
            "fvu",
            fid[max(fid, key=int)] if fid else None,
        ),
    }
    if evaluation is not None:  # the harness's own figures replace the training report's
        m = evaluation.metrics
        fvu = (m.fidelity or {}).get("fvu") or {}
        ms = (m.monosemanticity or {}).get("ms") or {}
        dele = ((m.explanations or {}).get("deletion") or {}).get("10") or {}
        path_acc = (m.accuracy or {}).get("ensemble_path")
        extra = {
            "ensemble-path macro AUROC (fidelity: the logits rebuilt from the transcoders)": (
                "roc_auc",
                path_acc.auroc.macro if path_acc is not None else None,
            ),
            "transcoder FVU, full level (fidelity: hidden-layer variance the ensemble misses)": (
                "fvu",
                fvu[max(fvu, key=int)] if fvu else None,
            ),
            "median pattern MonoSemanticity score (monosemanticity)": ("ms", ms.get("median")),
            "mean |logit change| when the top 10 patterns are deleted (faithfulness)": (
                "deletion_logit_change",
                dele.get("mean_abs_logit_change"),
            ),
        }
    base = _base_model(model)
    hub_id = _hub_dataset(model, evaluation)
    data = ModelCardData(
        datasets=[hub_id] if hub_id else None,
        language="en",
        **_licence_fields(dataset),
        library_name="lanic-hub",
        pipeline_tag="image-classification",
        base_model=base,
        tags=[
            "medical-imaging",
            "chest-x-ray",
            "interpretability",
            "sparse-autoencoder",
            "transcoder",
            "lanic",
            f"arxiv:{ARXIV}",
        ],
        model_name=model_name,
        eval_results=_eval_results(results, dataset, split_name, extra, hub_id),
    )
    rows = ["| model | macro AUROC | " + " | ".join(model.config.findings) + " |"]
    rows.append("|---" * (len(model.config.findings) + 2) + "|")
    table = {
        "this model (classifier)": cls,
        "ensemble path": path.model_dump() if path is not None else {},
    }
    table |= {
        f"baseline: {k}": v.model_dump() for k, v in report.baselines.items() if "macro" in v.model_fields_set
    }
    for name, r in table.items():
        cells = [_fmt(r.get("macro"))] + [_fmt(r.get(f)) for f in model.config.findings]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    eval_text = f"AUROC on {measured_on}.\n\n" + "\n".join(rows)
    if (
        leaderboard is not None
    ):  # the harness's own table, with CIs, AUPRC, F1, ECE and the literature context
        body = leaderboard.split("\n", 2)[2] if leaderboard.startswith("# ") else leaderboard
        eval_text = f"From `lanic-eval` ({measured_on}).\n\n" + body.strip()
    counts = model.bank_meta.counts
    from .patterns.bank import is_named

    n_named = sum(is_named(p) for p in model.patterns)
    n_dense = sum(bool(p.dense) for p in model.patterns)
    bank_cfg = model.bank_meta.config
    names_text = (
        f" {n_named} of them carry a name: a pattern is named only when its naming confidence passes "
        f"{bank_cfg.get('name_confidence', 0)} and, for a finding or a device, its activation detects "
        f"that report label at AUROC >= {bank_cfg.get('name_label_auroc', '?')} (chosen on held-out phantoms "
        "for naming precision >= 90%; the precision measured on this model is in the counterfactual table "
        f"above where it applies). {len(model.patterns) - n_named - n_dense} are shown unnamed, with their "
        f"nearest phrase; {n_dense} are context patterns that fire on most images."
        if "name_label_auroc" in bank_cfg
        else ""
    )
    if bank_cfg.get("report_naming"):
        n_graded = sum(is_named(p) and bool(p.dense) for p in model.patterns)
        names_text = (
            f" {n_named} of them carry a name from the report concepts ({n_graded} of them dense, named "
            f"'..., graded'): a sparse pattern when at least {bank_cfg.get('name_precision')} of its "
            f"gallery's reports state the concept, {bank_cfg.get('name_lift')}x its base rate, and no other "
            f"concept reaches {bank_cfg.get('name_max_other')} of it; a dense "
            "one when its magnitude ranks the concept's reports at AUROC >= "
            f"{bank_cfg.get('name_graded_auroc')}. "
            f"{len(model.patterns) - n_named} are shown unnamed, with their nearest phrase."
        )
    if model.concepts is not None:
        sup = model.concepts.support
        named = [f"{x['name']} ({x['auroc']:.2f})" for x in sup if x["named"]]
        unnamed = [
            f"{x['name']} ({x['auroc']:.2f})" if x["auroc"] is not None else x["name"]
            for x in sup
            if not x["named"]
        ]
        cm = model.concepts.meta
        names_text += (
            f"\n\nExplanations are given over report concepts: the image embedding is split exactly over "
            f"{len(sup)} concept directions fitted on {cm.get('fitted_on', '?')}. A concept is named when "
            f"its read-out detects its own report label on {cm.get('checked_on', '?')} at AUROC >= "
            f"{cm.get('min_auroc')}: named {', '.join(named) or 'none'}; unnamed "
            f"{', '.join(unnamed) or 'none'}. Whether the change a factor causes lands on the concept named "
            "for it is measured in the counterfactual table (phantom world only)."
        )
    bank_text = (
        f"{len(model.patterns)} patterns selected from {counts.get('latents', '?')} latents "
        f"({counts.get('alive', '?')} alive, {counts.get('merged', '?')} after merging across members). "
        f"Categories: {_category_counts(model.patterns)}. "
        f"Scores measured on {model.bank_meta.measured_on or '?'}; "
        f"MonoSemanticity encoder: {model.bank_meta.ms_encoder or '?'}. Each pattern's name, "
        "category, scores, support and gallery (dataset row references) are in `patterns.json`." + names_text
    )
    typ = model.bank_meta.typicality
    if typ:
        bank_text += (
            f"\n\nOut-of-distribution guard: every prediction reports the image's typicality distance "
            f"(squared Mahalanobis to the {typ['fit_rows']} training embeddings) and warns above "
            f"{typ['threshold']:.0f}, the {1 - typ['false_alarm_target']:.0%} quantile of "
            f"{typ['calibration_rows']} held-out validate images; {typ['false_alarm_on_test']:.1%} of the "
            f"{typ['test_rows']} test images were flagged."
        )
    training = (
        f"**{dataset.name}**: {dataset.licence}."
        + (f" {dataset.homepage}" if dataset.homepage else "")
        + (f" Cite: {dataset.citation}" if dataset.citation else "")
        + (
            ""
            if dataset.redistributable
            else " No images of this dataset are included in this repository; galleries are row references."
        )
    )
    ens = report.ensemble
    if ens.config:
        c, mm = ens.config, ens.multimodal
        stream = f"{mm.get('image_rows', '?')} training images"
        if mm.get("enabled"):
            stream += f" plus {mm['stream_rows'] - mm['image_rows']} distinct report and sentence texts"
        conv = ens.convergence or {}
        if "plateau_step" in conv:  # a plateau schedule: the held-out curve decided the budget
            conv_text = (
                f"; ended by the plateau of the held-out FVU at step {conv['plateau_step']} "
                f"({conv['measured_on']}), then a decay"
                if conv["converged"]
                else f"; the held-out FVU ({conv['measured_on']}) was still falling at the maximum"
            )
        elif conv.get("converged") is None:
            conv_text = ""
        else:
            conv_text = (
                f"; FVU {'flat' if conv['converged'] else 'still falling'} at the end "
                f"(fell {conv['last_quarter_drop']:.1%} over the last quarter)"
            )
        training += (
            f"\n\nTranscoders: {c['n_members']} members, L = {c['n_latents']}, k = {c['k']}, "
            f"{c.get('activation', 'topk')}, Matryoshka levels {c['levels']}; trained on the "
            f"classifier's hidden layer over {stream}: {ens.steps} optimiser steps "
            f"(about {mm.get('epochs', '?')} passes){conv_text}."
        )
    backbone = model.config.backbone or {}
    spec = backbone.get("spec", "?")
    if "phantom-clip" in spec:
        name = "the phantom CLIP (a small open_clip model trained on phantoms, text tower all-MiniLM-L6-v2)"
    else:
        name = spec.removeprefix("hf-hub:").removeprefix("local-dir:")
    return ModelCard.from_template(
        data,
        template_path=str(template_path()),
        model_name=model_name,
        repo_id=repo_id,
        findings=model.config.findings,
        n_members=model.ensemble.cfg.n_members,
        backbone_name=name,
        backbone_spec=spec if not model.config.bundled_backbone else "backbone/",
        bundled_backbone=model.config.bundled_backbone,
        eval_text=eval_text,
        bank_text=bank_text,
        training_data=training,
        policy=report.policy or "?",
        health_text=health_text(model.bank_meta.health),
        removal_text=removal_text(model),
    )


def removal_text(model) -> str:
    """The card's section on what a changed model leaves out, with the before/after AUROCs when
    they were measured (``lanic-hub remove`` measures them on the model's test embeddings)."""
    r = model.removal
    if not r:
        return ""
    lines = [
        f"This model leaves out {r.describe(model)}. Each prediction is the original classifier's "
        "logit minus those items' contribution to it, image by image; the error term (what the "
        "transcoders miss) is kept (`LanICModel.without`, `lanic_hub.removal`).",
        "",
        f"- Why: {r.reason or 'not stated'}",
        f"- Chosen by: {r.chosen_by or 'not stated'}",
    ]
    m = model.bank_meta.removal_measured
    if m:
        lines += [
            "",
            f"AUROC before and after the removal, on {m['measured_on']}:",
            "",
            "| finding | before | after | change |",
            "|---|---|---|---|",
        ]
        for f, (a, b) in m["auroc"].items():
            lines.append(f"| {f} | {_fmt(a)} | {_fmt(b)} | {b - a:+.3f} |")
        if m.get("suite"):  # the shortcut suite's table: this removal beside the other methods
            lines += ["", m["suite"].strip()]
    lines += [
        "",
        "The other figures on this card were measured on the model before the removal unless they say "
        "otherwise.",
    ]
    return "\n".join(lines)


def health_text(checks: list[dict[str, Any]] | None) -> str:
    """The card's health-check section: a loud warning per failed check, then every check."""
    if not checks:
        return ""
    bad = [c for c in checks if not c["ok"]]
    lines = []
    if bad:
        lines.append(
            f"> **Warning: {len(bad)} health check{'s' if len(bad) > 1 else ''} failed; this model is "
            "probably not usable.**"
        )
        lines += [f"> - {c['message']} (band: {c['band']})" for c in bad]
        lines.append("")
    else:
        lines.append(f"All {len(checks)} health checks passed (`lanic_hub.health`).\n")
    lines += ["| check | value | band | passed |", "|---|---|---|---|"]
    for c in checks:
        v = c["value"]
        shown = "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
        lines.append(f"| {c['name']} | {shown} | {c['band']} | {'yes' if c['ok'] else '**no**'} |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return "-" if v is None or v != v else f"{float(v):.3f}"


def _category_counts(patterns: list[dict[str, Any]]) -> str:
    from collections import Counter

    c = Counter(p.category for p in patterns)
    return ", ".join(f"{k} {n}" for k, n in c.most_common()) or "none"
