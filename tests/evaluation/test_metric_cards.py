"""Each evaluate module in eval/metrics is ready for the Hub: a metric card (README.md with the
Space header evaluate expects, and its sections), an app.py and requirements; the card's example
runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from huggingface_hub import metadata_load

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    p.name for p in (ROOT / "eval" / "metrics").iterdir() if p.is_dir() and p.name.startswith("lanic_")
)


def test_every_module_is_listed():
    assert MODULES == [
        "lanic_accuracy",
        "lanic_explanations",
        "lanic_fidelity",
        "lanic_monosemanticity",
        "lanic_stability",
    ]


@pytest.mark.parametrize("name", MODULES)
def test_the_metric_card_app_and_requirements(name, monkeypatch):
    import gradio

    d = ROOT / "eval" / "metrics" / name
    meta = metadata_load(d / "README.md")
    assert meta["title"] == name and meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == gradio.__version__ and {"evaluate", "metric"} <= set(meta["tags"])
    assert len(meta["description"]) > 40
    text = (d / "README.md").read_text()
    for section in (
        "## Metric Description",
        "## How to Use",
        "### Inputs",
        "### Output Values",
        "## Limitations and Bias",
        "## Citation",
        "not a medical device",
    ):
        assert section in text, section
    compile((d / "app.py").read_text(), "app.py", "exec")
    assert f'evaluate.load("{name}")' in (d / "app.py").read_text()
    reqs = (d / "requirements.txt").read_text().split()
    assert "lanic-hub" in reqs and any(r.startswith("evaluate") for r in reqs)
    # the example, as written (paths relative to the repository root)
    example = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(ROOT)
    last = example.strip().splitlines()[-1]
    ns: dict = {}
    exec(compile(example.replace(last, f"result = {last}"), f"{name} card", "exec"), ns)
    assert isinstance(ns["result"], dict) and ns["result"]
