"""The paper-shape rehearsal (issue 19): the whole pipeline at T = 100, L = 2048, k = 32, on
phantoms laid out as MIMIC-CXR-JPG (a `mimic:` spec), through the shipped MIMIC config with the
phantom CLIP as backbone. Each run measures every stage's wall time and peak resident memory; the
suite fits the exponent of each in N (rows) and in M = T*L (latents), and projects to MIMIC-CXR's
377k images.

    python -m benchmarks scale      # about 40 minutes on 2 cores (10 steps); runs only when named

- Rows: N = 5k, 10k and 20k at L = 2048. Latents: L = 512, 1024 and 2048 at N = 5k.
- Each run is a fresh subprocess (so that one run's memory does not count against the next). Its
  stages are `lanic_hub.stages.BUILD_STAGES` (data, backbone, embed, train, patterns, model), then
  `LanICModel.from_pretrained` and the mimic-cxr evaluation suite on the model without baselines
  (the baselines train their own ensembles: timed apart from the model's evaluation), in a second
  fresh process, as `lanic-eval` runs apart from the build.
- What the config is changed in, and why: the data and backbone paths; the embed stage without
  text (the reports' text embeddings are a MiniLM cost, not this rehearsal's question), fp32 on
  CPU, 2 workers; and training at LANIC_BENCH_SCALE_STEPS optimiser steps (default 10) instead of
  the paper preset's 2,000, because a paper-shape step costs the same for any N (15.4 s at
  L = 2048 on 2 cores), so 2,000 steps would take over 8 hours per run. The train stage's time is
  therefore reported in two parts: the transcoder steps (projected at 2,000 steps from the
  measured seconds per step) and the rest (classifier, fidelity, AUROCs), which grows with N. The
  bank is built from an ensemble that has taken few steps; its counts are what such an ensemble
  gives, not the converged ones.

The phantoms (20k, about 1 minute to render on 2 cores) are cached under
LANIC_BENCH_SCALE_CACHE (default ~/.cache/lanic-hub/bench-scale); smaller N use the first N rows
of the same layout. The section of docs/PERFORMANCE.md and docs/scale_stages.png come from
benchmarks/report.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SEED = 11
MIMIC_ROWS = 377_110  # MIMIC-CXR-JPG 2.x images (all views); the frontal share is about 64%
#: The stages whose times are fitted in N and M, in pipeline order.
STAGES = ("data", "backbone", "embeddings", "train", "train: transcoder steps", "patterns", "model", "eval")


def _env_ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "lanic-hub" / "bench-scale"
    return Path(os.environ.get("LANIC_BENCH_SCALE_CACHE", default))


def phantom_layout(n: int, cache: Path) -> tuple[Path, float]:
    """``n`` phantoms in the MIMIC-CXR-JPG layout, rendered once into ``cache``; (root, render s)."""
    from lanic_hub.data.phantom import export
    from lanic_hub.utils.system import available_cores

    folder = cache / f"phantoms-{n}-seed{SEED}"
    done = folder / "rendered.json"
    if done.is_file():
        return folder / "mimic-cxr-jpg", json.loads(done.read_text())["seconds"]
    t = time.perf_counter()
    root = export(folder, n, seed=SEED, hf=False, num_proc=available_cores(), progress=True)["mimic"]
    secs = time.perf_counter() - t
    done.write_text(json.dumps({"seconds": secs, "n": n}))
    return root, secs


def subset_layout(src: Path, n: int, dst: Path) -> Path:
    """The first ``n`` images of the MIMIC-CXR-JPG layout ``src`` as a layout of their own under
    ``dst``: the three CSVs cut to those images and their studies, and ``files`` linked to ``src``'s."""
    import pandas as pd

    dst.mkdir(parents=True, exist_ok=True)
    name = "mimic-cxr-2.0.0-{}.csv.gz"
    meta = pd.read_csv(src / name.format("metadata"), dtype=str, keep_default_na=False).head(n)
    split = pd.read_csv(src / name.format("split"), dtype=str, keep_default_na=False)
    lab = pd.read_csv(src / name.format("chexpert"), dtype=str, keep_default_na=False)
    studies = set(zip(meta["subject_id"], meta["study_id"], strict=True))
    keep = [(s, t) in studies for s, t in zip(lab["subject_id"], lab["study_id"], strict=True)]
    meta.to_csv(dst / name.format("metadata"), index=False)
    split[split["dicom_id"].isin(set(meta["dicom_id"]))].to_csv(dst / name.format("split"), index=False)
    lab[keep].to_csv(dst / name.format("chexpert"), index=False)
    link = dst / "files"
    if not link.exists():
        link.symlink_to((src / "files").resolve(), target_is_directory=True)
    return dst


