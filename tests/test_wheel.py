"""The built wheel, taken into a fresh environment: it carries every resource the package reads
(configs, vocabulary, card template, remote-code file, results schema) and the version floors, its
console scripts answer, and a model is used from a repo id in an offline Hub cache through
transformers alone. The test environment's own packages stand in for the heavy dependencies
(torch, transformers, ...): the fresh environment sees them through a .pth file, but lanic_hub
only from the wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from lanic_hub.utils.hfcache import put_in_hf_cache

from .hub_env import explain_through_the_space, offline_hub_env, run_json, running_space

ROOT = Path(__file__).resolve().parents[1]
REPO = "someone-new/cxr-lanic-from-a-wheel"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel, as `python -m build` makes them (with this environment's
    setuptools: no network)."""
    import shutil

    out = tmp_path_factory.mktemp("dist")
    # from a clean copy of the source: setuptools would package stale files left in ./build
    src = tmp_path_factory.mktemp("src") / "lanic-hub"
    skip = (".venv", "runs", "build", "dist", "*.egg-info", ".git", "__pycache__", ".pytest_cache")
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(*skip, ".ruff_cache", ".hypothesis", "test-screenshots")
    )
    r = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "deprecated" not in r.stdout + r.stderr  # e.g. a license table instead of an SPDX string
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    return next(dist.glob("lanic_hub-*.whl"))


def test_twine_accepts_the_sdist_and_the_wheel(dist):
    files = sorted(str(p) for p in dist.iterdir())
    assert [Path(f).name for f in files] == ["lanic_hub-0.1.0-py3-none-any.whl", "lanic_hub-0.1.0.tar.gz"]
    r = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.count("PASSED") == 2, r.stdout + r.stderr


def test_the_wheel_carries_its_resources_and_floors(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for needed in (
        "lanic_hub/resources/remote/lanic_remote.py",
        "lanic_hub/resources/schemas/results-1.schema.json",
        "lanic_hub/resources/configs/mimic-cxr-biomedclip.yaml",
        "lanic_hub/resources/vocabulary.tsv",
        "lanic_hub/resources/model_card.md",
        "lanic_hub/py.typed",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "benchmarks/", "eval/")) for n in names)
    lic = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    with zipfile.ZipFile(wheel) as z:
        text = z.read(lic).decode()
    assert (
        "Apache License" in text
        and "Version 2.0, January 2004" in text
        and "License-Expression: Apache-2.0" in meta
    )
    for floor in ("transformers>=5.0", "gradio>=6.0", "sentence-transformers>=5.2", "huggingface_hub>=1.3"):
        assert f"Requires-Dist: {floor}" in meta, floor


@pytest.fixture(scope="module")
def fresh(wheel, tiny_lanic_model, tmp_path_factory) -> dict:
    """A new venv holding lanic_hub from the wheel only, and an offline Hub cache with the tiny
    model under a repo id it never saw."""
    tmp = tmp_path_factory.mktemp("fresh")
    env_dir = tmp / "venv"
    # its own pip (ensurepip's bundled copy, offline): a --prefix install from this environment's
    # pip would uninstall this environment's lanic-hub first
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    py = env_dir / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the heavy dependencies from the test environment; lanic_hub itself only from the wheel
    (Path(site) / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    hf = tmp / "hf"
    put_in_hf_cache(tiny_lanic_model, REPO, hf / "hub")
    return {"dir": env_dir, "py": py, "hf": hf, "env": offline_hub_env(hf, tmp, fresh=True)}


def test_a_fresh_environment_with_the_wheel_uses_a_model_from_a_repo_id(fresh, tmp_path):
    from lanic_hub.data.images import load_image
    from lanic_hub.data.open import open_dataset
    from lanic_hub.data.phantom import export

    ph = export(tmp_path / "ph", 2, seed=12, mimic=False, progress=False)["hf"]
    image = tmp_path / "img.png"
    load_image(open_dataset(f"hf:{ph}")[0]["image"]).save(image)
    helped = subprocess.run(
        [str(fresh["dir"] / "bin" / "lanic-hub"), "--help"],
        capture_output=True,
        text=True,
        env=fresh["env"],
        timeout=120,
    )
    assert helped.returncode == 0 and "push" in helped.stdout and "space" in helped.stdout
    code = (
        "import json, sys\n"
        "from transformers import AutoModel, pipeline\n"
        f"out = pipeline('image-classification', model={REPO!r}, trust_remote_code=True)({str(image)!r})\n"
        f"d = AutoModel.from_pretrained({REPO!r}, trust_remote_code=True).explain({str(image)!r}).to_dict()\n"
        "gap = max(abs(f['bias'] + sum(c['contribution'] for c in f['concepts']) + f['error'] - f['logit'])"
        " for f in d['findings'])\n"
        "import lanic_hub\n"
        "print(json.dumps({'labels': [o['label'] for o in out], 'gap': gap, 'from': lanic_hub.__file__}))\n"
    )
    res = run_json(code, fresh["env"], python=fresh["py"])
    assert len(res["labels"]) == 5 and res["gap"] < 1e-4
    assert res["from"].startswith(str(fresh["dir"]))  # the wheel's copy, not the source tree's


def test_the_space_the_wheel_writes_starts_in_that_environment(fresh, wheel, tiny_lanic_model, tmp_path):
    """`lanic-hub space` from the wheel's console script, with the wheel itself as the source; the
    folder's app, run by the fresh environment's Python, explains through gradio_client with
    thumbnails from the cache, and its lanic_hub is the wheel's."""
    import httpx

    out = tmp_path / "space"
    wrote = subprocess.run(
        [
            str(fresh["dir"] / "bin" / "lanic-hub"),
            "space",
            "--model",
            REPO,
            "--out",
            str(out),
            "--wheel",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        env=fresh["env"],
        timeout=300,
    )
    assert wrote.returncode == 0, wrote.stderr[-3000:]
    assert (out / wheel.name).is_file() and f"./{wheel.name}" in (out / "requirements.txt").read_text()
    env = {**fresh["env"], "LANIC_NIH_EXAMPLES": str(tmp_path / "none")}
    with running_space(out, env, tmp_path / "space.log", python=fresh["py"]) as url:
        image = str(next((tiny_lanic_model / "examples").glob("*.png")))
        assert explain_through_the_space(url, image)[:8] == b"\x89PNG\r\n\x1a\n"
        assert "phantoms with ground truth" in httpx.get(url, timeout=10).text
    log = (tmp_path / "space.log").read_text()
    assert "quickstart" not in log.lower()  # nothing was built at start-up
