"""Reading label tables with errors that name the file, row and column."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..errors import DataError, LabelValueError, SchemaError

_ALLOWED = "1, 0, -1 or blank"


def read_table(path: str | Path, required: Iterable[str], sep: str = ",") -> pd.DataFrame:
    """Read a CSV (optionally .gz) as strings, checking that ``required`` columns exist."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV table ({exc})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the table is empty") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(path, missing, list(df.columns))
    return df


def parse_label(value: str, path: str | Path, row: int, column: str) -> float | None:
    """A CheXpert-style cell: '1', '1.0', '0', '-1', '' -> 1.0, 0.0, -1.0, None."""
    v = value.strip() if isinstance(value, str) else value
    if v in ("", None) or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise LabelValueError(path, row, column, value, _ALLOWED) from None
    if f not in (1.0, 0.0, -1.0):
        raise LabelValueError(path, row, column, value, _ALLOWED)
    return f


def patient_split(
    patient_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), salt: str = "lanic"
) -> str:
    """A deterministic patient-level split from a hash of the id (no RNG state, any order)."""
    import hashlib

    h = int.from_bytes(hashlib.sha256(f"{salt}:{patient_id}".encode()).digest()[:8], "big")
    u = h / 2**64
    if u < fractions[0]:
        return "train"
    return "validate" if u < fractions[0] + fractions[1] else "test"


def records(df: pd.DataFrame, desc: str):
    """``(csv_row_number, row_dict)`` pairs with a progress bar; row numbers count the header as 1."""
    from ..utils.progress import tqdm

    for i, r in enumerate(tqdm(df.to_dict("records"), desc=desc, unit="row", disable=None, leave=False)):
        yield i + 2, r