def _folder_size(folder: Path) -> tuple[float, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20, len(files)


def one_run(root: Path, n: int, latents: int, steps: int, out: Path) -> dict:
    """One rehearsal run, the build in this process and the evaluation in a child: every
    stage's seconds and peak RSS, the bank's counts, patterns per prediction, the model folder,
    and the training report's figures."""
    import yaml

    from lanic_hub.records import TrainingReport
    from lanic_hub.stages import BUILD_STAGES, PipelineConfig, Run, packaged_config_dir, run_stages

    doc = yaml.safe_load((packaged_config_dir() / "mimic-cxr-biomedclip.yaml").read_text())
    doc["out"] = str(out)
    doc["data"] = f"mimic:{root}?reports={root}"
    doc["backbone"] = "phantom"
    doc["embed"].update(text=False, dtype="float32", autocast=None, num_workers=2, batch_size=256)
    doc["train"].update(steps=steps, latents=latents)
    doc["evaluate"] = False
    cfg = PipelineConfig.from_dict(doc, "the MIMIC config (benchmark copy)")
    run = Run(out, progress=False)
    h = run_stages(run, cfg, BUILD_STAGES)
    seconds, rss = dict(run.seconds), dict(run.peak_rss_gb)
    model = h["model"].folder

    # the evaluation and the loading in a process of their own, as `lanic-eval` runs: what the
    # build's process still holds (its arenas, the stages' handles) is not the evaluation's memory
    res_path = out / "eval-run.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--eval", str(model), h["data"].spec]
    cmd += [str(out / "embeddings"), str(out / "eval"), str(res_path)]
    subprocess.run(cmd, cwd=HERE.parent, check=True)
    er = json.loads(res_path.read_text())
    seconds["eval"], rss["eval"] = er["seconds"], er["peak_rss_gb"]
    load_s, load_rss = er["from_pretrained_s"], er["from_pretrained_rss_gb"]
    res = json.loads(Path(er["written"]).read_text())

    fid = TrainingReport.read(out / "train")
    ens = fid.ensemble
    seconds["train: transcoder steps"] = ens.seconds
    size_mb, n_files = _folder_size(model)
    meta = json.loads((model / "patterns.json").read_text())["meta"]
    return {
        "n": n,
        "latents": latents,
        "seconds": seconds,
        "peak_rss_gb": rss,
        "steps": ens.steps,
        "s_per_step": ens.seconds / max(1, ens.steps),
        "fvu_full_level": fid.fidelity.fvu_mean[str(latents)],
        "auroc": {
            "classifier": fid.auroc.classifier.macro,
            "ensemble_path": fid.auroc.ensemble_path.macro,
        },
        "measured_on": fid.measured_on,
        "bank": meta["counts"],
        "patterns_phase_seconds": meta.get("phase_seconds"),
        "patterns_for_90pct": _get(res, "metrics", "explanations", "patterns_for_90pct"),
        "patterns_for_90pct_in_20_50": _get(res, "metrics", "explanations", "patterns_for_90pct_in_20_50"),
        "model_folder_mb": size_mb,
        "model_files": n_files,
        "from_pretrained_s": load_s,
        "from_pretrained_rss_gb": load_rss,
    }


