"""Writing a changed model (:meth:`~lanic_hub.modeling.LanICModel.without`) as a new model folder,
measuring what the removal did, and choosing items from a labelled reference set given as a
dataset spec: what ``lanic-hub remove``, the demo and the shortcut suite share."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .removal import MIN_SHARE, RemovalError, items_from_reference


@torch.no_grad()
def measure_removal(before, after, embeddings, ds, split: str = "test", policy: str = "U-Ignore") -> dict:
    """Each finding's AUROC for ``before`` and ``after`` (a model and its changed copy) on the
    ``split`` rows of an embeddings folder's dataset ``ds`` (report labels under ``policy``)."""
    from .backbone.embed import load_embeddings
    from .classifier import macro_auroc
    from .data.schema import label_matrix

    emb = load_embeddings(embeddings)
    rows = ds.select(emb.row_ids.tolist())
    sel = np.arange(len(rows))
    if "split" in rows.column_names:
        sel = np.where(np.array(rows.select_columns(["split"])["split"]) == split)[0]
    if len(sel) == 0:
        raise RemovalError(f"{embeddings}: no {split!r} rows to measure the removal on")
    findings = tuple(before.config.findings)
    y, mask = label_matrix(rows.select(sel.tolist()), policy=policy, findings=findings)
    x = emb.image[torch.from_numpy(sel)].float()
    a = macro_auroc(before(embeddings=x).logits.float().numpy(), y, mask)[1]
    b = macro_auroc(after(embeddings=x).logits.float().numpy(), y, mask)[1]
    spec = emb.manifest.data_spec or str(embeddings)
    return {
        "measured_on": f"{spec}, {split} split ({len(sel)} rows), report labels {policy}",
        "auroc": {f: [float(a[j]), float(b[j])] for j, f in enumerate(findings)},
    }


def reference_embeddings(model, spec: str, *, progress: bool = True):
    """(embeddings, dataset) of a reference set given as a dataset spec, embedded with the model's
    backbone into lanic-hub's cache (resumed when run again)."""
    import hashlib

    from .backbone.embed import embed_dataset, load_embeddings
    from .backbone.phantom_clip import cache_root
    from .data.open import open_dataset

    ds = open_dataset(spec)
    key = hashlib.sha256(f"{ds._fingerprint}|{model.config.backbone}".encode()).hexdigest()[:16]
    folder = cache_root() / "reference-embeddings" / key
    embed_dataset(ds, model.backbone, folder, num_workers=0, text=False, progress=progress, data_spec=spec)
    return load_embeddings(folder), ds


def write_changed_model(source, changed, out, *, measure: bool = True, log=print) -> dict | None:
    """Save ``changed`` (a :meth:`~lanic_hub.modeling.LanICModel.without` copy of the model in
    folder ``source``) as a new model folder ``out``: the source's other files (thumbnails,
    examples, backbone) come along, the card gains a section on the removal, and, when the
    model's embeddings and their labels are on this machine (``measure``), the AUROCs before and
    after on their test split. ``source`` is never written to. Returns the measurement."""
    import shutil
    from pathlib import Path

    from .card import removal_text
    from .modeling import LanICModel
    from .utils.io import replace_dir

    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise RemovalError(f"{out}: write the changed model to a new folder; the source is never modified")
    if out.exists() and any(out.iterdir()):
        raise RemovalError(f"{out}: already exists and is not empty; choose another --out")
    measured = None
    emb = changed.bank_meta.embeddings
    if measure and emb and (Path(emb) / "manifest.json").is_file():
        from .backbone.embed import read_manifest
        from .data.open import open_dataset

        spec = read_manifest(Path(emb)).data_spec
        if spec:
            original = LanICModel.from_pretrained(source)
            measured = measure_removal(original, changed, emb, open_dataset(spec))
            changed.bank_meta.removal_measured = measured
    if measured is None:
        log("the AUROCs before and after were not measured: the model's embeddings or labels are not here")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".eval_results"))  # results of the old model
    changed.save_pretrained(tmp)
    card = tmp / "README.md"
    if card.is_file():
        text = card.read_text()
        head = "## Items removed from this model"
        if head in text:  # a model changed before: its section is replaced, its history kept in config
            a = text.index(head)
            b = text.find("\n## ", a + len(head))
            text = text[:a] + (text[b + 1 :] if b >= 0 else "")
        section = "## Items removed from this model\n\n" + removal_text(changed) + "\n\n"
        at = text.find("## Intended use")
        text = text[:at] + section + text[at:] if at >= 0 else text + "\n" + section
        card.write_text(text)
    replace_dir(tmp, out)
    return measured


