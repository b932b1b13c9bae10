"""The phantom benchmark in the Hub's dataset layout: the parquet files and card that push_to_hub
writes, read back with `datasets.load_dataset` from a folder and from a repo id in an offline Hub
cache, splits, rows and provenance intact; data that may not be re-published is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lanic_hub.data.open import open_dataset
from lanic_hub.data.phantom import PhantomConfig, export
from lanic_hub.data.schema import MIMIC_CXR, PHANTOM, attach_source, source_of
from lanic_hub.errors import DataError, LicenceError
from lanic_hub.utils.hfcache import put_in_hf_cache

from ..hub_env import offline_hub_env, run_json

WORLD = PhantomConfig(prevalence_scale=2.0, split_fractions=(0.6, 0.2, 0.2))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return export(
        tmp_path_factory.mktemp("bench"), 60, seed=21, cfg=WORLD, mimic=False, hub=True, progress=False
    )


def _by_id(ds) -> dict:
    return {r["image_id"]: r for r in ds}


def test_the_benchmark_round_trips_through_the_hub_layout(bench):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    hub = bench["hub"]
    assert sorted(p.name for p in (hub / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validate-00000-of-00001.parquet",
    ]
    meta = DatasetCard.load(hub / "README.md").data.to_dict()
    assert meta["lanic_source"]["name"] == "phantom" and meta["license"] == "apache-2.0"
    assert meta["lanic_generator"]["seed"] == 21 and meta["lanic_generator"]["n"] == 60
    assert meta["lanic_generator"]["split_fractions"] == [0.6, 0.2, 0.2]
    # datasets alone reads it as the Hub would: real splits
    dd = load_dataset(str(hub))
    assert set(dd) == {"train", "validate", "test"} and sum(len(d) for d in dd.values()) == 60
    assert all(set(d["split"]) == {s} for s, d in dd.items())
    # as a lanic-hub spec: the same rows, images and labels as the saved dataset, and its provenance
    ds, orig = open_dataset(f"hf:{hub}"), open_dataset(f"hf:{bench['hf']}")
    assert source_of(ds) == source_of(orig) == PHANTOM
    a, b = _by_id(ds), _by_id(orig)
    assert a.keys() == b.keys()
    for k in list(a)[:10]:
        for col in ("report", "split", "Edema", "Pleural Effusion", "gt_chest_tube"):
            assert a[k][col] == b[k][col], (k, col)
        assert np.array_equal(np.asarray(a[k]["image"]), np.asarray(b[k]["image"]))
    assert open_dataset(f"hf:{hub}")._fingerprint == ds._fingerprint  # stable: caches key on it


def test_a_hub_repo_id_in_an_offline_cache_in_a_new_process(bench, tmp_path):
    put_in_hf_cache(bench["hub"], "someone-new/lanic-phantom", tmp_path / "hf" / "hub", repo_type="dataset")
    code = (
        "import json\n"
        "from lanic_hub.data.open import open_dataset\n"
        "from lanic_hub.data.schema import source_of\n"
        "ds = open_dataset('hf:someone-new/lanic-phantom')\n"
        "print(json.dumps({'rows': len(ds), 'splits': sorted(set(ds['split'])),"
        " 'source': source_of(ds).name}))\n"
    )
    env = offline_hub_env(tmp_path / "hf", tmp_path, HF_DATASETS_OFFLINE="1")
    assert run_json(code, env) == {
        "rows": 60,
        "splits": ["test", "train", "validate"],
        "source": "phantom",
    }


def test_restricted_data_and_unknown_cards_are_refused(bench, tmp_path):
    from lanic_hub.data.hub import write_hub_layout

    mimic = attach_source(open_dataset(f"hf:{bench['hf']}"), MIMIC_CXR)
    with pytest.raises(LicenceError, match="mimic-cxr-jpg"):
        write_hub_layout(mimic, tmp_path / "no")
    assert not (tmp_path / "no").exists()
    other = tmp_path / "other"
    shutil.copytree(bench["hub"], other)
    text = (other / "README.md").read_text().replace("lanic_source:", "somebody_else:")
    (other / "README.md").write_text(text)
    with pytest.raises(DataError, match="licence is unknown"):
        open_dataset(f"hf:{other}")


def test_push_dataset_lists_the_card_and_parquet_files_and_refuses_restricted_cards(bench, tmp_path, capsys):
    from lanic_hub.cli import main
    from lanic_hub.data.hub import dataset_upload_plan

    folder = tmp_path / "bench"
    shutil.copytree(bench["hub"], folder)
    (folder / "notes.txt").write_text("not part of the dataset")
    plan = dataset_upload_plan(folder)
    assert plan == ["README.md"] + [f"data/{s}-00000-of-00001.parquet" for s in ("test", "train", "validate")]
    assert main(["push", "--dataset", str(folder), "--repo", "someone/lanic-phantom", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 files" in out and "the dataset repo someone/lanic-phantom" in out and "notes.txt" not in out
    assert "nothing was uploaded" in out
    # a card whose provenance forbids re-publishing: exit code 4, naming the data
    card = (folder / "README.md").read_text()
    (folder / "README.md").write_text(
        card.replace("name: phantom", "name: mimic-cxr-jpg").replace(
            "redistributable: true", "redistributable: false"
        )
    )
    with pytest.raises(LicenceError, match="mimic-cxr-jpg"):
        dataset_upload_plan(folder)
    assert main(["push", "--dataset", str(folder), "--repo", "someone/lanic-phantom", "--dry-run"]) == 4
    assert "mimic-cxr-jpg" in capsys.readouterr().err
    # a saved dataset (save_to_disk), not the Hub's layout: a clear error that says how to write one
    with pytest.raises(DataError, match="formats hub"):
        dataset_upload_plan(bench["hf"])
    with pytest.raises(SystemExit) as both:  # one of --model and --dataset
        main(["push", "--dataset", str(folder), "--model", str(folder), "--repo", "x/y"])
    assert both.value.code == 2 and "not allowed with" in capsys.readouterr().err
