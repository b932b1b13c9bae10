"""The typed records of the files one stage writes and another reads (lanic_hub.records): each
reads back what was written (round trip, unknown keys kept), loads the older form, and refuses a
malformed or self-contradicting file with an error naming the file and the key."""

from __future__ import annotations

import json

import pytest

from lanic_hub.errors import RecordError, ResultsError
from lanic_hub.records import (
    BankMeta,
    EmbeddingCacheError,
    EmbeddingsManifest,
    EvalResults,
    PhantomClipReport,
    RunFolder,
    RunSummary,
    TrainingReport,
)


def _write(path, doc) -> None:
    path.write_text(json.dumps(doc, indent=1))


# ----------------------------------------------------------------------------- manifest


def test_manifest_round_trip_is_byte_identical(tiny_embedded, tmp_path):
    src = tiny_embedded / "emb" / "manifest.json"
    man = EmbeddingsManifest.read(src.parent)
    assert man.backbone.embed_dim == 256 and man.dataset.rows == 300 and man.data_spec.startswith("hf:")
    assert man.shards == 1 and man.version == EmbeddingsManifest.SCHEMA
    out = man.write(tmp_path)
    assert out == tmp_path / "manifest.json" and out.read_bytes() == src.read_bytes()


def test_manifest_keeps_unknown_keys_and_loads_the_older_form(tiny_embedded, tmp_path):
    doc = json.loads((tiny_embedded / "emb" / "manifest.json").read_text())
    newer = doc | {"written_on": "gpu-node-3", "backbone": doc["backbone"] | {"pooling": "cls"}}
    _write(tmp_path / "manifest.json", newer)
    man = EmbeddingsManifest.read(tmp_path)
    assert man.to_dict() == newer  # what this version does not know is written back as it was
    old = {k: v for k, v in doc.items() if k != "data_spec"}  # manifests before data_spec existed
    _write(tmp_path / "manifest.json", old)
    assert EmbeddingsManifest.read(tmp_path).data_spec is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["dataset"].pop("rows"), r"key 'dataset\.rows': Field required"),
        (lambda d: d.update(shards="two"), r"key 'shards': Input should be a valid integer"),
        (lambda d: d.update(dtype="float64"), r"key 'dtype': Input should be 'float32'"),
        (lambda d: d["backbone"].update(spec=None), r"key 'backbone\.spec'"),
        (lambda d: d.update(version=2), r"schema version 2 is newer than this lanic-hub reads \(1\)"),
        (lambda d: d.pop("version"), r"key 'version': the schema version must be an integer"),
        (lambda d: d.update(shards=5), r"key 'shards': 5 shards cannot hold 300 rows of 2048"),
    ],
)
def test_a_malformed_manifest_names_the_file_and_the_key(tiny_embedded, tmp_path, change, match):
    doc = json.loads((tiny_embedded / "emb" / "manifest.json").read_text())
    change(doc)
    _write(tmp_path / "manifest.json", doc)
    with pytest.raises(EmbeddingCacheError, match=match) as exc:
        EmbeddingsManifest.read(tmp_path)
    assert str(tmp_path / "manifest.json") in str(exc.value)


def test_a_manifest_that_is_not_json_or_absent(tmp_path):
    (tmp_path / "manifest.json").write_text('{"version": 1,')
    with pytest.raises(EmbeddingCacheError, match=r"manifest\.json: not valid JSON"):
        EmbeddingsManifest.read(tmp_path)
    with pytest.raises(EmbeddingCacheError, match=r"nothing/manifest\.json: missing"):
        EmbeddingsManifest.read(tmp_path / "nothing")
    _write(tmp_path / "manifest.json", [1, 2])
    with pytest.raises(EmbeddingCacheError, match="expected a JSON object, found list"):
        EmbeddingsManifest.read(tmp_path)


def test_manifest_identity_names_the_first_key_that_differs(tiny_embedded):
    man = EmbeddingsManifest.read(tiny_embedded / "emb")
    assert man.identity_mismatch(man.model_copy(update={"data_spec": "elsewhere"})) is None  # not identity
    other = man.model_copy(update={"dtype": "float16"})
    assert man.identity_mismatch(other) == "dtype ('float32', now 'float16')"


# ----------------------------------------------------------------------------- phantom CLIP report


