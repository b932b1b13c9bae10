"""The Python examples in docs/EXTENDING.md run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOC = Path(__file__).parents[1] / "docs" / "EXTENDING.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 1


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_extending_example_runs(n, tmp_path, capsys):
    script = tmp_path / f"example_{n}.py"
    script.write_text(BLOCKS[n])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    if n == 0:  # the adapter example: 3 images, the 5 findings, images that load at their size
        assert out.split()[:1] == ["3"] and "(3, 5)" in out and "(224, 224)" in out
