"""Run every benchmark module in this folder, one after the other."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

if __name__ == "__main__":
    only = sys.argv[1:]
    here = Path(__file__).parent
    for mod in sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")):
        if only and not any(o in mod for o in only):
            continue
        print(f"\n== {mod} ==", flush=True)
        importlib.import_module(f"benchmarks.{mod}").main()
