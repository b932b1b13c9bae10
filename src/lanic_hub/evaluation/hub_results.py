"""lanic-eval results as the Hub's evaluation results (``.eval_results/*.yaml`` in a model repo,
https://huggingface.co/docs/hub/eval-results), written with huggingface_hub's own
``EvalResultEntry``; and the results files' JSON Schema (``results-1.schema.json``).

A result points at a benchmark dataset on the Hub (``benchmark``, owner/name: where the suite's
data is published) and a task within it, named ``<suite>/<metric>``; its notes say what it was
measured on.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import DataError
from ..records.results import EvalResults
from ..utils.io import write_text_atomic

SCHEMA_FILE = "results-1.schema.json"


def results_schema() -> dict[str, Any]:
    """The JSON Schema of a results file (schema 1)."""
    return json.loads((resources.files("lanic_hub") / "resources" / "schemas" / SCHEMA_FILE).read_text())


def _metrics(doc: EvalResults) -> dict[str, float | None]:
    """{task: value} of one results document: the accuracy of each path, and for the
    counterfactual suite the share and hit of each factor group and the named mass."""
    m, out = doc.metrics, {}
    for path, acc in (m.accuracy or {}).items():
        out[f"{path}_macro_auroc"] = acc.auroc.macro
    cf = m.counterfactual
    if cf:
        for group, g in (cf.get("groups") or {}).items():
            out[f"{group}_named_share"] = g.get("median_named_share")
            out[f"{group}_named_top3_hit_rate"] = g.get("named_top_hit_rate")
        out["median_named_mass"] = cf.get("median_named_mass")
    return out


def hub_eval_entries(doc: EvalResults, benchmark: str, source_url: str | None = None) -> list:
    """The ``EvalResultEntry`` list of one results document (figures that are not numbers, e.g. a
    finding without an AUROC, are left out)."""
    from huggingface_hub import EvalResultEntry

    if "/" not in benchmark:
        raise DataError(f"{benchmark!r}: the benchmark must be a Hub dataset id (owner/name)")
    notes = f"{doc.model.id}; measured on {doc.dataset.label()} by lanic-hub {doc.lanic_hub}, seed {doc.seed}"
    return [
        EvalResultEntry(
            dataset_id=benchmark,
            task_id=f"{doc.suite}/{task}",
            value=round(float(v), 6),
            notes=notes,
            **({"source_url": source_url, "source_name": "lanic-eval results"} if source_url else {}),
        )
        for task, v in _metrics(doc).items()
        if isinstance(v, (int, float)) and v == v
    ]


def write_hub_eval_results(
    results: list[str | Path], model_dir: str | Path, benchmark: str, source_url: str | None = None
) -> list[Path]:
    """Write ``model_dir/.eval_results/lanic-<suite>.yaml`` from lanic-eval results files of that
    model (one file per suite; `lanic-hub push` uploads them with the model). Returns the files."""
    from huggingface_hub import eval_result_entries_to_yaml

    by_suite: dict[str, list] = {}
    for f in results:
        doc = EvalResults.read(f)
        by_suite.setdefault(doc.suite, []).extend(hub_eval_entries(doc, benchmark, source_url))
    out = []
    for suite, entries in by_suite.items():
        p = Path(model_dir) / ".eval_results" / f"lanic-{suite}.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p, yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False))
        out.append(p)
    return out
