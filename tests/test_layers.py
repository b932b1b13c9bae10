"""The layering contract (pyproject.toml [tool.importlinter], docs/EXTENDING.md) holds: every
module imports only the layers below its own, and no package has an import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_layering_contract_is_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def test_a_violation_fails_the_contract(tmp_path):
    """The check is real: a config with the layers upside down is reported broken."""
    cfg = tmp_path / ".importlinter"
    cfg.write_text(
        "[importlinter]\nroot_package = lanic_hub\n\n"
        "[importlinter:contract:upside-down]\nname = upside down\ntype = layers\n"
        "layers =\n    lanic_hub.data\n    lanic_hub.cli\n"
    )
    exe = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run(
        [str(exe), "--config", str(cfg), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 1 and "BROKEN" in r.stdout, r.stdout[-2000:]