def test_phantom_clip_report_round_trip(tiny_phantom_clip, tmp_path):
    cfg, _, folder = tiny_phantom_clip
    rep = PhantomClipReport.read(folder)
    assert rep.complete and rep.steps == rep.planned_steps == cfg.planned_steps == rep.budget()
    assert rep.check is not None and rep.check.min_probe_auroc == 0.0 and rep.unservable() is None
    rep.write(tmp_path)
    assert json.loads((tmp_path / PhantomClipReport.FILE).read_text()) == json.loads(
        (folder / PhantomClipReport.FILE).read_text()
    )


def test_a_phantom_clip_report_that_contradicts_itself(tiny_phantom_clip, tmp_path):
    """The outsider's case: a report that says complete while its own steps fall short."""
    _, _, folder = tiny_phantom_clip
    doc = json.loads((folder / PhantomClipReport.FILE).read_text())
    _write(tmp_path / PhantomClipReport.FILE, doc | {"steps": doc["steps"] - 1})
    with pytest.raises(RecordError, match=r"key 'complete': its report says complete, but ran 2 steps"):
        PhantomClipReport.read(tmp_path)
    rep = PhantomClipReport.read(tmp_path, check=False)  # the cache check reads it to say why not
    assert "says complete, but ran 2 steps of its planned 3" in rep.unservable()
    # an honest partial run is consistent, and not servable
    _write(tmp_path / PhantomClipReport.FILE, doc | {"steps": 1, "complete": False})
    assert PhantomClipReport.read(tmp_path).unservable() == "its training stopped after 1 of 3 steps"
    _write(tmp_path / PhantomClipReport.FILE, doc | {"check": None})
    assert PhantomClipReport.read(tmp_path).unservable() == "it has not passed the calibration probe"
    _write(tmp_path / PhantomClipReport.FILE, doc | {"steps": "three"})
    with pytest.raises(
        RecordError, match=r"training_report\.json: key 'steps': Input should be a valid integer"
    ):
        PhantomClipReport.read(tmp_path)
    _write(tmp_path / PhantomClipReport.FILE, doc | {"check": doc["check"] | {"passed": "maybe"}})
    with pytest.raises(RecordError, match=r"key 'check\.passed'"):
        PhantomClipReport.read(tmp_path)


# ----------------------------------------------------------------------------- training report


def test_training_report_round_trip(tiny_model, tmp_path):
    src = tiny_model / "fidelity.json"
    rep = TrainingReport.read(tiny_model)
    assert rep.schema_version == TrainingReport.SCHEMA and rep.ensemble.n_latents == 256
    assert rep.fvu_full_level == rep.fidelity.fvu_mean["256"] and 0 < rep.fvu_full_level < 1
    assert rep.auroc.classifier.macro == json.loads(src.read_text())["auroc"]["classifier"]["macro"]
    assert rep.auroc.classifier.finding("Edema") is not None and rep.labels["test"]["Edema"].labelled > 0
    assert {c["name"] for c in rep.health} >= {"classifier_auroc", "fvu"}
    rep.write(tmp_path)
    assert (tmp_path / "fidelity.json").read_bytes() == src.read_bytes()


def test_training_report_loads_a_file_without_a_schema_version(tiny_model, tmp_path):
    """fidelity.json had no schema_version before it was a record: such a file is version 1 and
    is written back without one."""
    doc = json.loads((tiny_model / "fidelity.json").read_text())
    doc.pop("schema_version")
    _write(tmp_path / "fidelity.json", doc)
    rep = TrainingReport.read(tmp_path)
    assert rep.schema_version == 1 and rep.to_dict() == doc


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["ensemble"].pop("steps"), r"key 'ensemble\.steps': Field required"),
        (lambda d: d["auroc"]["classifier"].update(macro="high"), r"key 'auroc\.classifier\.macro'"),
        (
            lambda d: d["labels"]["test"]["Edema"].update(positive=None),
            r"key 'labels\.test\.Edema\.positive'",
        ),
        (
            lambda d: d["fidelity"]["fvu_mean"].pop("256"),
            r"key 'fidelity\.fvu_mean': no FVU at the full level 256",
        ),
        (
            lambda d: d["ensemble"].update(steps=10**6),
            r"key 'ensemble\.steps': 1000000 steps, above the planned",
        ),
        (lambda d: d.update(schema_version=9), r"schema version 9 is newer"),
        (lambda d: d.pop("measured_on"), r"key 'measured_on': Field required"),
    ],
)
def test_a_malformed_training_report_names_the_file_and_the_key(tiny_model, tmp_path, change, match):
    doc = json.loads((tiny_model / "fidelity.json").read_text())
    change(doc)
    _write(tmp_path / "fidelity.json", doc)
    with pytest.raises(RecordError, match=match) as exc:
        TrainingReport.read(tmp_path)
    assert str(tmp_path / "fidelity.json") in str(exc.value)


