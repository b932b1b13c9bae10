"""The benchmark suite: every benchmark, one after the other, then docs/PERFORMANCE.md.

    python -m benchmarks                 # the whole suite (about 15 minutes on 2 cores)
    python -m benchmarks peers ensemble  # only the modules whose names contain these words
    python -m benchmarks scale           # the paper-shape rehearsal (about 40 minutes; only when named)

The whole suite starts with a cold quickstart in a temporary folder (with its own lanic-hub cache)
and the later benchmarks use that run. Results go to benchmarks/results/cpu.json; a full run also
rewrites docs/PERFORMANCE.md (benchmarks/report.py), which includes benchmarks/results/gpu.json
when a GPU run (benchmarks/gpu.sh) left one.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from . import OPTIONAL, ORDER

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    only = [a for a in argv if not a.startswith("-")]
    mods = [m for m in ORDER + OPTIONAL if (m in ORDER and not only) or any(o in m for o in only)]
    results_path = HERE / "results" / "cpu.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    t_all = time.perf_counter()
    for name in mods:
        print(f"\n== bench_{name} ==", flush=True)
        t = time.perf_counter()
        try:
            res = importlib.import_module(f"benchmarks.bench_{name}").main()
        except Exception as exc:  # one failing benchmark is a row with its error, the rest still run
            res = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"bench_{name} failed: {res['error']}", flush=True)
        results[name] = {"result": res, "wall_s": round(time.perf_counter() - t, 1)}
    total = time.perf_counter() - t_all
    results["_meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}",
        "suite_wall_s": round(total, 1) if mods == ORDER else results.get("_meta", {}).get("suite_wall_s"),
        "modules_run": mods,
    }
    results_path.parent.mkdir(exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1, default=str))
    from .report import write

    doc = write(results, HERE / "results" / "gpu.json", Path("docs/PERFORMANCE.md"))
    print(f"\nsuite: {total:.0f} s; wrote {results_path} and {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
