"""Phantom generator throughput on ONE core at 224 px (target: >= 200 images/s).

Each repeat generates the same images (sampling, rendering, report and labels, i.e. everything
`make_study` does); we report the median of the repeats and its ratio to the target.
"""

from __future__ import annotations

import os
import statistics
import time

TARGET = 200.0


def main(n: int = 400, repeats: int = 5) -> dict:
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if saved:
            os.sched_setaffinity(0, {sorted(saved)[0]})
        return _measure(n, repeats)
    finally:  # the rest of the suite runs in this process, on every core
        if saved:
            os.sched_setaffinity(0, saved)


def _measure(n: int, repeats: int) -> dict:
    from lanic_hub.data.phantom import PhantomConfig
    from lanic_hub.data.phantom.generate import make_study, plan_studies

    cfg = PhantomConfig()
    plans = plan_studies(n, 0, cfg)
    for p in plans[:20]:
        make_study(p, 0, cfg)  # warm caches (grids, font stamps)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in plans:
            make_study(p, 0, cfg)
        rates.append(n / (time.perf_counter() - t))
    med = statistics.median(rates)
    print(
        f"phantom generator, 1 core, 224 px: median {med:.0f} img/s over {repeats} x {n} "
        f"(min {min(rates):.0f}, max {max(rates):.0f}); target {TARGET:.0f}; ratio {med / TARGET:.2f}x"
    )
    return {"images_per_s": med, "target": TARGET, "ratio": med / TARGET}


if __name__ == "__main__":
    main()
