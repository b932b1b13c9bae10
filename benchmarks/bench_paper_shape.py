"""The paper-shape run (issue 35): the whole build at T = 100, L = 2048, k = 32 on 20,000 phantoms
in the MIMIC-CXR-JPG layout, through the shipped MIMIC config with the phantom CLIP as backbone,
the ensemble trained to its held-out plateau (the paper preset: at most 2,000 steps).

    python -m benchmarks paper_shape      # hours on 2 cores; runs only when named

Targets on 2 cores: training <= 2 h, the whole build <= 2.5 h, peak RSS <= 8 GB.

The folder (LANIC_BENCH_PAPER_DIR, default runs/paper-shape) keeps the rendered phantoms and the
build, so the run survives a stop: the pipeline skips the stages that are done and the ensemble
resumes from its checkpoint (written at most every 10 minutes: the paper preset's
``checkpoint_seconds``). Every call appends a line to ``sessions.jsonl`` there: when it ran, its
seconds and the training step at its start and end; the result sums them, so a run split over
several sittings still reports its whole time (and says that it was split).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

N = 20_000


def folder() -> Path:
    return Path(os.environ.get("LANIC_BENCH_PAPER_DIR", "runs/paper-shape"))


def trained_steps(build: Path) -> int:
    """The step of the ensemble's checkpoint in ``build`` (0 without one): a sitting stopped
    between checkpoints loses the steps after the last one, so its line ends there."""
    from safetensors import safe_open

    ck = build / "train" / "checkpoint" / "checkpoint.safetensors"
    if not ck.is_file():
        return 0
    with safe_open(str(ck), framework="pt") as f:
        return int((f.metadata() or {}).get("step", 0))


def main() -> dict:
    import torch

    from lanic_hub.records import TrainingReport

    from .bench_scale import one_run, phantom_layout

    torch.set_num_threads(2)
    # a stop by SIGTERM (what `kill` sends; a background job ignores SIGINT) still logs the sitting
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = folder()
    base.mkdir(parents=True, exist_ok=True)
    log = base / "sessions.jsonl"
    build = base / "build"
    start, first_step = time.time(), trained_steps(build)
    line = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "step_at_start": first_step}
    try:
        root, render_s = phantom_layout(N, base)
        res = one_run(root, N, 2048, None, build)
    finally:  # a stopped sitting is logged too: its steps count towards the run
        line |= {"seconds": round(time.time() - start, 1), "step_at_end": trained_steps(build)}
        with log.open("a") as f:
            f.write(json.dumps(line) + "\n")
    sessions = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    fid = TrainingReport.read(build / "train")
    ens = fid.ensemble
    res |= {
        "render_s": render_s,
        "sessions": sessions,
        "split_over_sessions": len(sessions) > 1,
        "ended_by": ens.ended_by,
        "heldout_curve": (ens.convergence or {}).get("curve"),
        "fidelity": fid.to_dict()["fidelity"],
        "dead_fraction": fid.fidelity.dead_fraction_mean_train,
        "build_s_all_sessions": sum(s["seconds"] for s in sessions),
    }
    print(
        f"paper shape, {N:,} phantoms: {res['steps']} steps ({res['ended_by']}), "
        f"{res['s_per_step']:.2f} s/step in the last sitting; FVU {res['fvu_full_level']:.4f}; "
        f"AUROC classifier {res['auroc']['classifier']:.4f} / ensemble path "
        f"{res['auroc']['ensemble_path']:.4f}; bank "
        f"{res['bank']}; build {res['build_s_all_sessions'] / 3600:.2f} h over {len(sessions)} sitting(s)",
        flush=True,
    )
    return res


if __name__ == "__main__":
    main()
