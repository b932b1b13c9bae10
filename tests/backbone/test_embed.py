"""Extraction: correct embeddings, errors recorded, resumable after kill -9, refuses mismatches,
and the same result under torchrun with 2 CPU processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from lanic_hub.backbone import load_backbone
from lanic_hub.backbone.embed import EmbeddingCacheError, embed_dataset, iter_shards, load_embeddings
from lanic_hub.data.images import load_image
from lanic_hub.data.phantom import load_phantom_dataset
from lanic_hub.data.reports import split_sentences


@pytest.fixture(scope="module")
def tiny_dir(tiny_biomedclip, tmp_path_factory):
    folder, bert, _ = tiny_biomedclip
    d = tmp_path_factory.mktemp("bb") / "clip"
    shutil.copytree(folder, d)
    shutil.copytree(bert, d / "text_config")
    return d


@pytest.fixture(scope="module")
def bb(tiny_dir):
    return load_backbone(f"local-dir:{tiny_dir}")


@pytest.fixture(scope="module")
def data_with_bad_row(phantom_export, tmp_path_factory):
    ds = load_phantom_dataset(phantom_export["hf"])

    def corrupt(row, i):
        if i == 5:
            row["image"] = {"path": "broken.png", "bytes": b"not a png at all"}
        return row

    out = tmp_path_factory.mktemp("ds") / "hf"
    ds.map(corrupt, with_indices=True).save_to_disk(str(out))
    return out


def test_embeddings_equal_direct_forward_and_errors_are_recorded(bb, data_with_bad_row, tmp_path):
    from datasets import load_from_disk

    ds = load_from_disk(str(data_with_bad_row))
    summary = embed_dataset(
        ds, bb, tmp_path / "emb", batch_size=8, num_workers=0, shard_size=16, progress=False
    )
    assert summary["shards_written"] == 3 and summary["failed"] == 1
    e = load_embeddings(tmp_path / "emb")
    assert e.row_ids.tolist() == [r for r in range(40) if r != 5]
    assert e.errors[0][0] == 5 and "cannot load image" in e.errors[0][1]
    lines = (tmp_path / "emb" / "errors.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"row": 5' in lines[0] and "broken.png" in lines[0]
    for k in (0, 17, 39):
        j = e.row_ids.tolist().index(k)
        direct = bb.encode_image(bb.preprocess(load_image(ds[k]["image"]))[None])[0]
        assert torch.allclose(e.image[j], direct, atol=1e-5)
        assert torch.allclose(e.report[j], bb.encode_text([ds[k]["report"]])[0], atol=1e-5)
    assert torch.allclose(e.image.norm(dim=1), torch.ones(len(e.row_ids)), atol=1e-5)
    n_sent = sum(len(split_sentences(ds[int(r)]["report"])) for r in e.row_ids)
    assert len(e.sentences) == n_sent == len(e.sentence) == len(e.sentence_row)
    assert len(e.to_dataset()) == 39
    mapped = list(iter_shards(tmp_path / "emb"))  # zero-copy views of the shard files
    assert [k for k, _ in mapped] == [0, 1, 2]
    assert torch.equal(torch.cat([t["image"] for _, t in mapped]), e.image)
    assert torch.equal(torch.cat([t["row_ids"] for _, t in mapped]), e.row_ids)


def test_mismatched_folder_is_refused(bb, tiny_dir, data_with_bad_row, phantom_export, tmp_path):
    from datasets import load_from_disk

    ds = load_from_disk(str(data_with_bad_row))
    embed_dataset(ds, bb, tmp_path / "emb", num_workers=0, shard_size=64, text=False, progress=False)
    other = load_backbone(f"local-dir:{tiny_dir}")
    other.spec = "hf-hub:someone/else"
    with pytest.raises(EmbeddingCacheError, match="another backbone"):
        embed_dataset(ds, other, tmp_path / "emb", num_workers=0, shard_size=64, text=False, progress=False)
    with pytest.raises(EmbeddingCacheError, match="another dataset"):
        embed_dataset(
            load_phantom_dataset(phantom_export["hf"]),
            bb,
            tmp_path / "emb",
            num_workers=0,
            shard_size=64,
            text=False,
            progress=False,
        )


def _cli(tiny_dir, data, out, extra=()):
    return [
        sys.executable,
        "-m",
        "lanic_hub.cli",
        "embed",
        "--data",
        f"hf:{data}",
        "--backbone",
        f"local-dir:{tiny_dir}",
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--shard-size",
        "4",
        "--num-workers",
        "0",
        *extra,
    ]


@pytest.fixture(scope="module")
def bigger_data(tmp_path_factory):
    from lanic_hub.data.phantom import export

    out = tmp_path_factory.mktemp("big")
    return export(out, 160, seed=9, mimic=False, progress=False)["hf"]


def test_resume_after_kill_9_equals_uninterrupted(tiny_dir, bigger_data, tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(tiny_dir, bigger_data, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(list(killed.glob("shard-*.safetensors"))) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed.glob("shard-*.safetensors")))
    assert 3 <= done_before < 40, f"kill landed at {done_before} of 40 shards"
    r = subprocess.run(_cli(tiny_dir, bigger_data, killed), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'"shards_skipped": {done_before}' in r.stdout
    full = tmp_path / "full"
    assert subprocess.run(_cli(tiny_dir, bigger_data, full), capture_output=True, timeout=600).returncode == 0
    a, b = load_embeddings(killed), load_embeddings(full)
    assert a.row_ids.tolist() == b.row_ids.tolist() == list(range(160))
    assert torch.equal(a.image, b.image) and torch.equal(a.sentence, b.sentence)


def test_torchrun_two_processes_equals_single(tiny_dir, bigger_data, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun is installed with torch"
    cmd = _cli(tiny_dir, bigger_data, tmp_path / "multi")[3:]  # drop 'python -m lanic_hub.cli'
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "lanic_hub.cli", *cmd],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    single = tmp_path / "single"
    assert (
        subprocess.run(_cli(tiny_dir, bigger_data, single), capture_output=True, timeout=600).returncode == 0
    )
    a, b = load_embeddings(tmp_path / "multi"), load_embeddings(single)
    assert a.row_ids.tolist() == b.row_ids.tolist()
    assert torch.allclose(a.image, b.image, atol=1e-6) and a.sentences == b.sentences


def test_incomplete_folder_is_refused(tiny_dir, bigger_data, bb, tmp_path):
    from datasets import load_from_disk

    embed_dataset(
        load_from_disk(str(bigger_data)),
        bb,
        tmp_path / "e",
        num_workers=0,
        shard_size=64,
        text=False,
        progress=False,
    )
    (tmp_path / "e" / "shard-00001.safetensors").unlink()
    with pytest.raises(EmbeddingCacheError, match="incomplete, 1 of 3 shards missing"):
        load_embeddings(tmp_path / "e")