def eval_run(model: Path, spec: str, embeddings: Path, out: Path) -> dict:
    """In this (fresh) process: `LanICModel.from_pretrained` and the mimic-cxr evaluation suite on
    the model, without baselines; each one's seconds and peak RSS."""
    from lanic_hub import LanICModel
    from lanic_hub.evaluation.runner import run as run_eval
    from lanic_hub.utils.system import peak_rss_gb, reset_peak_rss

    reset_peak_rss()
    t = time.perf_counter()
    LanICModel.from_pretrained(model)
    load_s, load_rss = time.perf_counter() - t, peak_rss_gb()
    reset_peak_rss()
    t = time.perf_counter()
    ev = run_eval(
        [str(model)], "mimic-cxr", out, spec=spec, embeddings=embeddings, baselines=False, progress=False
    )
    secs, rss = time.perf_counter() - t, peak_rss_gb()
    if ev["failed"]:
        raise RuntimeError(f"evaluation failed: {ev['failed']}")
    return {
        "seconds": secs,
        "peak_rss_gb": rss,
        "from_pretrained_s": load_s,
        "from_pretrained_rss_gb": load_rss,
        "written": ev["written"][0],
    }


def _get(d: dict, *path: str):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def fit_exponent(x: list[float], y: list[float]) -> float | None:
    """The slope b of log y = a + b log x (None below two distinct x or any y <= 0)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(set(x.tolist())) < 2 or (y <= 0).any():
        return None
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def project(x: list[float], y: list[float], at: float) -> float | None:
    """y at ``at`` from the log-log line through (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(set(x.tolist())) < 2 or (y <= 0).any():
        return None
    b, a = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(a + b * np.log(at)))


def project_memory(x: list[float], y: list[float], at: float) -> float | None:
    """Peak memory at ``at`` from the straight line (not log-log) through the two largest sizes.

    Memory is a fixed part (weights, sample-sized tables) plus whatever is held per row; a
    power law through all sizes bends under a cap that the small sizes have not reached yet,
    while the last two sizes' slope is what is still held per row, and a line is what a per-row
    buffer grows as."""
    pts = sorted(zip(x, y, strict=True))[-2:]
    if len(pts) < 2 or pts[0][0] == pts[1][0]:
        return None
    (x0, y0), (x1, y1) = pts
    return float(y1 + max(y1 - y0, 0.0) / (x1 - x0) * (at - x1))


def summarise(runs: list[dict], paper_steps: int, n_fixed: int, l_paper: int = 2048) -> dict:
    """Exponents in N (at L = ``l_paper``) and in M (at N = ``n_fixed``) per stage, for time and
    memory, and the projection to MIMIC-CXR's rows."""
    by_n = sorted((r for r in runs if r["latents"] == l_paper), key=lambda r: r["n"])
    by_l = sorted((r for r in runs if r["n"] == n_fixed), key=lambda r: r["latents"])
    T = 100
    stages = {}
    for s in STAGES:
        ns = [r["n"] for r in by_n if s in r["seconds"]]
        ts = [r["seconds"][s] for r in by_n if s in r["seconds"]]
        ms = [r["peak_rss_gb"][s] for r in by_n if s in r["peak_rss_gb"]]
        ls = [T * r["latents"] for r in by_l if s in r["seconds"]]
        tl = [r["seconds"][s] for r in by_l if s in r["seconds"]]
        ml = [r["peak_rss_gb"][s] for r in by_l if s in r["peak_rss_gb"]]
        stages[s] = {
            "time_exponent_n": fit_exponent(ns, ts),
            "rss_exponent_n": fit_exponent(ns[: len(ms)], ms),
            "time_exponent_m": fit_exponent(ls, tl),
            "rss_exponent_m": fit_exponent(ls[: len(ml)], ml),
            "projected_s_at_mimic": project(ns, ts, MIMIC_ROWS),
            "projected_rss_gb_at_mimic": project_memory(ns[: len(ms)], ms, MIMIC_ROWS),
        }
    # the transcoder steps do not grow with N: at 2,000 steps, the median seconds per step
    if by_n:
        sps = float(np.median([r["s_per_step"] for r in by_n]))
        st = stages["train: transcoder steps"]
        st["projected_s_at_mimic"] = sps * paper_steps
        st["s_per_step_median"] = sps
        rest = [r["seconds"]["train"] - r["seconds"]["train: transcoder steps"] for r in by_n]
        tr = stages["train"]
        tr["time_exponent_n_without_steps"] = fit_exponent([r["n"] for r in by_n], rest)
        other = project([r["n"] for r in by_n], rest, MIMIC_ROWS)
        tr["projected_s_at_mimic"] = None if other is None else other + sps * paper_steps
    total = [stages[s]["projected_s_at_mimic"] for s in STAGES if s != "train: transcoder steps"]
    return {
        "stages": stages,
        "projected_total_s_at_mimic": None if None in total else float(sum(total)),
        "mimic_rows": MIMIC_ROWS,
        "paper_steps": paper_steps,
    }


