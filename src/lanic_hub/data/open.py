"""Open any supported dataset from one string, for the command line and configs."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

KINDS = ("hf", "mimic", "chexpert", "nih")


def open_dataset(spec: str):
    """``hf:PATH`` (a saved ``datasets.Dataset``, e.g. ``lanic-hub phantom``'s ``hf/``),
    ``mimic:PATH[?reports=DIR]`` (the free-text reports live in the separate MIMIC-CXR package;
    by default they are looked for under PATH), ``chexpert:PATH``, ``nih:PATH``; a bare PATH is
    recognised by its contents."""
    spec, _, query = spec.partition("?")
    opts = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
    kind, sep, path = spec.partition(":")
    if not sep or kind not in KINDS:
        kind, path = _guess(Path(spec)), spec
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset path not found: {p}")
    if kind == "hf":
        from datasets import load_from_disk

        return load_from_disk(str(p))
    if kind == "mimic":
        from .mimic import load_mimic_cxr

        reports = Path(opts["reports"]) if "reports" in opts else p
        if not reports.is_dir():
            raise DataError(f"MIMIC-CXR reports folder not found: {reports}")
        return load_mimic_cxr(p, reports_dir=reports if any(reports.glob("files/*/*/*.txt")) else None)
    if kind == "chexpert":
        from .chexpert import load_chexpert

        return load_chexpert(p)
    from .nih import load_nih

    return load_nih(p)


def _guess(p: Path) -> str:
    if (p / "dataset_info.json").is_file() or (p / "state.json").is_file():
        return "hf"
    if any(p.glob("mimic-cxr-2.0.0-*.csv*")):
        return "mimic"
    if (p / "train.csv").is_file() or (p / "valid.csv").is_file():
        return "chexpert"
    if any(p.glob("Data_Entry_2017*.csv*")):
        return "nih"
    raise DataError(f"{p}: cannot tell which dataset this is; prefix it with one of {KINDS}, e.g. mimic:{p}")
