"""Open any supported dataset from one string, for the command line and configs.

hf:PATH                       a saved ``datasets.Dataset`` (e.g. ``lanic-hub phantom``'s ``hf/``), or
                              a folder in the Hub's dataset layout (``lanic-hub phantom``'s ``hub/``)
hf:OWNER/NAME                 a Hub dataset repo written by lanic-hub (from the Hub, or the local
                              cache when offline), read with ``datasets.load_dataset``
mimic:PATH[?reports=DIR]      MIMIC-CXR-JPG (reports: the separate MIMIC-CXR reports package;
                              by default looked for under PATH)
chexpert:PATH                 CheXpert (train.csv / valid.csv)
nih:PATH                      NIH ChestX-ray14 (Data_Entry_2017*.csv)
folder:ROOT[?csv=FILE&image=COL&patient=COL&split=COL&report=COL&labels=COL:OBS,COL:OBS&fractions=TR,VA,TE]
                              images under ROOT listed in a CSV (default ROOT/labels.csv; a
                              relative FILE is relative to ROOT); label columns: the CSV columns
                              named as CheXpert observations (1 / 0 / -1 / blank), plus the
                              ``labels`` pairs (which add columns under other names); without a
                              split column the split is drawn per patient with ``fractions``
                              (default 0.8,0.1,0.1)
PATH                          recognised by its contents (hf, mimic, chexpert or nih)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

KINDS = ("hf", "mimic", "chexpert", "nih", "folder")
#: The ``?key=value`` options each kind takes.
OPTIONS = {
    "mimic": ("reports",),
    "folder": ("csv", "image", "patient", "split", "report", "labels", "fractions"),
}


def hub_repo_id(spec: str) -> str | None:
    """The repo id of an ``hf:OWNER/NAME`` spec that names no local path, else None."""
    import re

    body = spec.partition("?")[0]
    if not body.startswith("hf:"):
        return None
    ref = body[3:]
    if Path(ref).exists() or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", ref):
        return None
    return ref


def parse_spec(spec: str) -> tuple[str, Path, dict[str, str]]:
    """(kind, path, options) of a dataset spec; a clear error for a missing path, an unknown
    option or an option that is not KEY=VALUE."""
    body, _, query = spec.partition("?")
    opts: dict[str, str] = {}
    for kv in filter(None, query.split("&")):
        key, eq, value = kv.partition("=")
        if not eq:
            raise DataError(f"dataset spec {spec!r}: option {kv!r} is not KEY=VALUE")
        opts[key] = value
    kind, sep, path = body.partition(":")
    if not sep or kind not in KINDS:
        kind, path = "", body
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset path not found: {p}")
    kind = kind or _guess(p)
    unknown = sorted(set(opts) - set(OPTIONS.get(kind, ())))
    if unknown:
        allowed = ", ".join(OPTIONS.get(kind, ())) or "none"
        raise DataError(
            f"dataset spec {spec!r}: unknown option(s) {unknown} for {kind}: (allowed: {allowed})"
        )
    return kind, p, opts


def absolute_spec(spec: str) -> str:
    """The same spec with absolute paths, so that later stages find the data from any folder."""
    if hub_repo_id(spec):
        return spec
    kind, p, opts = parse_spec(spec)
    if "reports" in opts:
        opts["reports"] = str(Path(opts["reports"]).resolve())
    query = "&".join(f"{k}={v}" for k, v in opts.items())
    return f"{kind}:{p.resolve()}" + (f"?{query}" if query else "")


def open_dataset(spec: str):
    """The ``datasets.Dataset`` a spec names (see the module docstring for the forms)."""
    from .hub import is_hub_layout, load_hub_dataset

    repo = hub_repo_id(spec)
    if repo is not None:
        return load_hub_dataset(repo)
    kind, p, opts = parse_spec(spec)
    if kind == "hf":
        if is_hub_layout(p):
            return load_hub_dataset(str(p))
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
    if kind == "folder":
        return _open_folder(spec, p, opts)
    from .nih import load_nih

    return load_nih(p)


def _open_folder(spec: str, root: Path, opts: dict[str, str]):
    from .folder import load_folder

    csv = Path(opts.get("csv", "labels.csv"))
    csv = csv if csv.is_absolute() else root / csv
    if not csv.is_file():
        raise DataError(f"{csv}: labels CSV not found (a folder dataset lists its images in one: ?csv=FILE)")
    labels = None
    if "labels" in opts:
        labels = {}
        for pair in opts["labels"].split(","):
            col, sep, obs = pair.partition(":")
            if not sep:
                raise DataError(
                    f"dataset spec {spec!r}: labels are COLUMN:OBSERVATION pairs separated by commas, "
                    f"got {pair!r}"
                )
            labels[col.strip()] = obs.strip()
    fractions = (0.8, 0.1, 0.1)
    if "fractions" in opts:
        try:
            fractions = tuple(float(x) for x in opts["fractions"].split(","))
        except ValueError:
            fractions = ()
        if len(fractions) != 3:
            raise DataError(
                f"dataset spec {spec!r}: fractions are three numbers TRAIN,VALIDATE,TEST, e.g. 0.6,0.2,0.2"
            )
    return load_folder(
        root,
        csv,
        split_fractions=fractions,
        image_column=opts.get("image", "path"),
        label_columns=labels,
        patient_column=opts.get("patient"),
        split_column=opts.get("split"),
        report_column=opts.get("report"),
    )


def _guess(p: Path) -> str:
    from .hub import is_hub_layout

    if (p / "dataset_info.json").is_file() or (p / "state.json").is_file() or is_hub_layout(p):
        return "hf"
    if any(p.glob("mimic-cxr-2.0.0-*.csv*")):
        return "mimic"
    if (p / "train.csv").is_file() or (p / "valid.csv").is_file():
        return "chexpert"
    if any(p.glob("Data_Entry_2017*.csv*")):
        return "nih"
    raise DataError(
        f"{p}: cannot tell which dataset this is; prefix it with one of {KINDS}, e.g. mimic:{p} "
        f"(an image folder with a labels CSV: folder:{p}?csv=labels.csv)"
    )
