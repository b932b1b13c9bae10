"""The main job on the embedded default, cold and cached, stage by stage (targets: cold <= 10 min,
cached rerun <= 1 min on 2 cores).

Cold means nothing cached: a fresh output folder AND a fresh lanic-hub cache (``LANIC_HUB_CACHE``),
so the phantom CLIP is trained too. The later benchmarks of ``python -m benchmarks`` reuse this
run (``LANIC_BENCH_RUN``) and its cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_COLD, TARGET_CACHED = 600.0, 60.0
QUICKSTART = [
    sys.executable,
    "-c",
    "import sys; from lanic_hub.cli import main; sys.exit(main())",
    "quickstart",
]


def _run(out: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    r = subprocess.run([*QUICKSTART, "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"quickstart failed: {r.stderr[-2000:]}")
    return wall, json.loads((out / "summary.json").read_text())["seconds"]


def main(root: str | None = None) -> dict:
    base = Path(root or tempfile.mkdtemp(prefix="lanic-bench-quickstart-"))
    os.environ.setdefault("LANIC_HUB_CACHE", str(base / "cache"))
    out = base / "run"
    cold, cold_stages = _run(out)
    cached, cached_stages = _run(out)
    os.environ["LANIC_BENCH_RUN"] = str(out)
    print(
        f"quickstart cold {cold:.0f} s (target {TARGET_COLD:.0f}; ratio {cold / TARGET_COLD:.2f}): "
        f"{cold_stages}\n"
        f"quickstart cached {cached:.1f} s (target {TARGET_CACHED:.0f}; ratio {cached / TARGET_CACHED:.2f}): "
        f"{cached_stages}"
    )
    return {
        "cold_s": cold,
        "cached_s": cached,
        "cold_stages": cold_stages,
        "cached_stages": cached_stages,
        "run": str(out),
        "cache": os.environ["LANIC_HUB_CACHE"],
    }


if __name__ == "__main__":
    main()
