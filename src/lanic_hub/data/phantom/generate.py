"""Generate phantom studies and export them as a ``datasets.Dataset`` and in the MIMIC-CXR-JPG layout."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...constants import CHEXPERT_LABELS
from ...utils.io import replace_dir
from ...utils.progress import tqdm
from ...utils.system import cap_workers
from ..schema import PHANTOM, attach_source, features
from .case import Case
from .config import SPLITS, PhantomConfig
from .render import render
from .report import label_report, reported_states, write_report
from .sampling import sample_case


@dataclass(frozen=True)
class StudyPlan:
    """Identifiers of one image, fixed before anything is drawn."""

    index: int
    subject_id: str
    study_id: str
    dicom_id: str
    split: str


@dataclass
class PhantomStudy:
    """One generated image with its truth, report and report-derived labels."""

    plan: StudyPlan
    case: Case
    image: np.ndarray  # (size, size) uint8
    report: str
    labels: dict[str, float | None]

    def row(self, image_bytes: bytes | None = None) -> dict[str, Any]:
        """The common-schema row (plus gt_* columns)."""
        p = self.plan
        return {
            "image": {"path": f"{p.dicom_id}.png", "bytes": image_bytes or png_bytes(self.image)},
            "image_id": p.dicom_id,
            "patient_id": p.subject_id,
            "study_id": p.study_id,
            "view": self.case.view,
            "split": p.split,
            "report": self.report,
            **self.labels,
            **self.case.ground_truth(),
        }


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def plan_studies(n: int, seed: int, cfg: PhantomConfig) -> list[StudyPlan]:
    """Patients with 1..k studies each, split by patient, ids in MIMIC's formats."""
    rng = np.random.default_rng((seed, 0x5EED))
    plans: list[StudyPlan] = []
    patient = 0
    lo, hi = cfg.studies_per_patient
    while len(plans) < n:
        subject = str(10_000_000 + patient * 37 + int(rng.integers(0, 37)))
        split = SPLITS[int(rng.choice(3, p=np.asarray(cfg.split_fractions)))]
        for _ in range(int(rng.integers(lo, hi + 1))):
            if len(plans) == n:
                break
            i = len(plans)
            study = str(50_000_000 + i * 41 + int(rng.integers(0, 41)))
            dicom = "-".join(f"{int(v):08x}" for v in rng.integers(0, 2**32, 4, dtype=np.uint64))
            plans.append(StudyPlan(i, subject, study, dicom, split))
        patient += 1
    return plans


def make_study(plan: StudyPlan, seed: int, cfg: PhantomConfig) -> PhantomStudy:
    """Everything about one image, deterministic in ``(seed, plan.index)``."""
    case = sample_case(cfg, np.random.default_rng((seed, plan.index, 1)), plan.split)
    image = render(case, cfg.image_size, seed, plan.index, cfg.image_noise)
    rr = np.random.default_rng((seed, plan.index, 2))
    states = reported_states(case, cfg, rr)
    report = write_report(case, states, rr)
    return PhantomStudy(plan, case, image, report, label_report(report))


def _work(args: tuple[StudyPlan, int, dict]) -> PhantomStudy:
    plan, seed, cfg = args
    return make_study(plan, seed, PhantomConfig.from_dict(cfg))


def generate(
    n: int, seed: int = 0, cfg: PhantomConfig | None = None, *, num_proc: int = 1, progress: bool = True
) -> Iterator[PhantomStudy]:
    """Yield ``n`` phantom studies in index order (the same for any ``num_proc``)."""
    cfg = cfg or PhantomConfig()
    plans = plan_studies(n, seed, cfg)
    bar = tqdm(total=n, desc="phantoms", unit="img", disable=not progress)
    num_proc = cap_workers(num_proc, "phantoms")
    if num_proc <= 1:
        for p in plans:
            yield make_study(p, seed, cfg)
            bar.update()
    else:
        d = cfg.to_dict()
        with get_context("spawn" if os.name == "nt" else "fork").Pool(num_proc) as pool:
            for st in pool.imap(_work, [(p, seed, d) for p in plans], chunksize=16):
                yield st
                bar.update()
    bar.close()


def gt_features(example: PhantomStudy) -> dict[str, Any]:
    from datasets import Value

    out = {}
    for k, v in example.case.ground_truth().items():
        out[k] = (
            Value("bool")
            if isinstance(v, bool)
            else Value("int64")
            if isinstance(v, int)
            else Value("float32")
            if isinstance(v, float)
            else Value("string")
        )
    return out