def _reference_rows(
    model, spec: str, label: str, finding: str, split: str | None, progress: bool, with_rows: bool = False
):
    """(embeddings, label, strata) of a reference set's ``split`` rows: the label is 1 = with,
    anything else = without; the strata are the finding's own label where the set has it (its
    patterns co-occur with devices), else None."""
    emb, ds = reference_embeddings(model, spec, progress=progress)
    rows = ds.select(emb.row_ids.tolist())
    if label not in rows.column_names:
        raise RemovalError(f"{spec}: no column {label!r}; columns: {', '.join(rows.column_names)}")
    keep = np.arange(len(rows))
    if split and "split" in rows.column_names:
        keep = np.where(np.array(rows.select_columns(["split"])["split"]) == split)[0]
    sel = rows.select(keep.tolist())
    y = np.array(sel[label], dtype=float) == 1.0
    strata = np.array(sel[finding], dtype=float) == 1.0 if finding in sel.column_names else None
    x = emb.image[torch.from_numpy(keep)].float()
    return (x, y, strata, sel) if with_rows else (x, y, strata)


def concept_from_reference(
    model, spec: str, label: str, finding: str, *, split: str | None = "validate", progress: bool = True
):
    """:func:`~lanic_hub.removal.fit_reference_concept` on a reference set given as a dataset spec
    and one of its label columns, the model's findings' labels held fixed where the set has them:
    (the model with the concept 'labelled <label>', a report)."""
    from .data.schema import label_matrix
    from .removal import fit_reference_concept

    x, y, _, rows = _reference_rows(model, spec, label, finding, split, progress, with_rows=True)
    findings = [f for f in model.config.findings if f in rows.column_names]
    cov = label_matrix(rows, policy="U-Zeros", findings=tuple(findings))[0] if findings else None
    new, rep = fit_reference_concept(model, x, y, label, covariates=cov)
    rep["chosen_by"] = (
        f"a concept fitted on reference set {spec} ({split or 'all'} rows): the coefficient of "
        f"'{label}' with the labels of {', '.join(findings) or 'no finding'} held fixed; its read-out "
        f"detects the label on held-out rows at AUROC {rep['auroc']:.3f}"
        if rep["auroc"] is not None
        else f"a concept fitted on reference set {spec} ({split or 'all'} rows)"
    )
    return new, rep


def choose_from_reference(
    model,
    spec: str,
    label: str,
    finding: str,
    *,
    split: str | None = "validate",
    budget: int = 5,
    level: str = "patterns",
    min_share: float = MIN_SHARE,
    progress: bool = True,
) -> tuple[list, dict[str, Any]]:
    """:func:`items_from_reference` on a reference set given as a dataset spec and one of its
    label columns (``label``; 1 = with, anything else = without), on its ``split`` rows (all
    rows when None or when it has no split column). The report says how they were chosen."""
    x, y, strata = _reference_rows(model, spec, label, finding, split, progress)
    items, rep = items_from_reference(model, x, y, finding, budget, level, strata=strata, min_share=min_share)
    rep["chosen_by"] = (
        f"reference set {spec} ({split or 'all'} rows): the {len(items)} {level} whose contribution to "
        f"{finding} differs most between the {rep['with_label']} images with '{label}' and the "
        f"{rep['without_label']} without"
    )
    return items, rep
