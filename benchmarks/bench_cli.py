"""How long the command lines take to answer ``--help`` (target: < 1 s), beside a bare Python
start on the same machine, in one run: the commands are timed alternately (A B C A B C ...), and
the medians and the ratio to the bare start are reported. Each call is a fresh process, as a user's
is; the package's heavy imports (torch, transformers, scikit-learn) load only when a command runs."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "lanic-hub --help": [str(BIN / "lanic-hub"), "--help"],
    "lanic-hub train --help": [str(BIN / "lanic-hub"), "train", "--help"],
    "lanic-eval --help": [str(BIN / "lanic-eval"), "--help"],
}


def main(rounds: int = 7) -> dict:
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(rounds):
        for name, cmd in COMMANDS.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t)
    bare = statistics.median(times["python -c pass"])
    out = {
        name: {
            "median_s": round(statistics.median(v), 3),
            "ratio_to_bare_python": round(statistics.median(v) / bare, 1),
        }
        for name, v in times.items()
    }
    for name, r in out.items():
        print(
            f"{name:28s} median {r['median_s']:.3f} s ({r['ratio_to_bare_python']:.1f}x a bare Python start)"
        )
    return {"rounds": rounds, "commands": out}


if __name__ == "__main__":
    main()
