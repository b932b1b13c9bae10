"""The README's commands run as written, in order, in a fresh copy of the repository.

Every fenced ``bash`` and ``python`` block of README.md runs, one command line (or one Python
block) at a time, unless the line before the block says why not::

    <!-- readme-test: skip (the reason) -->      not run, with its reason
    <!-- readme-test: setup -->                  a set-up command: the venv and pip steps are CI's
                                                 (.ci/run); the command after them runs here

The slow ones run at a reduced size through the documented ``LANIC_HUB_SMOKE=1``
(:mod:`lanic_hub.smoke`), with their own cache (``LANIC_HUB_CACHE``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<tag>[^>]*?) -->\n)?```(?P<lang>bash|python)\n(?P<body>.*?)```", re.S
)
SETUP = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -e (\S+) && \.venv/bin/(?P<cmd>.+)$")


def blocks() -> list[tuple[str | None, str, str]]:
    return [(m["tag"], m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text())]


def test_every_block_runs_or_says_why_not():
    found = blocks()
    assert len(found) >= 10
    for tag, _lang, body in found:
        assert tag is None or tag == "setup" or re.fullmatch(r"skip \(.{10,}\)", tag), (tag, body)
        if tag == "setup":
            assert SETUP.match(body.strip()), body
    # the two set-up commands, exactly: the main job, and the whole test suite (what CI runs)
    setups = [SETUP.match(b.strip())["cmd"] for t, _, b in found if t == "setup"]
    assert setups == ["lanic-hub quickstart --out runs/quickstart", "python -m pytest -q"]
    ci = (REPO / ".ci" / "run").read_text().replace("pip install -q ", "pip install ")  # CI is quieter
    assert next(b.strip() for t, _, b in found if t == "setup" and "pytest" in b) in ci


def _fresh_copy(dst: Path) -> Path:
    """The files a fresh clone has (tracked, plus new files git does not ignore)."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is needed to list the repository's files")
    for n in names:
        src = REPO / n
        if src.is_file():
            (dst / n).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / n)
    return dst


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path):
    from lanic_hub.utils.fixtures import shared_data_dir

    clone = _fresh_copy(tmp_path / "clone")
    env = {
        **os.environ,
        "LANIC_HUB_SMOKE": "1",
        "LANIC_HUB_CACHE": str(tmp_path / "cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LANIC_PROGRESS_SECONDS": "600",
    }
    shared = shared_data_dir()
    if shared is not None:
        env["LANIC_SHARED_DATA"] = str(shared)  # the copy is not beside ../shared
    ran = []
    for tag, lang, body in blocks():
        if tag is not None and tag.startswith("skip"):
            continue
        if tag == "setup":
            cmd = SETUP.match(body.strip())["cmd"]
            if "pytest" in cmd:  # the test suite itself, which is running this test
                continue
            lines = [cmd]
        elif lang == "bash":
            lines = [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        else:
            script = tmp_path / f"block_{len(ran)}.py"
            script.write_text(body)
            lines = [f"{sys.executable} {script}"]
        for line in lines:
            if "real-fixtures" in line and shared is None:
                # without the fixtures the command must say what is missing, not crash
                r = subprocess.run(line, shell=True, cwd=clone, env=env, capture_output=True, text=True)
                assert r.returncode == 2 and "LANIC_SHARED_DATA" in r.stderr, r.stderr[-2000:]
                continue
            t = time.perf_counter()
            r = subprocess.run(
                ["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True, timeout=900
            )
            print(f"{time.perf_counter() - t:6.1f} s  {line[:100]}")  # shown with -s or on failure
            assert r.returncode == 0, f"README command failed: {line}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            ran.append(line)
    assert any("quickstart" in x for x in ran) and any("explain" in x for x in ran)
    assert (clone / "runs" / "quickstart" / "model" / "README.md").is_file()
