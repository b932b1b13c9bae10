"""What the Hub-path tests share: an environment that sees only an offline Hugging Face cache, a
fresh Python process that prints its answer as JSON, and a generated Space started as a server."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def offline_hub_env(hf_home: Path, scratch: Path, *, fresh: bool = False, **extra: str) -> dict[str, str]:
    """os.environ with ``HF_HOME`` at ``hf_home``, ``HF_HUB_OFFLINE=1`` and lanic-hub's cache in
    ``scratch``. ``fresh``: drop ``PYTHONPATH`` and ``VIRTUAL_ENV`` too (for another venv's Python)."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "LANIC_MODEL") if fresh else ("LANIC_MODEL",)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "LANIC_HUB_CACHE": str(scratch / "c")}, **extra
    )
    return env


def run_json(code: str, env: dict[str, str], python: str | Path = sys.executable, timeout: int = 300) -> Any:
    """Run ``code`` in a new process; its last line of output, parsed as JSON."""
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_space(
    folder: Path, env: dict[str, str], log_path: Path, python: str | Path = sys.executable, wait_s: int = 180
) -> Iterator[str]:
    """Start ``folder/app.py`` as a Space would and yield its URL once the page answers; stop it
    after. A start that fails or takes over ``wait_s`` fails the test with the log's tail."""
    import httpx

    port = free_port()
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(python), "app.py"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            t0 = time.time()
            while time.time() - t0 < wait_s:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(1)
            else:
                pytest.fail(f"the Space did not start in {wait_s} s: " + log_path.read_text()[-3000:])
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def explain_through_the_space(url: str, image: str, finding: str = "Cardiomegaly") -> bytes:
    """Call the Space's ``/explain`` through gradio_client and fetch the first card's thumbnail."""
    import httpx
    from gradio_client import Client, handle_file

    res = Client(url, verbose=False).predict(handle_file(image), finding, api_name="/explain")
    cards = next(x for x in res if isinstance(x, str) and "<img src=" in x)
    src = cards.split('<img src="', 1)[1].split('"', 1)[0]
    r = httpx.get(url.rstrip("/") + src, timeout=10)
    assert r.status_code == 200, r.status_code
    return r.content
