"""Evaluation suites: the data a model is evaluated on, embedded with the model's own backbone.

- ``phantom`` (default, offline): the phantom world of the main job (2,000 phantoms, seed 0);
  baselines train on its train split, metrics use its test split.
- ``mimic-cxr``, ``chexpert``, ``nih``: the same code on real data (``--data PATH``), using
  each dataset's own split column (official or patient-level).
- ``data``: any dataset spec (``--data hf:PATH``, ``folder:ROOT?csv=...``, ...; see
  :mod:`lanic_hub.data.open`), using its ``split`` column like the suites above.
- ``real-fixtures``: the NIH ChestX-ray14 images in ``shared/data/cxr_real`` (found as the tests
  find them: ``$LANIC_SHARED_DATA``, else beside the clone; see :mod:`lanic_hub.utils.fixtures`,
  or ``--data FOLDER``). It checks that
  the whole path runs on real radiographs (predictions, explanations, completeness); it makes no
  accuracy claims.

Embeddings are cached under ``<out>/cache/<suite>/`` per backbone and reused across models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..constants import PHANTOM_N
from ..data.schema import dataset_fingerprint
from ..errors import ConfigError, DataError
from .names import SUITE_OF_KIND, SUITES  # noqa: F401  (re-exported)
from .records import SuiteData

PHANTOM_SEED = 0


def fixtures_root(data: str | None) -> Path:
    """The NIH fixture folder of the real-fixtures suite: ``data`` if given, else
    ``cxr_real`` in the shared fixtures (:func:`lanic_hub.utils.fixtures.shared_data_dir`)."""
    from ..utils.fixtures import missing_message, shared_data_dir

    if data:
        root = Path(data).expanduser()
        if not root.is_dir():
            raise DataError(
                f"{data}: no such folder (relative to {Path.cwd()}); pass the path of shared/data/cxr_real, "
                "or leave --data out to use the fixtures beside the lanic-hub clone"
            )
    else:
        shared = shared_data_dir()
        if shared is None:
            raise DataError(
                missing_message("the NIH fixtures of the real-fixtures suite") + " or pass --data"
            )
        root = shared / "cxr_real"
    if not (root / "labels.csv").is_file():
        raise DataError(f"{root}: no labels.csv; this is not the NIH fixture folder (shared/data/cxr_real)")
    return root


def check_suite_data(name: str, data: str | None) -> None:
    """Refuse a suite's missing data before any model is loaded or any file is written."""
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose from {list(SUITES)}")
    if name == "real-fixtures":
        fixtures_root(data)
    elif name != "phantom":
        if not data:
            raise ConfigError(f"suite {name!r} needs --data PATH (where your copy of the dataset is)")
        from ..data.open import parse_spec

        kind = {v: k for k, v in SUITE_OF_KIND.items()}.get(name)
        parse_spec(data if name == "data" else f"{kind}:{data}")


def _dataset(name: str, out: Path, data: str | None, progress: bool, phantom_n: int = PHANTOM_N):
    from ..data.open import absolute_spec, open_dataset

    if name == "phantom":
        from ..data.phantom import export

        hf = out / "cache" / "phantom" / f"phantoms-{phantom_n}-{PHANTOM_SEED}" / "hf"
        if not hf.is_dir():
            export(hf.parent, phantom_n, PHANTOM_SEED, mimic=False, progress=progress)
        return f"hf:{hf.resolve()}", open_dataset(f"hf:{hf.resolve()}"), True
    if name == "real-fixtures":
        from ..data.nih import load_nih

        root = fixtures_root(data)
        ds = load_nih(
            root,
            csv=root / "labels.csv",
            images_dir=root,
            image_column="file",
            labels_column="finding_labels",
            patient_column="patient_id",
            view_column="view",
        )
        return f"nih-fixtures:{root.resolve()}", ds, False
    if not data:
        raise ConfigError(f"suite {name!r} needs --data PATH (where your copy of the dataset is)")
    kind = {v: k for k, v in SUITE_OF_KIND.items()}.get(name)
    # absolute, with an explicit kind: the spec is recorded in the embeddings' manifest and reopened
    spec = absolute_spec(data if name == "data" else f"{kind}:{data}")
    return spec, open_dataset(spec), True


def load_suite(
    name: str,
    model,
    out: str | Path,
    *,
    data: str | None = None,
    progress: bool = True,
    phantom_n: int | None = None,
    spec: str | None = None,
    embeddings: str | Path | None = None,
) -> SuiteData:
    """The suite's rows, labels and the model backbone's embeddings of them (cached).

    ``spec`` replaces the suite's dataset (the pipeline passes the data it built the model
    from); ``embeddings`` is an existing embeddings folder of that dataset, used when its manifest
    matches the dataset and the model's backbone.
    """
    from ..backbone.embed import embed_dataset, load_embeddings, read_manifest
    from ..data.schema import label_matrix

    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose from {list(SUITES)}")
    from ..smoke import phantoms

    phantom_n = phantom_n or phantoms(PHANTOM_N)
    out = Path(out)
    if spec is not None:
        from ..data.open import open_dataset

        ds, accuracy = open_dataset(spec), name != "real-fixtures"
    else:
        spec, ds, accuracy = _dataset(name, out, data, progress, phantom_n)
    bb = model.backbone
    folder = Path(embeddings) if embeddings is not None else None
    if folder is not None:
        man = read_manifest(folder)
        if man.dataset.fingerprint != dataset_fingerprint(ds) or man.backbone.model_dump() != bb.identity():
            folder = None  # made from other data or with another backbone: embed afresh
    if folder is None:
        ident = json.dumps([bb.identity(), dataset_fingerprint(ds)], sort_keys=True)
        folder = out / "cache" / name / f"emb-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"
        embed_dataset(ds, bb, folder, num_workers=0, text=False, progress=progress, data_spec=spec)
    emb = load_embeddings(folder)
    if emb.errors:
        raise DataError(f"suite {name}: {len(emb.errors)} images failed to load (first: {emb.errors[0]})")
    rows = ds.select(emb.row_ids.tolist()).remove_columns("image")
    split = np.array(rows["split"])
    if name == "real-fixtures":  # nothing is trained here: every image is evaluated
        split = np.full(len(rows), "test")
    y, mask = label_matrix(rows, policy="U-Ignore", findings=tuple(model.config.findings))
    return SuiteData(
        name=name,
        spec=spec,
        fingerprint=dataset_fingerprint(ds),
        x=emb.image.float(),
        rows=rows,
        split=split,
        y=y,
        mask=mask,
        accuracy=accuracy,
    )