# ----------------------------------------------------------------------------- pattern bank meta


def test_bank_meta_round_trip_through_the_bank_and_the_model_folder(tiny_model, tiny_lanic_model, tmp_path):
    from lanic_hub import LanICModel
    from lanic_hub.patterns import PatternBank

    doc = json.loads((tiny_model / "patterns.json").read_text())
    bank = PatternBank.load(tiny_model)
    assert bank.meta.counts["selected"] == len(bank) and bank.meta.n_members == 8
    assert bank.meta.ensemble_fingerprint == doc["meta"]["ensemble_fingerprint"]
    bank.save(tmp_path / "bank")  # written again: the same meta, key for key
    assert json.loads((tmp_path / "bank" / "patterns.json").read_text())["meta"] == doc["meta"]
    # the model folder's copy carries what the export added, typed
    model = LanICModel.from_pretrained(tiny_lanic_model)
    assert model.bank_meta.data_source["name"] == "phantom" and model.bank_meta.health
    model.bank_meta.removal_measured = {"note": "by hand"}
    model.save_pretrained(tmp_path / "model")
    again = LanICModel.from_pretrained(tmp_path / "model")
    assert again.bank_meta == model.bank_meta and again.bank_meta.removal_measured == {"note": "by hand"}


def test_a_malformed_bank_meta_names_the_file_and_the_key(tiny_model, tiny_lanic_model, tmp_path):
    import shutil

    from lanic_hub import LanICModel
    from lanic_hub.modeling import ModelFolderError
    from lanic_hub.patterns import PatternBank

    for f in ("patterns.json", "patterns.safetensors"):
        shutil.copy(tiny_model / f, tmp_path / f)
    doc = json.loads((tmp_path / "patterns.json").read_text())
    doc["meta"]["counts"]["selected"] = "many"
    doc["meta"]["future_key"] = [1, 2]
    _write(tmp_path / "patterns.json", doc)
    with pytest.raises(RecordError, match=r"patterns\.json: meta: key 'counts\.selected': Input should be"):
        PatternBank.load(tmp_path)
    doc["meta"]["counts"]["selected"] = 3
    _write(tmp_path / "patterns.json", doc)
    assert PatternBank.load(tmp_path).meta.model_extra == {"future_key": [1, 2]}  # kept, not refused
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_lanic_model, model_dir)
    side = json.loads((model_dir / "patterns.json").read_text())
    side["meta"]["health"] = "all fine"
    _write(model_dir / "patterns.json", side)
    with pytest.raises(
        ModelFolderError, match=r"model/patterns\.json: meta: key 'health': Input should be a valid list"
    ):
        LanICModel.from_pretrained(model_dir)
    assert BankMeta().to_dict() == {}  # a model made in memory has an empty one


# ----------------------------------------------------------------------------- run summary


def _summary_doc() -> dict:
    """A summary.json as the pipeline wrote it before it was a record."""
    return {
        "seconds": {"data": 1.0, "backbone": 0.5, "embeddings": 2.0, "train": 9.1, "eval": 3.0},
        "peak_rss_gb": {"data": 0.4, "train": 1.2},
        "leaderboard": "runs/q/eval/leaderboard/phantom.md",
        "data": "phantom",
        "backbone": "phantom",
        "model": "runs/q/model",
        "auroc_test": {"classifier_macro": 0.8605, "ensemble_path_macro": 0.8596},
        "measured_on": "phantom, test split (400 rows)",
        "fvu_full_level": 0.1104,
        "pattern_bank": {"latents": 25600, "alive": 4600, "merged": 700, "selected": 161},
        "health": {"failed": [], "checks": [{"name": "fvu", "ok": True}]},
    }


def test_run_summary_round_trip(tmp_path):
    doc = _summary_doc()
    _write(tmp_path / "summary.json", doc)
    s = RunSummary.read(tmp_path)
    assert s.auroc_test["ensemble_path_macro"] == 0.8596 and s.pattern_bank["selected"] == 161
    s.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == (tmp_path / "summary.json").read_text()


