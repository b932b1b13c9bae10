"""`lanic-hub space`: the generated Space folder starts from a repo id in an (offline) Hub cache,
trains nothing, answers an explain call through gradio_client and serves the gallery thumbnails
from the cache's blobs; bad requests get clear errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from lanic_hub.errors import ConfigError, LicenceError
from lanic_hub.space import write_space
from lanic_hub.utils.hfcache import put_in_hf_cache

REPO = "someone-new/cxr-lanic-space"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cache(tiny_lanic_model, tmp_path_factory):
    hf = tmp_path_factory.mktemp("hf")
    put_in_hf_cache(tiny_lanic_model, REPO, hf / "hub")
    return hf


def test_the_folder_installs_lanic_hub_from_one_source_and_preloads_the_model(cache, tmp_path):
    out = write_space(
        REPO,
        tmp_path / "space",
        source="lanic-hub @ git+https://example.org/lanic-hub@v0.1.0",
        cache_dir=str(cache / "hub"),
    )
    readme = (out / "README.md").read_text()
    import gradio

    assert readme.startswith("---\ntitle: CXR-LanIC\n") and f"sdk_version: {gradio.__version__}" in readme
    assert f"preload_from_hub:\n  - {REPO}\n" in readme and f"models:\n  - {REPO}\n" in readme
    assert "Not a medical device" in readme and "license: apache-2.0" in readme  # phantom data
    reqs = [ln for ln in (out / "requirements.txt").read_text().splitlines() if not ln.startswith("#")]
    assert reqs == ["lanic-hub @ git+https://example.org/lanic-hub@v0.1.0"]
    app = (out / "app.py").read_text()
    assert repr(REPO) in app and "run_pipeline" not in app
    compile(app, "app.py", "exec")
    wheel = tmp_path / "lanic_hub-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")  # only copied and named here; installing it is pip's business
    out2 = write_space(REPO, tmp_path / "space2", wheel=wheel, cache_dir=str(cache / "hub"))
    assert (out2 / wheel.name).read_bytes() == b"PK"
    assert (out2 / "requirements.txt").read_text().splitlines()[-1] == f"./{wheel.name}"


def test_bad_requests_are_refused_before_writing(cache, tiny_lanic_model, tmp_path):
    with pytest.raises(ConfigError, match="repo id"):
        write_space(str(tiny_lanic_model), tmp_path / "a", source="lanic-hub")
    with pytest.raises(ConfigError, match="once"):
        write_space(REPO, tmp_path / "b", cache_dir=str(cache / "hub"))
    with pytest.raises(ConfigError, match="not a lanic-hub wheel"):
        write_space(REPO, tmp_path / "c", wheel=tmp_path / "nothing.whl", cache_dir=str(cache / "hub"))
    import json
    import shutil

    from lanic_hub.modeling import REMOTE_CODE  # noqa: F401  (the folder is a full model folder)

    restricted = tmp_path / "restricted"
    shutil.copytree(tiny_lanic_model, restricted)
    doc = json.loads((restricted / "patterns.json").read_text())
    doc["meta"]["data_source"] = {"name": "mimic-cxr-jpg", "redistributable": False}
    (restricted / "patterns.json").write_text(json.dumps(doc))
    put_in_hf_cache(restricted, "someone-new/restricted", cache / "hub")
    with pytest.raises(LicenceError, match="thumbnails"):
        write_space(
            "someone-new/restricted", tmp_path / "d", source="lanic-hub", cache_dir=str(cache / "hub")
        )
    assert not any((tmp_path / x).exists() for x in "abcd")


def test_the_space_starts_from_the_cache_and_explains_with_thumbnails(cache, tmp_path, tiny_lanic_model):
    import httpx
    from gradio_client import Client, handle_file

    out = write_space(REPO, tmp_path / "space", source="lanic-hub", cache_dir=str(cache / "hub"))
    port = _free_port()
    env = {
        **os.environ,
        "HF_HOME": str(cache),
        "HF_HUB_OFFLINE": "1",
        "LANIC_HUB_CACHE": str(tmp_path / "c"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "LANIC_NIH_EXAMPLES": str(tmp_path / "none"),  # only what the model carries
    }
    env.pop("LANIC_MODEL", None)
    log = open(tmp_path / "space.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        t0 = time.time()
        while time.time() - t0 < 180:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "space.log").read_text()[-3000:]
            time.sleep(1)
        else:
            pytest.fail("the Space did not start in 180 s: " + (tmp_path / "space.log").read_text()[-3000:])
        c = Client(url, verbose=False)
        image = str(next((tiny_lanic_model / "examples").glob("*.png")))  # a phantom the model carries
        res = c.predict(handle_file(image), "Cardiomegaly", api_name="/explain")
        cards = next(x for x in res if isinstance(x, str) and "<img src=" in x)
        src = cards.split('<img src="', 1)[1].split('"', 1)[0]
        r = httpx.get(url.rstrip("/") + src, timeout=10)
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        # the model carries its own examples: the page offers them with nothing else configured
        page = httpx.get(url, timeout=10).text
        assert "phantoms with ground truth" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "space.log").read_text()
    assert "quickstart" not in text.lower()  # nothing was built at start-up
