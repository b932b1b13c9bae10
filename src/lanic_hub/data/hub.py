"""Datasets in the Hub's layout: a lanic-hub dataset written as the files ``push_to_hub`` writes
(one parquet file per split under ``data/``, the images embedded, and a dataset card), and read
back from a Hub repo id or such a folder with ``datasets.load_dataset``, provenance intact.

The provenance (:class:`~lanic_hub.data.schema.DataSource`) and any generator parameters travel
in the card's YAML (``lanic_source``, ``lanic_generator``): ``Dataset.info.description``, where a
saved dataset keeps them, does not survive a Hub round trip. Only data whose licence allows
re-publishing can be written (the phantom benchmark, NIH ChestX-ray14); MIMIC-CXR and CheXpert
are refused.

    lanic-hub phantom --n 2000 --seed 0 --out runs/bench --formats hub
    lanic-hub push --dataset runs/bench/hub --repo your-name/lanic-phantom
    lanic-eval --model runs/quickstart/model --suite data --data hf:your-name/lanic-phantom
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import DataError
from .schema import DataSource, attach_source, require_redistributable, source_of

SPLITS = ("train", "validate", "test")
PROVENANCE_KEY = "lanic_source"
GENERATOR_KEY = "lanic_generator"

CARD = """# {name}

{what}

- **Licence:** {licence}
- **Splits:** {splits}, from the `split` column of the rows (patients never cross splits).
- **Columns:** `image` (the radiograph), `report` (its free-text report), the CheXpert labels
  (1 positive, 0 negative, -1 uncertain, blank not mentioned){gt}.

Research use only; not for clinical use.

```python
from datasets import load_dataset

ds = load_dataset("REPO_ID")            # a DatasetDict: {splits}
```

With lanic-hub, `hf:REPO_ID` is a dataset spec (for `lanic-eval --suite data --data hf:REPO_ID`,
`lanic-hub build`, ...): the splits are read back as one table with its `split` column, and its
provenance comes from this card's `{prov}` entry.
{generator}"""


def write_hub_layout(ds, out: str | Path, *, generator: dict[str, Any] | None = None) -> Path:
    """Write ``ds`` (a lanic-hub dataset with a ``split`` column) into ``out`` as the Hub lays a
    dataset out: ``data/<split>-00000-of-00001.parquet`` and ``README.md``. ``generator``: the
    parameters that made it (a phantom world's), kept in the card. Returns ``out``."""
    from datasets.table import embed_table_storage
    from huggingface_hub import DatasetCard, DatasetCardData

    require_redistributable(ds, "publish the dataset")
    src = source_of(ds)
    generator = json.loads(json.dumps(generator)) if generator else None  # plain YAML: no tuples
    if "split" not in ds.column_names:
        raise DataError("a dataset for the Hub needs a 'split' column (train / validate / test)")
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    split = ds.select_columns(["split"])["split"]
    present = [s for s in SPLITS if s in set(split)]
    for s in present:
        part = ds.select([i for i, x in enumerate(split) if x == s])
        # the images' bytes go into the parquet file, as push_to_hub does (no paths left behind)
        part = part.with_format("arrow").map(embed_table_storage, batched=True).with_format(None)
        part.to_parquet(str(out / "data" / f"{s}-00000-of-00001.parquet"))
    data = DatasetCardData(
        license="apache-2.0" if src.name == "phantom" else "other",
        pretty_name=f"lanic-hub {src.name} benchmark",
        task_categories=["image-classification"],
        tags=["medical-imaging", "chest-x-ray", "lanic-hub"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in present],
            }
        ],
        **{PROVENANCE_KEY: asdict(src)},
        **({GENERATOR_KEY: generator} if generator else {}),
    )
    gt = [c[3:] for c in ds.column_names if c.startswith("gt_")]
    what = (
        "Generated chest radiographs (lanic-hub's phantom world) with free-text reports, "
        "report-derived CheXpert labels and the ground truth of every factor."
        if src.name == "phantom"
        else f"{src.name}: {src.homepage}. Cite: {src.citation}"
    )
    text = CARD.format(
        name=data.pretty_name,
        what=what,
        licence=src.licence,
        splits=", ".join(f"{s} ({split.count(s)} rows)" for s in present),
        gt=f", and the ground truth `gt_<factor>` of {len(gt)} factors" if gt else "",
        prov=PROVENANCE_KEY,
        generator=(
            f"\nGenerated with these parameters (`{GENERATOR_KEY}`):\n\n```json\n"
            f"{json.dumps(generator, indent=1)}\n```\n"
            if generator
            else ""
        ),
    )
    DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{text}").save(out / "README.md")
    return out


