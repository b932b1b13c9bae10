"""What the members buy: the first T' members of one trained ensemble side by side (issue 35, part 4).

A user deciding whether to train 100 transcoders reads the answer here. For each T' (default
1, 10, 30 and all of them), from the same trained model:

- the sub-ensemble gets a pattern bank of its own, built with the model's bank settings except
  the support, which stays the same share of the members (the model's ``min_support`` x T' / T,
  at least 1 member);
- it is measured on the suite's test split by the evaluation's own code
  (:func:`~lanic_hub.evaluation.runner.evaluate_lanic`): the pattern count, the ensemble-path
  AUROC beside the classifier's, the full-level FVU and the items carrying 90% of a prediction;
- stability: its members are cut into two disjoint halves, each half builds a bank of its own,
  and a pattern of one half is *found again* when the other half has a pattern whose direction
  is within the merge's cosine threshold of it. The table gives that share, averaged both ways
  (none for T' = 1: one member has no halves).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..patterns import BankConfig
from ..transcoders.ensemble import TranscoderEnsemble, member_range


def found_again(a: torch.Tensor, b: torch.Tensor, cos: float) -> float | None:
    """Share of the unit directions ``a`` (P, d) whose nearest direction in ``b`` has at least
    cosine ``cos``; None when ``a`` is empty (nothing to find), 0 when only ``b`` is."""
    if len(a) == 0:
        return None
    if len(b) == 0:
        return 0.0
    an, bn = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    return float(((an @ bn.T).max(dim=1).values >= cos).float().mean())


def _support(base: BankConfig, n: int, total: int) -> int:
    return max(1, round(base.min_support * n / total))


def compare_sub_ensembles(
    model_folder: str | Path,
    spec: str,
    embeddings: str | Path,
    out: str | Path,
    *,
    members: tuple[int, ...] = (1, 10, 30, 100),
    suite: str = "mimic-cxr",
    progress: bool = True,
) -> dict[str, Any]:
    """The table for a saved LanIC model folder, on the dataset ``spec`` embedded in
    ``embeddings`` (that folder's test split). Writes ``sub_ensembles.json`` and ``.md`` to
    ``out`` and returns the JSON's content."""
    from ..data.open import open_dataset
    from ..modeling import LanICModel
    from ..patterns.build import build_bank
    from .runner import evaluate_lanic
    from .suites import load_suite

    model = LanICModel.from_pretrained(model_folder)
    T = model.ensemble.cfg.n_members
    sizes = sorted({min(n, T) for n in members})
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"member counts must be >= 1, got {members}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = load_suite(suite, model, out, spec=spec, embeddings=embeddings, progress=progress)
    ds = open_dataset(spec)
    base = BankConfig.from_dict(model.bank_meta.config)
    backbone = model.backbone

    def bank_of(ens: TranscoderEnsemble):
        cfg = replace(base, min_support=_support(base, ens.cfg.n_members, T))
        return cfg, build_bank(
            ens, embeddings, ds, config=cfg, backbone=backbone, data_spec=spec, progress=progress
        )

    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        sub = member_range(model.ensemble, 0, n)
        cfg, bank = bank_of(sub)
        m = LanICModel.from_components(
            model.classifier, sub, bank, backbone=model.config.backbone, findings=tuple(model.config.findings)
        )
        res = evaluate_lanic(m, d, n_boot=0)
        row: dict[str, Any] = {
            "members": n,
            "min_support": cfg.min_support,
            "bank": bank.meta.counts,
            "patterns": len(bank),
            "auroc_classifier": res["accuracy"]["classifier"]["auroc"]["macro"],
            "auroc_ensemble_path": res["accuracy"]["ensemble_path"]["auroc"]["macro"],
            "fvu_full_level": res["fidelity"]["fvu"][str(sub.cfg.n_latents)],
            "items_for_90pct": res["explanations"]["patterns_for_90pct"],
            "items_for_90pct_in_20_50": res["explanations"]["patterns_for_90pct_in_20_50"],
            "found_again_by_other_half": None,
        }
        if n >= 2:
            (_, a), (_, b) = (
                bank_of(member_range(model.ensemble, 0, n // 2)),
                bank_of(member_range(model.ensemble, n // 2, n)),
            )
            both = [found_again(a.direction, b.direction, base.cos_threshold),
                    found_again(b.direction, a.direction, base.cos_threshold)]  # fmt: skip
            known = [x for x in both if x is not None]
            row["found_again_by_other_half"] = float(np.mean(known)) if known else None
            row["half_patterns"] = [len(a), len(b)]
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
    doc = {
        "model": str(model_folder),
        "measured_on": f"{spec}, test split ({int((d.split == 'test').sum())} rows)",
        "ensemble": model.ensemble.cfg.to_dict(),
        "bank_config": asdict(base),
        "rows": rows,
    }
    (out / "sub_ensembles.json").write_text(json.dumps(doc, indent=1))
    (out / "sub_ensembles.md").write_text(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """The side-by-side table of :func:`compare_sub_ensembles`' result."""
    lines = [
        f"Sub-ensembles of {doc['model']}, measured on {doc['measured_on']}.",
        "",
        "| members | min support | latents / alive / merged / selected | patterns found again by the "
        "other half | AUROC ensemble path (classifier) | FVU | items for 90% (median, p10-p90) / share "
        "in 20-50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        c, it = r["bank"], r["items_for_90pct"]
        fa = "-" if r["found_again_by_other_half"] is None else f"{r['found_again_by_other_half']:.2f}"
        share = r["items_for_90pct_in_20_50"]
        lines.append(
            f"| {r['members']} | {r['min_support']} | {c.get('latents')} / {c.get('alive')} / "
            f"{c.get('merged')} / {c.get('selected')} | {fa} | {r['auroc_ensemble_path']:.4f} "
            f"({r['auroc_classifier']:.4f}) | {r['fvu_full_level']:.4f} | {it['median']:.0f} "
            f"({it['p10']:.0f}-{it['p90']:.0f}) / {'-' if share is None else f'{share:.2f}'} |"
        )
    return "\n".join(lines) + "\n"
