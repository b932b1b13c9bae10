"""Where the real test fixtures are: the ``shared/data`` folder (NIH ChestX-ray14 images with
labels, a real chest DICOM, a MIMIC-CXR-JPG layout fixture; see its ``SOURCES.md``).

``$LANIC_SHARED_DATA`` names it; otherwise it is looked for beside the lanic-hub source checkout
(``<clone>/../shared/data``), then beside the working directory (``../shared/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "LANIC_SHARED_DATA"


def _checkout() -> Path | None:
    """The source checkout this package runs from (an editable install), if it is one."""
    repo = Path(__file__).resolve().parents[3]
    return repo if (repo / "pyproject.toml").is_file() and (repo / "src" / "lanic_hub").is_dir() else None


def candidates() -> list[Path]:
    """Where the fixtures are looked for, in order."""
    if os.environ.get(ENV):
        return [Path(os.environ[ENV]).expanduser()]
    out = []
    repo = _checkout()
    if repo is not None:
        out.append(repo.parent / "shared" / "data")
    out.append(Path.cwd().parent / "shared" / "data")
    return out


def shared_data_dir() -> Path | None:
    """The fixtures folder, or None when it is nowhere to be found (see :func:`candidates`)."""
    for c in candidates():
        if c.is_dir():
            return c.resolve()
    return None


def missing_message(what: str = "the real fixtures (shared/data)") -> str:
    """What to tell a user when the fixtures are not found."""
    looked = ", ".join(str(c) for c in candidates())
    return f"{what} not found (looked in {looked}); set {ENV}=/path/to/shared/data"