def test_a_malformed_run_summary(tmp_path):
    doc = _summary_doc()
    doc["auroc_test"].pop("ensemble_path_macro")
    _write(tmp_path / "summary.json", doc)
    with pytest.raises(
        RecordError, match=r"summary\.json: key 'auroc_test': lacks \['ensemble_path_macro'\]"
    ):
        RunSummary.read(tmp_path)
    _write(tmp_path / "summary.json", _summary_doc() | {"fvu_full_level": "low"})
    with pytest.raises(RecordError, match=r"key 'fvu_full_level': Input should be a valid number"):
        RunSummary.read(tmp_path)
    doc = _summary_doc()
    doc.pop("model")
    _write(tmp_path / "summary.json", doc)
    with pytest.raises(RecordError, match=r"key 'model': Field required"):
        RunSummary.read(tmp_path)


def test_run_folder_names_the_layout():
    run = RunFolder("runs/q")
    assert run.embeddings.as_posix() == "runs/q/embeddings"
    assert run.eval_results("phantom").as_posix() == "runs/q/eval/results/phantom"
    assert run.leaderboard("phantom").as_posix() == "runs/q/eval/leaderboard/phantom.md"
    assert run.summary.name == RunSummary.FILE and run.phantoms_hf.as_posix() == "runs/q/phantoms/hf"
    results = run.eval_results("phantom", "runs/q/model")
    assert results == EvalResults.path("runs/q/eval", "phantom", "runs/q/model")
    assert results.as_posix() == "runs/q/eval/results/phantom/runs_q_model.json"


# ----------------------------------------------------------------------------- evaluation results
# (the round trip of the files the runner writes: tests/evaluation/test_runner.py)


def _results_doc() -> dict:
    block = {"auroc": {"per_finding": [0.8, float("nan")], "macro": 0.8, "macro_ci": [0.7, 0.9]}}
    return {
        "schema": 1,
        "model": {"id": "runs/q/model", "revision": None, "kind": "lanic"},
        "suite": "phantom",
        "findings": ["Edema", "Cardiomegaly"],
        "dataset": {"spec": "hf:runs/q/phantoms/hf", "fingerprint": "ab12", "split": "test", "rows": 10},
        "lanic_hub": "0.9.0",
        "seed": 0,
        "seconds": 1.5,
        "metrics": {"accuracy": {"classifier": block}, "fidelity": {"logit_r2": [0.9, 0.8]}},
        "written_by": "a newer lanic-eval",
    }


def test_results_round_trip_keeps_nan_and_unknown_keys(tmp_path):
    _write(tmp_path / "r.json", _results_doc())
    rec = EvalResults.read(tmp_path / "r.json")
    au = rec.metrics.accuracy["classifier"].auroc
    assert au.per_finding[0] == 0.8 and au.per_finding[1] != au.per_finding[1]  # NaN stays NaN
    assert rec.dataset.label() == "hf:runs/q/phantoms/hf (test, 10 rows)"
    assert rec.source == tmp_path / "r.json"
    assert rec.metrics.families() == ["accuracy", "fidelity"]
    rec.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == (tmp_path / "r.json").read_text()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["dataset"].pop("rows"), r"key 'dataset\.rows': Field required"),
        (lambda d: d["model"].update(id=""), r"key 'model\.id': String should have at least 1 character"),
        (lambda d: d.update(findings=["Edema", "Edema"]), r"key 'findings': repeated finding"),
        (lambda d: d.update(metrics={}), r"key 'metrics': no figures"),
        (
            lambda d: d["metrics"]["accuracy"]["classifier"]["auroc"].update(per_finding=[0.8]),
            r"key 'metrics\.accuracy\.classifier\.auroc\.per_finding': 1 values for 2 findings",
        ),
        (
            lambda d: d["metrics"]["accuracy"]["classifier"].pop("auroc"),
            r"key 'metrics\.accuracy\.classifier\.auroc': Field required",
        ),
        (lambda d: d.update(schema=2), r"schema version 2 is newer than this lanic-hub reads \(1\)"),
        (lambda d: d.update(schema=0), r"results schema 0 unknown \(this lanic-hub reads 1\)"),
        (lambda d: d.pop("schema"), r"key 'schema': the schema version must be an integer"),
    ],
)
def test_a_malformed_results_file_names_the_file_and_the_key(tmp_path, change, match):
    doc = _results_doc()
    change(doc)
    _write(tmp_path / "r.json", doc)
    with pytest.raises(ResultsError, match=r"r\.json: " + match):
        EvalResults.read(tmp_path / "r.json")
