"""The ``phantom-shortcut`` suite's wall time on this machine (the suite of issue 34: two whole
pipelines per world seed, then the removal table on 5,000 decoupled and 5,000 anti-coupled test
phantoms). A run takes 10-15 minutes a seed on 2 cores, so this module reads the times the suite
itself recorded in a run's results, per seed and per phase; with ``LANIC_BENCH_SHORTCUT_COLD=1``
it runs one seed cold into a temporary folder (the phantom CLIP comes from the lanic-hub cache).

    python -m benchmarks shortcut     # LANIC_BENCH_SHORTCUT=runs/removal/phantom-shortcut (default;
                                      # several run folders: comma-separated)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

PHASES = ("seconds_worlds", "seconds_removal")


def _seed_rows(folder: Path) -> list[dict]:
    """One row per seed result under ``folder`` (``seed-<s>/shortcut.json``, or the folder's own)."""
    files = sorted(folder.glob("seed-*/shortcut.json")) or [folder / "shortcut.json"]
    rows = []
    for f in files:
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        rows.append(
            {
                "seed": r.get("seed"),
                "coupling": r.get("coupling"),
                "phantoms": r.get("phantoms"),
                "test_phantoms": r.get("test_phantoms"),
                "seconds": r.get("seconds"),
                "seconds_worlds": r.get("seconds_worlds"),
                "seconds_removal": r.get("seconds_removal"),
            }
        )
    return rows


def main() -> dict:
    if os.environ.get("LANIC_BENCH_SHORTCUT_COLD"):
        from lanic_hub.evaluation.shortcut import run_shortcut_suite

        out = Path(tempfile.mkdtemp(prefix="lanic-bench-shortcut-"))
        try:
            t = time.perf_counter()
            run_shortcut_suite(out, progress=False, log=lambda *a: None)
            wall = time.perf_counter() - t
            rows = _seed_rows(out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        res = {"source": "one seed run cold by this benchmark", "wall_s": wall, "seeds": rows}
    else:
        spec = os.environ.get("LANIC_BENCH_SHORTCUT", "runs/removal/phantom-shortcut")
        folders = [Path(f) for f in spec.split(",") if f]
        rows = [r for f in folders for r in _seed_rows(f)]
        if not rows:
            msg = f"no phantom-shortcut results in {spec}: run `lanic-eval --suite phantom-shortcut` first"
            print(msg + " (skipped)")
            return {"skipped": msg}
        res = {"source": f"the times the suite recorded in {', '.join(map(str, folders))}", "seeds": rows}
    for r in rows:
        parts = ", ".join(f"{k.removeprefix('seconds_')} {r[k]:.0f} s" for k in PHASES if r[k])
        print(f"seed {r['seed']}: {r['seconds']:.0f} s ({parts})")
    return res
