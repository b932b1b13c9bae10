"""Cached, resumable, sharded embedding extraction (``lanic-hub embed``), and its reader.

Layout of an embeddings folder::

    manifest.json                  backbone id/revision, preprocessing, dataset fingerprint, dtype, shards
                                   (:class:`lanic_hub.records.EmbeddingsManifest`)
    shard-00000.safetensors        row_ids (int64), image (N, D), report (N, D) if any, sentence (M, D),
                                   sentence_row (M,); metadata: the sentences' text and the rows that failed

Rows ``[k * shard_size, (k + 1) * shard_size)`` of the dataset form shard ``k``. A shard is written
to a temporary file and renamed when complete, so a killed run leaves only whole shards, and a
rerun skips them. Under ``torchrun`` / ``accelerate launch`` shard ``k`` belongs to rank
``k % world_size``; every rank writes its own shards and the reader merges them by shard id, so
the result does not depend on the number of processes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from ..data.images import load_image
from ..data.reports import split_sentences
from ..data.schema import dataset_fingerprint
from ..errors import DataError
from ..records import BackboneIdentity, DatasetIdentity, EmbeddingCacheError, EmbeddingsManifest
from ..utils.io import write_text_atomic
from ..utils.progress import tqdm
from ..utils.system import cap_workers
from .resolve import Backbone

MANIFEST_VERSION = EmbeddingsManifest.SCHEMA


class _Images(Dataset):
    """Decode + preprocess in DataLoader workers; failures travel back as messages, not crashes."""

    def __init__(self, ds, rows: list[int], preprocess, image_size: int) -> None:
        self.ds, self.rows, self.preprocess, self.size = ds, rows, preprocess, image_size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        try:
            return row, self.preprocess(load_image(self.ds[row]["image"])), ""
        except (DataError, OSError, ValueError) as exc:
            return row, torch.zeros(3, self.size, self.size), str(exc)


def _collate(batch):
    rows, x, err = zip(*batch, strict=True)
    return torch.tensor(rows), torch.stack(x), list(err)


def dist_info() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed, or torchrun's environment, or (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _manifest(
    bb: Backbone, ds, shard_size: int, dtype: str, text: bool, data_spec: str | None
) -> EmbeddingsManifest:
    from ..constants import VERSION as __version__

    pre = getattr(bb.model.visual, "preprocess_cfg", {}) or {}
    n = len(ds)
    return EmbeddingsManifest(
        version=MANIFEST_VERSION,
        lanic_hub=__version__,
        backbone=BackboneIdentity(**bb.identity()),
        preprocess={k: (list(v) if isinstance(v, tuple) else v) for k, v in pre.items()},
        dataset=DatasetIdentity(fingerprint=dataset_fingerprint(ds), rows=n),
        dtype=dtype,
        text=text,
        shard_size=shard_size,
        shards=(n + shard_size - 1) // shard_size,
        data_spec=data_spec,
    )


def _check_manifest(path: Path, want: EmbeddingsManifest) -> None:
    differs = EmbeddingsManifest.read(path).identity_mismatch(want)
    if differs:
        raise EmbeddingCacheError(
            f"{path}: this folder holds embeddings of another {differs}; "
            "use a new --out folder or delete this one"
        )


def shard_path(out: Path, k: int) -> Path:
    return out / f"shard-{k:05d}.safetensors"


def embed_dataset(
    ds,
    bb: Backbone,
    out: str | Path,
    *,
    batch_size: int = 64,
    num_workers: int = 2,
    shard_size: int = 2048,
    dtype: str = "float32",
    text: bool = True,
    progress: bool = True,
    autocast: str | None = None,
    data_spec: str | None = None,
) -> dict[str, Any]:
    """Embed every image (and report / report sentence) of ``ds`` into ``out``. Resumable.

    ``autocast`` ('bf16' / 'fp16') runs the image tower under torch.autocast on the model's device.
    ``data_spec`` (e.g. ``hf:/abs/path``) is recorded so that ``lanic-hub train`` finds the labels.
    Returns a summary: shards written now, skipped (already done), rows that failed, seconds.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    me, world = dist_info()
    for stale in out.glob("shard-*.safetensors.tmp*"):  # this rank's shards a killed run was writing
        if int(stale.name[6:11]) % world == me:
            stale.unlink(missing_ok=True)
    rank, world = dist_info()
    want = _manifest(bb, ds, shard_size, dtype, text, data_spec)  # data_spec: not part of the identity
    mpath = EmbeddingsManifest.path_in(out)
    if mpath.exists():
        _check_manifest(mpath, want)
    elif rank == 0:
        want.write(mpath)
    todo = [k for k in range(want.shards) if k % world == rank and not shard_path(out, k).exists()]
    skipped = sum(1 for k in range(want.shards) if k % world == rank) - len(todo)
    rows = [r for k in todo for r in range(k * shard_size, min(len(ds), (k + 1) * shard_size))]
    t0 = time.perf_counter()
    num_workers = cap_workers(num_workers, "embed")
    loader = DataLoader(
        _Images(ds.select_columns(["image"]), rows, bb.preprocess, bb.image_size),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=bb.device.type == "cuda",
        persistent_workers=False,
    )
    report_col = ds.select_columns(["report"])  # text only: never pull image bytes for reports
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    pending: list[tuple[int, torch.Tensor | None, str]] = []  # (row, embedding or None, error), in row order
    failed = 0
    bar = tqdm(total=len(rows), desc=f"embed (rank {rank})", unit="img", disable=not progress)
    queue = list(todo)
    for rws, x, errs in loader:
        ok = torch.tensor([not e for e in errs])
        emb = None
        if ok.any():
            with torch.autocast(
                bb.device.type,
                dtype=torch.bfloat16 if autocast == "bf16" else torch.float16,
                enabled=autocast is not None,
            ):
                emb = bb.encode_image(x[ok]).float().cpu()
        j = 0
        for r, e in zip(rws.tolist(), errs, strict=True):
            if e:
                pending.append((r, None, e))
                failed += 1
            else:
                pending.append((r, emb[j], ""))
                j += 1
        bar.update(len(rws))
        while queue and pending and pending[-1][0] >= min(len(ds), (queue[0] + 1) * shard_size) - 1:
            end = min(len(ds), (queue[0] + 1) * shard_size)
            done = [p for p in pending if p[0] < end]
            pending = [p for p in pending if p[0] >= end]
            _write_shard(out, queue.pop(0), report_col, bb, done, torch_dtype, text)
    bar.close()
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    if rank == 0 and all(shard_path(out, k).exists() for k in range(want.shards)):
        _write_errors_file(out, want.shards)
    return {
        "rank": rank,
        "world_size": world,
        "shards_written": len(todo),
        "shards_skipped": skipped,
        "rows": len(rows),
        "failed": failed,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _write_errors_file(out: Path, n_shards: int) -> None:
    """``errors.jsonl``: one {"row", "reason"} line per image that failed, over all shards."""
    lines = []
    for k in range(n_shards):
        with safe_open(shard_path(out, k), framework="pt") as f:
            lines += [
                json.dumps({"row": r, "reason": why})
                for r, why in json.loads((f.metadata() or {}).get("errors", "[]"))
            ]
    write_text_atomic(out / "errors.jsonl", "".join(x + "\n" for x in lines))


def _write_shard(out: Path, k: int, ds, bb: Backbone, done, torch_dtype, text: bool) -> None:
    good = [(r, e) for r, e, err in done if not err]
    rows = torch.tensor([r for r, _ in good], dtype=torch.long)
    d = bb.embed_dim
    tensors = {
        "row_ids": rows,
        "image": (torch.stack([e for _, e in good]) if good else torch.zeros(0, d)).to(torch_dtype),
    }
    meta: dict[str, str] = {"errors": json.dumps([(r, err) for r, _, err in done if err]), "shard": str(k)}
    if text and len(rows):
        reports = [x or "" for x in ds[rows.tolist()]["report"]]
        has = [i for i, r in enumerate(reports) if r.strip()]
        rep = torch.zeros(len(rows), d)
        if has:
            rep[has] = bb.encode_text([reports[i] for i in has]).float()
        sents, srow = [], []
        for r, rep_text in zip(rows.tolist(), reports, strict=True):
            for s in split_sentences(rep_text):
                sents.append(s)
                srow.append(r)
        tensors["report"] = rep.to(torch_dtype)
        tensors["has_report"] = torch.zeros(len(rows), dtype=torch.bool)
        tensors["has_report"][has] = True
        tensors["sentence"] = (bb.encode_text(sents).float() if sents else torch.zeros(0, d)).to(torch_dtype)
        tensors["sentence_row"] = torch.tensor(srow, dtype=torch.long)
        meta["sentences"] = json.dumps(sents)
    final = shard_path(out, k)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    save_file({n: t.contiguous() for n, t in tensors.items()}, tmp, metadata=meta)
    os.replace(tmp, final)


@dataclass
class Embeddings:
    """Embeddings read back from a folder, merged over shards in row order (in memory; for
    streaming with bounded memory use :func:`iter_shards`)."""

    manifest: EmbeddingsManifest
    row_ids: torch.Tensor
    image: torch.Tensor
    report: torch.Tensor | None
    has_report: torch.Tensor | None
    sentence: torch.Tensor | None
    sentence_row: torch.Tensor | None
    sentences: list[str]
    errors: list[tuple[int, str]]

    def to_dataset(self):
        """A ``datasets.Dataset`` with ``row_id``, ``image_embedding`` (and ``report_embedding``)."""
        from datasets import Dataset

        cols: dict[str, Any] = {"row_id": self.row_ids.numpy(), "image_embedding": self.image.float().numpy()}
        if self.report is not None:
            cols["report_embedding"] = self.report.float().numpy()
        return Dataset.from_dict({k: list(v) if v.ndim > 1 else v for k, v in cols.items()})


def read_manifest(folder: str | Path) -> EmbeddingsManifest:
    """The ``manifest.json`` of an embeddings folder (what it was made from), checked for its
    schema version, its keys' types and its own consistency."""
    if not EmbeddingsManifest.path_in(folder).is_file():
        raise EmbeddingCacheError(f"{folder}: no manifest.json; not an embeddings folder")
    return EmbeddingsManifest.read(folder)


def load_embeddings(
    folder: str | Path, *, expect_backbone: dict | None = None, expect_fingerprint: str | None = None
) -> Embeddings:
    """Read a complete embeddings folder; refuse incomplete or mismatched ones with a clear error."""
    folder = Path(folder)
    mpath = EmbeddingsManifest.path_in(folder)
    man = read_manifest(folder)
    if expect_backbone is not None and man.backbone.model_dump() != expect_backbone:
        raise EmbeddingCacheError(
            f"{mpath}: made with backbone {man.backbone.model_dump()}, expected {expect_backbone}"
        )
    if expect_fingerprint is not None and man.dataset.fingerprint != expect_fingerprint:
        raise EmbeddingCacheError(
            f"{mpath}: made from another dataset (fingerprint "
            f"{man.dataset.fingerprint}, expected {expect_fingerprint})"
        )
    missing = [k for k in range(man.shards) if not shard_path(folder, k).exists()]
    if missing:
        raise EmbeddingCacheError(
            f"{folder}: incomplete, {len(missing)} of {man.shards} shards missing "
            f"(first: {missing[:5]}); rerun `lanic-hub embed` to finish"
        )
    parts: dict[str, list[torch.Tensor]] = {}
    sentences: list[str] = []
    errors: list[tuple[int, str]] = []
    for k in range(man.shards):
        with safe_open(shard_path(folder, k), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                parts.setdefault(name, []).append(f.get_tensor(name))
            meta = f.metadata() or {}
        sentences += json.loads(meta.get("sentences", "[]"))
        errors += [tuple(e) for e in json.loads(meta.get("errors", "[]"))]
    cat = {n: torch.cat(v) for n, v in parts.items()}
    bad = ~torch.isfinite(cat["image"].float()).all(dim=1)
    if bad.any():
        raise EmbeddingCacheError(
            f"{folder}: non-finite image embeddings in rows {cat['row_ids'][bad][:10].tolist()}"
        )
    return Embeddings(
        man,
        cat["row_ids"],
        cat["image"],
        cat.get("report"),
        cat.get("has_report"),
        cat.get("sentence"),
        cat.get("sentence_row"),
        sentences,
        errors,
    )


_ST_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "BOOL": torch.bool,
}


def iter_shards(folder: str | Path):
    """Yield each shard's tensors memory-mapped (zero-copy views of the file), in shard order.

    For streaming over embeddings larger than memory: nothing is read until a tensor is touched.
    """
    import mmap
    import struct
    import warnings

    folder = Path(folder)
    man = read_manifest(folder)
    for k in range(man.shards):
        with open(shard_path(folder, k), "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        (n,) = struct.unpack("<Q", mm[:8])
        header = json.loads(mm[8 : 8 + n])
        header.pop("__metadata__", None)
        out = {}
        for name, info in header.items():
            lo, hi = info["data_offsets"]
            dt = _ST_DTYPES[info["dtype"]]
            count = (hi - lo) // torch.empty((), dtype=dt).element_size()
            with warnings.catch_warnings():  # read-only on purpose: the views must not be written
                warnings.simplefilter("ignore", UserWarning)
                t = (
                    torch.frombuffer(mm, dtype=dt, count=count, offset=8 + n + lo)
                    if count
                    else torch.empty(0, dtype=dt)
                )
            out[name] = t.view(info["shape"])
        yield k, out


def raw_forward_throughput(bb: Backbone, batch_size: int, n_batches: int = 10) -> float:
    """Images/s of the image tower alone on random pixels: the ceiling extraction is compared to."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, bb.image_size, bb.image_size, generator=g).to(bb.device)
    bb.encode_image(x)
    t = time.perf_counter()
    for _ in range(n_batches):
        bb.encode_image(x)
    return batch_size * n_batches / (time.perf_counter() - t)
