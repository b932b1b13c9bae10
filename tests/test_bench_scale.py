"""The paper-shape rehearsal's parts (benchmarks/bench_scale.py), at test sizes: the subset of a
MIMIC-CXR-JPG layout is read by the real loader as the first N images, the exponents and the
projection recover exact power laws, the section of docs/PERFORMANCE.md shows them, and the
per-stage peak memory measures what a stage allocates."""

from __future__ import annotations

import pytest
import torch

from benchmarks.bench_scale import fit_exponent, project, subset_layout, summarise
from benchmarks.report import scale_section


def test_subset_layout_is_the_first_n_images_through_the_mimic_loader(phantom_export, tmp_path):
    from lanic_hub.data.mimic import load_mimic_cxr

    full = load_mimic_cxr(phantom_export["mimic"])
    sub = load_mimic_cxr(subset_layout(phantom_export["mimic"], 25, tmp_path / "sub"))
    assert len(sub) == 25
    assert sub["image_id"] == full["image_id"][:25]
    assert sub["split"] == full["split"][:25] and sub["Edema"] == full["Edema"][:25]
    from PIL import Image

    with Image.open(sub[0]["image"]["path"]) as a, Image.open(full[0]["image"]["path"]) as b:
        assert a.size == b.size and a.tobytes() == b.tobytes()  # the linked files/ tree resolves


def test_exponent_and_projection_recover_a_power_law():
    xs = [5000, 10000, 20000]
    ys = [3.0 * x**1.5 for x in xs]
    assert fit_exponent(xs, ys) == pytest.approx(1.5)
    assert project(xs, ys, 377_110) == pytest.approx(3.0 * 377_110**1.5, rel=1e-9)
    assert fit_exponent([5000, 5000], [1.0, 2.0]) is None  # one distinct size: no slope
    assert fit_exponent(xs, [1.0, 0.0, 2.0]) is None


def test_memory_projection_is_the_line_through_the_two_largest_sizes():
    from benchmarks.bench_scale import project_memory

    # saturated: the cap was reached between the first two sizes, nothing grows per row after
    assert project_memory([5000, 10000, 20000], [9.5, 12.3, 12.3], 377_110) == pytest.approx(12.3)
    # a per-row buffer: 0.09 GB per 1,000 rows past 20k
    assert project_memory([5000, 10000, 20000], [3.7, 4.2, 5.1], 120_000) == pytest.approx(5.1 + 9.0)
    assert project_memory([5000], [1.0], 377_110) is None


def _run(n: int, L: int, steps: int = 10) -> dict:
    M = 100 * L
    sps = 1e-5 * M  # seconds per step: linear in M, not in N
    secs = {
        "data": 1e-3 * n,
        "backbone": 2.0,
        "embeddings": 2e-3 * n,
        "train: transcoder steps": sps * steps,
        "patterns": 1e-3 * n * (M / 204_800) ** 1.2,
        "model": 3.0,
        "eval": 1e-3 * n,
    }
    secs["train"] = secs["train: transcoder steps"] + 5e-4 * n
    rss = {k: 1.0 + 1e-4 * n for k in secs if k != "train: transcoder steps"}
    return {
        "n": n,
        "latents": L,
        "seconds": secs,
        "peak_rss_gb": rss,
        "steps": steps,
        "s_per_step": sps,
        "fvu_full_level": 0.5,
        "auroc": {"classifier": 0.86, "ensemble_path": 0.84},
        "bank": {"latents": M, "alive": M // 2, "merged": M // 4, "selected": 100},
        "patterns_for_90pct": {"median": 30.0, "p10": 20.0, "p90": 60.0},
        "patterns_for_90pct_in_20_50": 0.7,
        "patterns_phase_seconds": {"merge": 1.0},
        "model_folder_mb": 400.0,
        "model_files": 5,
        "from_pretrained_s": 1.0,
    }


def test_summary_fits_each_stage_and_projects_the_steps_at_the_paper_budget():
    runs = [_run(n, 2048) for n in (5000, 10000, 20000)] + [_run(5000, L) for L in (512, 1024)]
    s = summarise(runs, paper_steps=2000, n_fixed=5000)
    st = s["stages"]
    assert st["data"]["time_exponent_n"] == pytest.approx(1.0)
    assert st["backbone"]["time_exponent_n"] == pytest.approx(0.0, abs=1e-9)
    assert st["patterns"]["time_exponent_m"] == pytest.approx(1.2)
    assert st["train: transcoder steps"]["time_exponent_m"] == pytest.approx(1.0)
    assert st["train"]["time_exponent_n_without_steps"] == pytest.approx(1.0)
    sps = 1e-5 * 204_800
    assert st["train: transcoder steps"]["projected_s_at_mimic"] == pytest.approx(sps * 2000)
    assert st["train"]["projected_s_at_mimic"] == pytest.approx(sps * 2000 + 5e-4 * s["mimic_rows"])
    assert st["eval"]["projected_s_at_mimic"] == pytest.approx(1e-3 * s["mimic_rows"])
    # memory: fixed + per row, extrapolated on the line through the two largest sizes
    assert st["eval"]["projected_rss_gb_at_mimic"] == pytest.approx(1.0 + 1e-4 * s["mimic_rows"])
    want = sum(st[k]["projected_s_at_mimic"] for k in st if k != "train: transcoder steps")
    assert s["projected_total_s_at_mimic"] == pytest.approx(want)

    section = "\n".join(
        scale_section(
            {"scale": {"result": {**s, "runs": runs, "measured_on": "test", "render_s": 1.0, "wall_s": 60.0}}}
        )
    )
    assert "| patterns | 5 / 1.5 | 10 / 2.0 | 20 / 3.0 | 1.00 / " in section
    assert "1.20 / 0.00" in section  # the patterns' exponent in M, time / memory
    row = "| N = 20,000, L = 2048 | 10 | 0.50 | 0.860 / 0.840 | 204,800 / 102,400 / 51,200 / 100 |"
    assert row in section


def test_peak_rss_after_a_reset_measures_an_allocation():
    from lanic_hub.utils.system import peak_rss_gb, reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("this OS cannot reset the peak resident set (/proc/self/clear_refs)")
    before = peak_rss_gb()
    x = torch.ones(64 * 2**20, dtype=torch.float32)  # 256 MiB, touched
    during = peak_rss_gb()
    del x
    reset_peak_rss()
    after = peak_rss_gb()
    assert during - before > 0.2
    assert after < during - 0.2
