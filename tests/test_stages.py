"""The stage functions outside a pipeline (lanic_hub.stages): the dataset of an embeddings folder is
checked against its manifest, and ``lanic-hub patterns`` is the patterns stage (thumbnails
included, refused before any work where the data's licence forbids them)."""

from __future__ import annotations

import shutil

import pytest

from lanic_hub.data.schema import DataSource, attach_source
from lanic_hub.errors import DataError, LicenceError
from lanic_hub.patterns import BankConfig, PatternBank
from lanic_hub.patterns.concepts import CONCEPTS_JSON
from lanic_hub.stages import (
    DataHandle,
    Run,
    build_patterns,
    embeddings_data,
    load_embeddings_handle,
    load_trained_handle,
    patterns_stage,
)

TINY_BANK = BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3)


def test_the_data_of_an_embeddings_folder_is_the_one_it_was_made_from(tiny_embedded, tmp_path):
    from lanic_hub.data.phantom import export

    emb = load_embeddings_handle(tiny_embedded / "emb")
    data = embeddings_data(emb)
    assert data.spec == emb.manifest.data_spec and len(data.dataset) == emb.manifest.dataset.rows
    other = export(tmp_path / "o", 10, seed=99, mimic=False, progress=False)["hf"]
    with pytest.raises(DataError, match=f"not the dataset the embeddings in {emb.folder}"):
        embeddings_data(emb, f"hf:{other}")
    nameless = emb.__class__(emb.folder, emb.manifest.model_copy(update={"data_spec": None}))
    with pytest.raises(DataError, match="does not say which dataset it came from; pass --data"):
        embeddings_data(nameless)


def test_patterns_stage_refuses_thumbnails_of_mimic_before_any_work(tiny_model, tiny_embedded, tmp_path):
    folder = shutil.copytree(tiny_model, tmp_path / "m")
    (folder / "patterns.json").unlink()
    emb = load_embeddings_handle(tiny_embedded / "emb")
    data = embeddings_data(emb)
    licence = "PhysioNet Credentialed Health Data License 1.5.0"
    mimic = attach_source(data.dataset, DataSource("mimic-cxr", licence, False, "", ""))
    run = Run(folder, pipeline=False, progress=False)
    with pytest.raises(LicenceError, match="mimic-cxr"):
        patterns_stage(
            run, emb, load_trained_handle(folder), DataHandle(data.spec, mimic), TINY_BANK, thumbnails=True
        )
    assert not (folder / "patterns.json").exists() and not (folder / "thumbnails").exists()


def test_the_patterns_command_writes_the_bank_concepts_and_thumbnails(tiny_model, tiny_embedded, tmp_path):
    folder = shutil.copytree(tiny_model, tmp_path / "m")
    for stale in ("patterns.json", "patterns.safetensors", CONCEPTS_JSON):
        (folder / stale).unlink(missing_ok=True)
    bank = build_patterns(folder, tiny_embedded / "emb", config=TINY_BANK, thumbnails=True, progress=False)
    saved = PatternBank.load(folder)
    assert [p.id for p in saved.patterns] == [p.id for p in bank.patterns] and bank.patterns
    strips = sorted((folder / "thumbnails").iterdir())
    assert saved.meta.thumbnails == bank.meta.thumbnails > 0
    assert len(strips) == sum(bool(p.gallery) for p in bank.patterns)
    assert (folder / CONCEPTS_JSON).exists() == (tiny_model / CONCEPTS_JSON).exists()
    assert not (folder / "stages.json").exists()  # outside a pipeline: no ledger
    # the same bank as the one built without thumbnails (the fixture's): thumbnails change no pattern
    assert [p.name for p in saved.patterns] == [p.name for p in PatternBank.load(tiny_model).patterns]