def _csv_gz(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def export(
    out: str | Path,
    n: int,
    seed: int = 0,
    cfg: PhantomConfig | None = None,
    *,
    num_proc: int = 1,
    hf: bool = True,
    mimic: bool = True,
    progress: bool = True,
    studies: list[PhantomStudy] | None = None,
    hub: bool = False,
) -> dict[str, Path]:
    """Generate ``n`` phantoms once and write them as ``out/hf`` (``datasets.save_to_disk``) and
    ``out/mimic-cxr-jpg`` (MIMIC-CXR-JPG layout with CSVs and reports), and with ``hub`` as
    ``out/hub`` (the Hub's dataset layout: parquet per split and a card with the generator's
    parameters, :mod:`lanic_hub.data.hub`). Returns the paths.

    Each output is written to a temporary folder and renamed into place when complete, so an
    interrupted run never leaves a half-written dataset behind.
    """
    from datasets import Dataset

    cfg = cfg or PhantomConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp_mimic, tmp_hf = out / ".mimic-cxr-jpg.tmp", out / ".hf.tmp"
    for t in (tmp_mimic, tmp_hf):
        shutil.rmtree(t, ignore_errors=True)
    label_rows, split_rows, meta_rows, gt_rows = [], [], [], []
    rows: list[dict[str, Any]] = []
    feats = None
    gt_header: list[str] = []
    source = studies if studies is not None else generate(n, seed, cfg, num_proc=num_proc, progress=progress)
    for st in source:
        p = st.plan
        if mimic:
            sdir = tmp_mimic / "files" / f"p{p.subject_id[:2]}" / f"p{p.subject_id}" / f"s{p.study_id}"
            sdir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(st.image).save(sdir / f"{p.dicom_id}.jpg", quality=95)
            sdir.with_suffix(".txt").write_text(st.report + "\n")
            label_rows.append([p.subject_id, p.study_id] + [_fmt(st.labels[c]) for c in CHEXPERT_LABELS])
            split_rows.append([p.dicom_id, p.study_id, p.subject_id, p.split])
            view_desc = "antero-posterior" if st.case.view == "AP" else "postero-anterior"
            meta_rows.append(
                [
                    p.dicom_id,
                    p.subject_id,
                    p.study_id,
                    "CHEST (PORTABLE AP)" if st.case.view == "AP" else "CHEST (PA AND LAT)",
                    st.case.view,
                    cfg.image_size,
                    cfg.image_size,
                    21000101 + p.index % 28,
                    "120000.000",
                    "CHEST (PA AND LAT)",
                    view_desc,
                    "Erect",
                ]
            )
            gt = st.case.ground_truth()
            gt_header = gt_header or list(gt)
            gt_rows.append([p.dicom_id, *gt.values()])
        if hf or hub:
            feats = feats or features(gt_features(st))
            rows.append(st.row())
    paths: dict[str, Path] = {}
    if mimic:
        _csv_gz(
            tmp_mimic / "mimic-cxr-2.0.0-chexpert.csv.gz",
            ["subject_id", "study_id", *CHEXPERT_LABELS],
            sorted(label_rows, key=lambda r: (r[0], r[1])),
        )
        _csv_gz(
            tmp_mimic / "mimic-cxr-2.0.0-split.csv.gz",
            ["dicom_id", "study_id", "subject_id", "split"],
            split_rows,
        )
        _csv_gz(
            tmp_mimic / "mimic-cxr-2.0.0-metadata.csv.gz",
            [
                "dicom_id",
                "subject_id",
                "study_id",
                "PerformedProcedureStepDescription",
                "ViewPosition",
                "Rows",
                "Columns",
                "StudyDate",
                "StudyTime",
                "ProcedureCodeSequence_CodeMeaning",
                "ViewCodeSequence_CodeMeaning",
                "PatientOrientationCodeSequence_CodeMeaning",
            ],
            meta_rows,
        )
        _csv_gz(tmp_mimic / "phantom-ground-truth.csv.gz", ["dicom_id", *gt_header], gt_rows)
        (tmp_mimic / "phantom-config.json").write_text(
            json.dumps({"seed": seed, "n": n, **cfg.to_dict()}, indent=1)
        )
        paths["mimic"] = replace_dir(tmp_mimic, out / "mimic-cxr-jpg")
    if hf or hub:
        cols = {k: [r[k] for r in rows] for k in feats}
        ds = attach_source(Dataset.from_dict(cols, features=feats), PHANTOM)
    if hf:
        ds.save_to_disk(str(tmp_hf))
        paths["hf"] = replace_dir(tmp_hf, out / "hf")
    if hub:
        from ..hub import write_hub_layout

        tmp_hub = out / ".hub.tmp"
        shutil.rmtree(tmp_hub, ignore_errors=True)
        write_hub_layout(
            ds, tmp_hub, generator={"generator": "lanic-hub phantom", "seed": seed, "n": n, **cfg.to_dict()}
        )
        paths["hub"] = replace_dir(tmp_hub, out / "hub")
    return paths


def load_phantom_dataset(path: str | Path):
    """Read back ``out/hf`` written by :func:`export`."""
    from datasets import load_from_disk

    return load_from_disk(str(path))
