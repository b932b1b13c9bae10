"""lanic-eval end to end at a tiny size: results files, the leaderboard, failures kept apart."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from lanic_hub.constants import FINDINGS
from lanic_hub.evaluation.leaderboard import LITERATURE, ResultsError, load_results, write_leaderboard
from lanic_hub.evaluation.runner import SCHEMA_VERSION, run
from lanic_hub.records import EvalResults


@pytest.fixture(scope="module")
def evaluated(tiny_lanic_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    res = run(
        [str(tiny_lanic_model), str(out / "no-such-model")],
        "phantom",
        out,
        n_boot=20,
        progress=False,
        log=lambda *a: None,
        phantom_n=400,
    )
    return out, res


def test_results_files_carry_the_schema_and_provenance(evaluated, tiny_lanic_model):
    out, res = evaluated
    docs = load_results(out / "results" / "phantom")
    kinds = sorted(d.model.kind for d in docs)
    assert kinds.count("lanic") == 1 and kinds.count("baseline") == 5  # no 10-member subset of 8
    names = {d.model.id.split(" [")[0] for d in docs if d.model.kind == "baseline"}
    assert names == {
        "linear probe",
        "zero-shot prompts",
        "SAE + sparse probe",
        "single TopK transcoder",
        "LanIC ensemble, first 1 members",
    }
    lan = next(d for d in docs if d.model.kind == "lanic")
    assert lan.schema_ == SCHEMA_VERSION and lan.model.id == str(tiny_lanic_model)
    assert lan.dataset.split == "test" and lan.dataset.rows > 0 and lan.dataset.fingerprint
    assert lan.lanic_hub and lan.seconds > 0 and lan.seed == 0
    m = lan.metrics
    assert m.families() == ["accuracy", "fidelity", "monosemanticity", "explanations", "stability"]
    assert set(m.accuracy) == {"classifier", "ensemble_path", "top10_patterns_path"}
    assert m.explanations["completeness_error_max"] < 1e-4
    for step in m.explanations["deletion"].values():  # ablating through the decoder = contributions
        assert step["max_gap_to_contributions"] < 1e-4
    for step in m.explanations["insertion"].values():
        assert step["max_gap_to_contributions"] < 1e-4
    assert 0 < m.stability["hungarian_decoder_similarity"]["median"] <= 1
    assert "ground_truth" in m.monosemanticity
    # a failed model is reported and the others' results stand
    assert list(res["failed"]) == [str(out / "no-such-model")]


def test_results_records_round_trip_byte_identical(evaluated, tmp_path):
    out, _ = evaluated
    files = sorted((out / "results" / "phantom").glob("*.json"))
    assert len(files) == 6
    for f in files:  # what the runner wrote reads back and writes again unchanged
        rec = EvalResults.read(f)
        assert rec.source == f and rec.findings == list(FINDINGS)
        assert rec.write(tmp_path / f.name).read_bytes() == f.read_bytes()
        assert EvalResults.path(out, "phantom", rec.model.id) == f


def test_leaderboard_md_csv_png(evaluated):
    out, res = evaluated
    md = (out / "leaderboard" / "phantom.md").read_text()
    assert "classifier (MLP, black box)" in md and "linear probe" in md
    assert "Context (literature, not our measurement" in md
    rows_part = md.split("Context (literature")[0]
    assert f"{LITERATURE['auroc']['Edema']:.3f}" not in rows_part.split("|---")[0]  # literature only below
    csv_lines = (out / "leaderboard" / "phantom.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,kind,macro_auroc") and len(csv_lines) == 1 + 3 + 5
    assert (out / "leaderboard" / "phantom.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_results_are_refused_without_touching_others(evaluated, tmp_path):
    out, _ = evaluated
    import shutil

    folder = tmp_path / "results" / "phantom"
    shutil.copytree(out / "results" / "phantom", folder)
    (folder / "zz-future.json").write_text(json.dumps({"schema": 99, "findings": []}))
    with pytest.raises(ResultsError, match="zz-future.json: schema version 99 is newer"):
        write_leaderboard(tmp_path, "phantom")
    (folder / "zz-future.json").unlink()
    other = json.loads(next(folder.glob("linear*.json")).read_text())
    other["findings"] = other["findings"][::-1]  # a self-consistent file of another finding order
    (folder / "zz-other.json").write_text(json.dumps(other))
    with pytest.raises(ResultsError, match="different finding sets"):
        write_leaderboard(tmp_path, "phantom")
    assert len(list(folder.glob("*.json"))) == 7  # nothing erased


def test_real_fixtures_suite_runs_without_accuracy_claims(tiny_lanic_model, shared_data, tmp_path):
    res = run(
        [str(tiny_lanic_model)],
        "real-fixtures",
        tmp_path,
        data=str(shared_data / "cxr_real"),
        n_boot=0,
        progress=False,
        log=lambda *a: None,
    )
    assert res["failed"] == {}
    doc = json.loads(next((tmp_path / "results" / "real-fixtures").glob("*.json")).read_text())
    assert "accuracy" not in doc["metrics"] and doc["dataset"]["rows"] == 93
    assert doc["metrics"]["explanations"]["completeness_error_max"] < 1e-4
    # its leaderboard shows the checks (not an empty accuracy table) and says what they were run on
    md = (tmp_path / "leaderboard" / "real-fixtures.md").read_text()
    assert "makes no accuracy claims" in md and "macro AUROC" not in md and "no data" not in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {tiny_lanic_model} |"))
    assert float(row.split("|")[2]) == pytest.approx(
        doc["metrics"]["explanations"]["completeness_error_max"], rel=0.05
    )
    assert "(test, 93 rows)" in md and doc["metrics"]["monosemanticity"]["bank_measured_on"] in md
    csv_rows = list(csv.DictReader((tmp_path / "leaderboard" / "real-fixtures.csv").open()))
    assert len(csv_rows) == 1 and float(csv_rows[0]["logit_r2"]) == pytest.approx(
        np.mean(doc["metrics"]["fidelity"]["logit_r2"])
    )


def test_mimic_suite_reads_the_mimic_layout(tiny_lanic_model, tmp_path):
    from lanic_hub.data.phantom import PhantomConfig, export

    root = export(
        tmp_path / "ph", 240, seed=12, cfg=PhantomConfig(prevalence_scale=2.0), hf=False, progress=False
    )["mimic"]
    res = run(
        [str(tiny_lanic_model)],
        "mimic-cxr",
        tmp_path / "out",
        data=str(root),
        baselines=False,
        n_boot=10,
        progress=False,
        log=lambda *a: None,
    )
    assert res["failed"] == {}
    doc = json.loads(next((tmp_path / "out" / "results" / "mimic-cxr").glob("*.json")).read_text())
    assert doc["dataset"]["spec"] == f"mimic:{root}" and doc["metrics"]["accuracy"]["classifier"]["auroc"]


def test_an_empty_test_split_is_a_clear_error(tiny_lanic_model, tiny_embedded):
    import numpy as np

    from lanic_hub import LanICModel
    from lanic_hub.errors import DataError
    from lanic_hub.evaluation.runner import SuiteData, evaluate_lanic

    model = LanICModel.from_pretrained(tiny_lanic_model)
    x = torch.zeros(4, model.config.d_in)
    d = SuiteData(
        "phantom", "x", "f", x, None, np.array(["train"] * 4), np.zeros((4, 5)), np.ones((4, 5), bool)
    )
    with pytest.raises(DataError, match="test split is empty"):
        evaluate_lanic(model, d)


def test_a_single_class_finding_is_reported_not_silently_nan():
    import numpy as np

    from lanic_hub.evaluation.runner import SuiteData, _accuracy_block

    rng = np.random.default_rng(0)
    y = (rng.random((60, 5)) < 0.4).astype(float)
    y[:, 2] = 0.0  # no Consolidation positives anywhere
    split = np.array(["validate"] * 20 + ["test"] * 40)
    d = SuiteData("phantom", "x", "f", torch.zeros(60, 4), None, split, y, np.ones((60, 5), bool))
    block = _accuracy_block(rng.normal(size=(60, 5)), d, np.arange(20, 60), np.arange(20), 10, 0)
    assert len(block["notes"]) == 1 and block["notes"][0].startswith("Consolidation: a single class")
    assert np.isnan(block["auroc"]["per_finding"][2])


def test_data_suite_scores_an_image_folder_exactly_like_the_same_images_as_a_dataset(
    tiny_lanic_model, tmp_path
):
    """The generic 'data' suite on a folder of PNGs + labels CSV (written from a phantom dataset,
    pixel for pixel) gives the same rows and the same metrics as on the dataset itself."""
    from datasets import load_from_disk

    from lanic_hub.data.phantom import PhantomConfig, export

    from ..image_folders import write_image_folder

    hf_dir = export(
        tmp_path / "ph", 160, seed=12, cfg=PhantomConfig(prevalence_scale=2.0), mimic=False, progress=False
    )["hf"]
    root = write_image_folder(load_from_disk(str(hf_dir)), tmp_path / "folder")
    docs = {}
    for name, data in (("hf", f"hf:{hf_dir}"), ("folder", f"folder:{root}?patient=patient&split=split")):
        res = run(
            [str(tiny_lanic_model)],
            "data",
            tmp_path / name,
            data=data,
            baselines=False,
            n_boot=10,
            progress=False,
            log=lambda *a: None,
        )
        assert res["failed"] == {}
        docs[name] = json.loads(next((tmp_path / name / "results" / "data").glob("*.json")).read_text())
    a, b = docs["hf"], docs["folder"]
    assert b["dataset"]["spec"].startswith("folder:") and a["dataset"]["rows"] == b["dataset"]["rows"] > 0
    for path in ("classifier", "ensemble_path"):
        assert a["metrics"]["accuracy"][path]["auroc"]["per_finding"] == pytest.approx(
            b["metrics"]["accuracy"][path]["auroc"]["per_finding"], nan_ok=True
        )
    assert "(test," in (tmp_path / "folder" / "leaderboard" / "data.md").read_text()


def test_results_validate_against_the_schema_and_export_to_the_hub_format(
    evaluated, tiny_lanic_model, tmp_path
):
    """Every results file of a lanic-eval run validates against the packaged JSON Schema (and a
    broken one does not); the Hub export parses back with huggingface_hub, figure for figure."""
    import shutil

    import jsonschema
    import yaml
    from huggingface_hub._eval_results import parse_eval_result_entries

    from lanic_hub.cli import main
    from lanic_hub.evaluation.hub_results import results_schema

    out, _ = evaluated
    schema = results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    files = sorted((out / "results" / "phantom").glob("*.json"))
    for f in files:
        jsonschema.validate(json.loads(f.read_text()), schema)
    lan = next(f for f in files if json.loads(f.read_text())["model"]["kind"] == "lanic")
    doc = json.loads(lan.read_text())
    broken = dict(doc, dataset={k: v for k, v in doc["dataset"].items() if k != "rows"})
    with pytest.raises(jsonschema.ValidationError, match="rows"):
        jsonschema.validate(broken, schema)
    model = tmp_path / "model"
    shutil.copytree(tiny_lanic_model, model)
    assert (
        main(
            [
                "eval-results",
                "--results",
                str(lan),
                "--model",
                str(model),
                "--benchmark",
                "someone/lanic-phantom",
            ]
        )
        == 0
    )
    entries = parse_eval_result_entries(
        yaml.safe_load((model / ".eval_results" / "lanic-phantom.yaml").read_text())
    )
    got = {e.task_id: e.value for e in entries}
    acc = doc["metrics"]["accuracy"]
    assert got["phantom/classifier_macro_auroc"] == pytest.approx(
        acc["classifier"]["auroc"]["macro"], abs=1e-6
    )
    assert got["phantom/ensemble_path_macro_auroc"] == pytest.approx(
        acc["ensemble_path"]["auroc"]["macro"], abs=1e-6
    )
    assert {e.dataset_id for e in entries} == {"someone/lanic-phantom"}
    assert all("test" in e.notes and str(doc["dataset"]["rows"]) in e.notes for e in entries)
    from lanic_hub.modeling import upload_plan

    assert ".eval_results/lanic-phantom.yaml" in upload_plan(model)  # `lanic-hub push` sends it
    assert (
        main(["eval-results", "--results", str(lan), "--model", str(model), "--benchmark", "no-owner"]) == 2
    )
