"""``lanic-hub space``: a Hugging Face Space folder that builds from what is pushed.

The folder holds ``app.py`` (the demo, loading the model by its repo id: nothing is trained at
start-up), ``README.md`` (the Spaces header, with ``preload_from_hub`` so the model is in the
Space's cache before the app starts) and ``requirements.txt``, which installs lanic-hub from a
source that exists: a wheel placed in the folder, or a pip requirement (a VCS URL, an index
name) given in one place, the ``--source`` option. The model's licence check runs first: a
model whose data may not be re-published, yet carries images or report text, gets no Space.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import ConfigError
from .records import BankMeta

APP = '''"""The CXR-LanIC Space for {repo}. Research use only; not a medical device.

Written by `lanic-hub space`. The model comes from the Hub ({repo}, preloaded into the Space's
cache by README.md's `preload_from_hub`); nothing is trained at start-up.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("LANIC_MODEL", {repo!r})

from lanic_hub.demo import launch  # noqa: E402

if __name__ == "__main__":
    launch(os.environ["LANIC_MODEL"], server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
'''

README = """---
title: {title}
emoji: 🫁
colorFrom: blue
colorTo: gray
sdk: gradio
sdk_version: {gradio}
app_file: app.py
python_version: "3.11"
models:
  - {repo}
preload_from_hub:
  - {repo}
license: {licence}
short_description: Chest X-ray predictions explained by named concepts (research only)
---

# {title}

**Research use only. Not a medical device.** Upload a chest radiograph (PNG, JPEG or DICOM) or
pick an example; see the probabilities of five findings, the named concepts and the patterns
behind one of them (the bars add up to the logit), each pattern's name, category, scores and
gallery, and what happens when you switch patterns off.

The model is [{repo}](https://huggingface.co/{repo}) (see its card for what it was trained on and
how it was evaluated). {data_note}
"""


def write_space(
    repo_id: str,
    out: str | Path,
    *,
    source: str | None = None,
    wheel: str | Path | None = None,
    title: str = "CXR-LanIC",
    revision: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    """Write the Space folder for the model ``repo_id`` (resolved now, from the Hub or the local
    cache, to check it) into ``out``; returns ``out``. Exactly one of ``wheel`` (a lanic-hub wheel,
    copied into the folder) and ``source`` (a pip requirement for lanic-hub) says where the Space
    installs lanic-hub from."""
    from .modeling import resolve_model_folder, restricted_content

    if "/" not in repo_id or Path(repo_id).exists():
        raise ConfigError(
            f"{repo_id!r}: a Space loads its model from the Hub; give the repo id you pushed it to "
            "(`lanic-hub push --model DIR --repo ID`)"
        )
    if (source is None) == (wheel is None):
        raise ConfigError(
            "say where the Space installs lanic-hub from, once: --wheel PATH (a wheel built with "
            "`pip wheel --no-deps .`, copied into the folder) or --source REQUIREMENT (e.g. "
            "'lanic-hub @ git+https://github.com/ORG/lanic-hub@TAG')"
        )
    if wheel is not None and not (Path(wheel).is_file() and Path(wheel).name.startswith("lanic_hub-")):
        raise ConfigError(f"{wheel}: not a lanic-hub wheel file (lanic_hub-VERSION-...whl)")
    folder = resolve_model_folder(repo_id, revision=revision, cache_dir=cache_dir)
    bad = restricted_content(folder)
    if bad:
        from .errors import LicenceError

        raise LicenceError(
            f"{repo_id}: its Space would show what its data's licence forbids: " + "; ".join(bad)
        )
    import json

    import gradio

    sidecar = folder / "patterns.json"
    src = (
        BankMeta.parse(json.loads(sidecar.read_text()).get("meta", {}), f"{sidecar}: meta").data_source or {}
    )
    if src.get("redistributable"):
        data_note = (
            f"Its data ({src.get('name')}) may be re-published: the gallery thumbnails and examples "
            "come from it."
        )
        licence = "apache-2.0"
    else:
        data_note = (
            f"Its data ({src.get('name', 'unrecorded')}) may not be re-published: the Space shows no "
            "images or report text of it, only the images you upload."
        )
        licence = "other"
    if str(src.get("name", "")).startswith("nih"):
        data_note += (
            " NIH ChestX-ray14 images are provided by the NIH Clinical Center "
            "(https://nihcc.app.box.com/v/ChestXray-NIHCC); cite Wang et al., ChestX-ray8, IEEE CVPR 2017."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        shutil.copyfile(wheel, out / Path(wheel).name)
        requirement = f"./{Path(wheel).name}"
    else:
        requirement = str(source)
    (out / "requirements.txt").write_text(
        "# lanic-hub, from the one source `lanic-hub space` was given (its dependencies follow)\n"
        f"{requirement}\n"
    )
    (out / "app.py").write_text(APP.format(repo=repo_id))
    (out / "README.md").write_text(
        README.format(
            title=title, gradio=gradio.__version__, repo=repo_id, licence=licence, data_note=data_note
        )
    )
    return out