def plot(runs: list[dict], path: Path, l_paper: int = 2048, n_fixed: int | None = None) -> Path:
    """Log-log time per stage against N (left) and against M = T*L (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_n = sorted((r for r in runs if r["latents"] == l_paper), key=lambda r: r["n"])
    by_l = sorted((r for r in runs if r["n"] == n_fixed), key=lambda r: r["latents"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, rs, xs, label in (
        (axes[0], by_n, [r["n"] for r in by_n], f"rows N (L = {l_paper})"),
        (axes[1], by_l, [100 * r["latents"] for r in by_l], f"latents M = T*L (N = {n_fixed})"),
    ):
        for s in STAGES:
            ys = [r["seconds"].get(s) for r in rs]
            if len(xs) >= 2 and all(y and y > 0 for y in ys):
                ax.loglog(xs, ys, "o-", label=s)
        ax.set_xlabel(label)
        ax.set_ylabel("wall time (s)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("lanic-hub at paper shape (T = 100, k = 32), 2 CPU cores: time per stage")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> dict:
    import tempfile

    from lanic_hub.training import PRESETS

    ns = _env_ints("LANIC_BENCH_SCALE_N", "5000,10000,20000")
    ls = _env_ints("LANIC_BENCH_SCALE_L", "512,1024,2048")
    steps = int(os.environ.get("LANIC_BENCH_SCALE_STEPS", 10))
    l_paper = max(ls)
    n_fixed = min(ns)
    plan = [(n, l_paper) for n in ns] + [(n_fixed, L) for L in ls if L != l_paper]
    t0 = time.perf_counter()
    root, render_s = phantom_layout(max(ns), cache_dir())
    runs = []
    with tempfile.TemporaryDirectory(prefix="lanic-scale-") as tmp:
        for n, L in plan:
            sub = subset_layout(root, n, Path(tmp) / f"data-{n}")
            out, res = Path(tmp) / f"run-{n}-{L}", Path(tmp) / f"res-{n}-{L}.json"
            print(f"\n-- N = {n:,}, L = {L}, {steps} steps --", flush=True)
            t = time.perf_counter()
            cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--one", str(sub), str(n), str(L)]
            cmd += [str(steps), str(out), str(res)]
            proc = subprocess.run(cmd, cwd=HERE.parent)
            if proc.returncode != 0:
                runs.append({"n": n, "latents": L, "error": f"exit {proc.returncode}"})
                continue
            r = json.loads(res.read_text())
            r["wall_s"] = time.perf_counter() - t
            runs.append(r)
            per = (f"{k} {v:.0f} s / {r['peak_rss_gb'].get(k, 0):.1f} GB" for k, v in r["seconds"].items())
            print(f"N = {n:,}, L = {L}: {r['wall_s']:.0f} s; " + ", ".join(per), flush=True)
    ok = [r for r in runs if "error" not in r]
    summ = summarise(ok, PRESETS["paper"]["train"]["steps"], n_fixed, l_paper)
    png = plot(ok, HERE.parent / "docs" / "scale_stages.png", l_paper, n_fixed)
    return {
        "measured_on": f"phantoms (seed {SEED}) in the MIMIC-CXR-JPG layout, the phantom CLIP, the shipped "
        f"MIMIC config at T = 100, k = 32, {steps} transcoder steps per run; N = {', '.join(map(str, ns))} "
        f"at L = {l_paper}; L = {', '.join(map(str, ls))} at N = {n_fixed}",
        "render_s": render_s,
        "runs": runs,
        **summ,
        "plot": str(png.relative_to(HERE.parent)),
        "wall_s": time.perf_counter() - t0,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--eval":
        model, spec, emb, out, res = sys.argv[2:7]
        Path(res).write_text(json.dumps(eval_run(Path(model), spec, Path(emb), Path(out))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--one":
        root, n, L, steps, out, res = sys.argv[2:8]
        r = one_run(Path(root), int(n), int(L), int(steps), Path(out))
        Path(res).write_text(json.dumps(r, default=str))
    else:
        print(json.dumps(main(), indent=1, default=str))