def is_hub_layout(path: Path) -> bool:
    """Whether a folder holds a dataset in the Hub's layout (a card and parquet files)."""
    return (path / "README.md").is_file() and any(path.glob("data/*.parquet"))


def load_hub_dataset(ref: str, revision: str | None = None):
    """One ``datasets.Dataset`` (all splits, with their ``split`` column) of a Hub dataset repo id
    or a folder in its layout, with the provenance its card records attached."""
    from datasets import concatenate_datasets, load_dataset
    from huggingface_hub import DatasetCard

    try:
        # a repo id: its snapshot (downloaded, or from the Hub cache when offline), read as a folder
        folder = Path(ref) if Path(ref).is_dir() else Path(_snapshot(ref, revision))
        dd = load_dataset(str(folder))
        card = DatasetCard.load(folder / "README.md")
    except (OSError, ValueError) as exc:  # a missing repo, no network and no cache, a bad card
        raise DataError(f"hf:{ref}: cannot load it as a Hub dataset ({exc})") from exc
    meta = card.data.to_dict()
    if PROVENANCE_KEY not in meta:
        raise DataError(
            f"hf:{ref}: its card has no '{PROVENANCE_KEY}' entry, so its licence is unknown; "
            "lanic-hub reads Hub datasets it wrote (lanic-hub phantom --formats hub)"
        )
    parts = [dd[s] for s in SPLITS if s in dd] + [dd[s] for s in dd if s not in SPLITS]
    ds = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if "split" not in ds.column_names:
        raise DataError(f"hf:{ref}: the rows have no 'split' column")
    return attach_source(ds, DataSource(**meta[PROVENANCE_KEY]))


def dataset_upload_plan(folder: str | Path) -> list[str]:
    """The files of a dataset folder in the Hub's layout that :func:`push_dataset_folder` would
    upload (the card and ``data/*.parquet``; nothing else in the folder), after checking that the
    card records its provenance and that its licence allows re-publishing."""
    from huggingface_hub import DatasetCard

    from ..errors import LicenceError

    folder = Path(folder)
    if not is_hub_layout(folder):
        raise DataError(
            f"{folder}: not a dataset in the Hub's layout (README.md and data/*.parquet); "
            "write one with `lanic-hub phantom --formats hub`"
        )
    meta = DatasetCard.load(folder / "README.md").data.to_dict()
    if PROVENANCE_KEY not in meta:
        raise DataError(
            f"{folder}/README.md: the card has no '{PROVENANCE_KEY}' entry, so its licence is unknown"
        )
    try:
        src = DataSource(**meta[PROVENANCE_KEY])
    except TypeError as exc:
        raise DataError(f"{folder}/README.md: a malformed '{PROVENANCE_KEY}' entry ({exc})") from exc
    if not src.redistributable:
        raise LicenceError(
            f"{folder}: refusing to publish {src.name!r}: its licence does not allow "
            f"re-publishing ({src.licence})"
        )
    data = sorted(str(f.relative_to(folder)) for f in (folder / "data").glob("*.parquet"))
    return ["README.md", *data]


def push_dataset_folder(
    folder: str | Path, repo_id: str, *, private: bool | None = None, commit_message: str = "Upload dataset"
):
    """Upload exactly :func:`dataset_upload_plan`'s files to a Hub dataset repo (needs network);
    the checks run first, so nothing is sent when they refuse."""
    from huggingface_hub import HfApi

    files = dataset_upload_plan(folder)
    api = HfApi()
    repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    return api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=files,
        commit_message=commit_message,
    )


def _snapshot(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(
        repo_id, repo_type="dataset", revision=revision, allow_patterns=["README.md", "data/*"]
    )
