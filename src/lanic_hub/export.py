"""The model stage's writers: the LanIC model folder (weights, patterns.json, card, examples,
operating points) and its card rewritten with the evaluation's results.

:func:`export_model` is what ``lanic-hub export`` and the pipeline's model stage
(:func:`lanic_hub.stages.model_stage`) write with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .options import ModelOptions
from .records import TrainingReport
from .utils.io import write_text_atomic

# --------------------------------------------------------------------------- the model stage's writers


def write_card(
    model_dir: Path,
    ds,
    opts: ModelOptions,
    report: TrainingReport,
    evaluation=None,
    leaderboard: str | None = None,
) -> None:
    """(Re)write the model folder's README.md card, with the evaluation suite's results if given."""
    from .card import render_model_card
    from .data.schema import source_of
    from .modeling import LanICModel

    model = LanICModel.from_pretrained(model_dir)
    card = render_model_card(
        model,
        repo_id=opts.repo_id,
        dataset=source_of(ds),
        report=report,
        model_name=opts.name,
        evaluation=evaluation,
        leaderboard=leaderboard,
    )
    write_text_atomic(model_dir / "README.md", str(card))


def export_examples(ds, folder: Path, source: str, n: int = 4) -> int:
    """A few test-split images of ``ds`` (data that may be re-published) as PNGs in
    ``folder/examples`` with ``examples.json`` (file, caption: the source and its report labels, or
    a phantom's ground truth),
    so that a Space built from the pushed model offers them. Returns how many."""
    import json

    from .data.examples import pick_examples
    from .data.images import load_image
    from .data.schema import require_redistributable

    require_redistributable(ds, "export example images")
    out = folder / "examples"
    picked = []
    for ex in pick_examples(ds, source, n, scan=200):
        out.mkdir(parents=True, exist_ok=True)
        name = f"example_{ex.row:06d}.png"
        load_image(ds[ex.row]["image"]).convert("L").save(out / name)
        picked.append({"file": name, "caption": ex.caption})
    if picked:
        (out / "examples.json").write_text(json.dumps(picked, indent=1))
    return len(picked)


def operating_points(model, emb, ds, policy: str = "U-Ignore") -> tuple[dict[str, float], str] | None:
    """({finding: threshold}, where measured): the F1-maximising probability threshold of each
    finding on the validation split of the model's embeddings ``emb`` (labels under ``policy``),
    as the evaluation chooses them. None without a validation split."""
    import numpy as np
    import torch

    from .data.schema import label_matrix
    from .operating import f1_thresholds

    rows = ds.select(emb.row_ids.tolist())
    if "split" not in rows.column_names:
        return None
    va = np.where(np.array(rows.select_columns(["split"])["split"]) == "validate")[0]
    if len(va) == 0:
        return None
    y, mask = label_matrix(rows.select(va.tolist()), policy=policy, findings=tuple(model.config.findings))
    with torch.no_grad():
        p = torch.sigmoid(model.classifier(emb.image[torch.from_numpy(va)].float())).numpy()
    thr = f1_thresholds(y, p, mask)
    spec = emb.manifest.data_spec or "the model's embeddings"
    where = f"F1-maximising on the validation split ({len(va)} rows, labels {policy}) of {spec}"
    return dict(zip(model.config.findings, thr, strict=True)), where


def export_model(
    train_dir: Path,
    model_dir: Path,
    ds,
    opts: ModelOptions,
    report: TrainingReport,
    health: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the LanIC model folder (weights, patterns.json, card, thumbnails where allowed).

    ``health``: the health checks (:mod:`lanic_hub.health`) to record in ``patterns.json`` and the
    card; default: those of ``report`` and the bank."""
    from .card import render_model_card
    from .data.schema import source_of
    from .health import run_checks
    from .modeling import LanICModel
    from .utils.io import replace_dir

    model = LanICModel.from_training_folder(train_dir)
    src = source_of(ds)
    model.bank_meta.data_source = dataclasses.asdict(src)
    if not src.redistributable:  # a bank built before the text guard may still hold sentences
        from .data.schema import withhold_report_text

        if withhold_report_text(model.patterns):
            model.bank_meta.report_text = (
                "typical sentences withheld at export: the data's licence forbids re-publishing report text"
            )
    if health is None:
        health = [c.to_dict() for c in run_checks(report, model.bank_meta.counts)]
    model.bank_meta.health = health
    emb_dir = model.bank_meta.embeddings
    if emb_dir is not None and (Path(emb_dir) / "manifest.json").is_file():  # read once, used twice
        from .backbone.embed import load_embeddings
        from .typicality import typicality_from_embeddings

        emb = load_embeddings(emb_dir)
        typ = typicality_from_embeddings(emb, ds)
        if typ is not None:  # is an image like the training data? (every prediction says)
            model.set_typicality(typ[0])
            model.bank_meta.typicality = typ[1]
        ops = operating_points(model, emb, ds, report.policy or "U-Ignore")
        if ops is not None:  # predict() calls a finding positive at its threshold
            model.config.thresholds, model.config.thresholds_measured_on = ops
    bundle = opts.bundle_backbone
    if bundle is None:
        bundle = "phantom-clip" in str((model.config.backbone or {}).get("spec", ""))

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, bundle_backbone=bundle)
        render_model_card(model, repo_id=opts.repo_id, dataset=src, report=report, model_name=opts.name).save(
            tmp / "README.md"
        )
        if opts.thumbnails and src.redistributable:
            from .patterns.gallery import export_thumbnails

            export_thumbnails(model.bank, ds, tmp, per_pattern=4, progress=False)
            export_examples(ds, tmp, src.name)

    import shutil

    tmp = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    return replace_dir(tmp, model_dir)
