"""The leaderboard (lanic_hub.evaluation.leaderboard): results documents in, ranked rows and tables out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lanic_hub.evaluation.leaderboard import ResultsError, load_results, markdown, rows
from lanic_hub.evaluation.records import SCHEMA_VERSION
from lanic_hub.records import EvalResults

FINDINGS = ["Edema", "Cardiomegaly"]


def _block(per_finding, ci=(0.5, 0.9)):
    return {
        "auroc": {"macro": float(np.mean(per_finding)), "macro_ci": list(ci), "per_finding": per_finding},
        "auprc": [0.4, 0.6],
        "f1": [0.5, 0.7],
        "ece": [0.1, 0.3],
    }


def _doc(mid, kind, accuracy, **metrics):
    return {
        "schema": SCHEMA_VERSION,
        "model": {"id": mid, "revision": None, "kind": kind},
        "suite": "phantom",
        "findings": FINDINGS,
        "dataset": {"spec": "phantom", "fingerprint": "f0", "split": "test", "rows": 348},
        "lanic_hub": "0.0",
        "seed": 0,
        "seconds": 1.0,
        "metrics": {"accuracy": accuracy, **metrics},
    }


def _records(*docs):
    return [EvalResults.from_dict(d) for d in docs]


LANIC = _doc(
    "m1",
    "lanic",
    {"classifier": _block([0.8, 0.9]), "ensemble_path": _block([0.7, 0.9])},
    monosemanticity={"ms": {"median": 0.42}},
    explanations={"patterns_for_90pct": {"median": 12.0}},
    fidelity={"logit_r2": [0.9, 0.8]},
)
PROBE = _doc("linear probe", "baseline", {"probe": _block([0.82, 0.84])})


def test_rows_rank_every_path_by_macro_auroc_with_its_figures():
    rs = rows(_records(PROBE, LANIC))
    assert [r["model"] for r in rs] == [
        "classifier (MLP, black box) [m1]",
        "linear probe",
        "LanIC ensemble path (all members) [m1]",
    ]
    assert [r["macro_auroc"] for r in rs] == pytest.approx([0.85, 0.83, 0.8])
    ens = rs[2]
    assert (ens["Edema"], ens["Cardiomegaly"]) == (0.7, 0.9)
    assert ens["macro_auprc"] == pytest.approx(0.5) and ens["macro_ece"] == pytest.approx(0.2)
    assert (ens["ms_median"], ens["patterns_for_90pct"], ens["logit_r2"]) == (0.42, 12.0, pytest.approx(0.85))
    assert "ms_median" not in rs[0]  # interpretability figures belong to the ensemble-path row
    assert all(r["dataset"] == "phantom (test, 348 rows)" for r in rs)


def test_markdown_states_the_data_and_keeps_literature_apart():
    md = markdown(rows(_records(PROBE, LANIC)), FINDINGS, "phantom")
    assert md.startswith("# Leaderboard: suite `phantom`")
    assert "Measured on phantom (test, 348 rows)." in md
    assert "| linear probe | 0.830 [0.500, 0.900] | 0.820 | 0.840 |" in md
    assert "Context (literature, not our measurement, not comparable data)" in md


def test_load_results_refuses_what_cannot_share_a_board(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(LANIC))
    docs = load_results(tmp_path)
    assert len(docs) == 1 and docs[0].source == tmp_path / "a.json"
    one = _doc("probe", "baseline", {"probe": _block([0.82])}) | {"findings": ["Edema"]}
    (tmp_path / "b.json").write_text(json.dumps(one))
    with pytest.raises(ResultsError, match="different finding sets"):
        load_results(tmp_path)
    (tmp_path / "b.json").write_text(json.dumps({**PROBE, "schema": 99}))
    with pytest.raises(ResultsError, match=r"b\.json: schema version 99 is newer"):
        load_results(tmp_path)
    (tmp_path / "b.json").write_text(json.dumps({**PROBE, "findings": ["Edema"]}))
    bad_key = r"b\.json: key 'metrics\.accuracy\.probe\.auroc\.per_finding': 2 values"
    with pytest.raises(ResultsError, match=bad_key):
        load_results(tmp_path)
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(ResultsError, match=r"b\.json: not valid JSON"):
        load_results(tmp_path)
