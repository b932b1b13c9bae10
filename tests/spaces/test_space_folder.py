"""`lanic-hub space`: the generated Space folder starts from a repo id in an (offline) Hub cache,
trains nothing, answers an explain call through gradio_client and serves the gallery thumbnails
from the cache's blobs; bad requests get clear errors."""

from __future__ import annotations

import pytest

from lanic_hub.errors import ConfigError, LicenceError
from lanic_hub.space import write_space
from lanic_hub.utils.hfcache import put_in_hf_cache

from ..hub_env import explain_through_the_space, offline_hub_env, running_space

REPO = "someone-new/cxr-lanic-space"


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

    out = write_space(REPO, tmp_path / "space", source="lanic-hub", cache_dir=str(cache / "hub"))
    # only what the model carries: no NIH examples
    env = offline_hub_env(cache, tmp_path, LANIC_NIH_EXAMPLES=str(tmp_path / "none"))
    with running_space(out, env, tmp_path / "space.log") as url:
        image = str(next((tiny_lanic_model / "examples").glob("*.png")))  # a phantom the model carries
        assert explain_through_the_space(url, image)[:8] == b"\x89PNG\r\n\x1a\n"
        # the model carries its own examples: the page offers them with nothing else configured
        assert "phantoms with ground truth" in httpx.get(url, timeout=10).text
    text = (tmp_path / "space.log").read_text()
    assert "quickstart" not in text.lower()  # nothing was built at start-up
