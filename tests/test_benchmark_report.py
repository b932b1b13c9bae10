"""The benchmark suite's table (docs/PERFORMANCE.md): targets judged the right way round, failing
modules shown as rows with their error, GPU rows marked until measured; `lanic-hub bench` outside
a checkout is a clear error."""

from __future__ import annotations

import pytest

from benchmarks.report import NOT_GPU, markdown, rows_from


def _results(cold: float, http_ms: float, ratio: float) -> dict:
    return {
        "quickstart": {
            "result": {
                "cold_s": cold,
                "cached_s": 11.0,
                "cold_stages": {"data": 10.0, "backbone": 140.0},
                "cached_stages": {"data": 0.0, "backbone": 0.5},
            }
        },
        "demo": {"result": {"http_ms": http_ms, "callback_ms": 80.0}},
        "patterns": {
            "result": {
                "ms_speed": [
                    {
                        "rows": 20000,
                        "patterns": 207,
                        "ratio_pairwise_over_linear": ratio,
                        "max_abs_difference": 2e-7,
                    }
                ]
            }
        },
        "eval": {"result": {"error": "RuntimeError: boom"}},
    }


def _row(rows, start: str):
    return next(r for r in rows if r[0].startswith(start))


def test_targets_are_judged_in_the_right_direction():
    good = rows_from(_results(cold=300, http_ms=300, ratio=150))
    assert _row(good, "quickstart, cold")[3] == "yes"  # lower is better
    assert _row(good, "demo")[3] == "yes"
    assert _row(good, "MS linear")[3] == "yes"  # higher is better
    bad = rows_from(_results(cold=700, http_ms=1500, ratio=30))
    assert _row(bad, "quickstart, cold")[3] == "**no**"
    assert _row(bad, "demo")[3] == "**no**"
    assert _row(bad, "MS linear")[3] == "**no**"
    assert "backbone 140.0" in _row(good, "quickstart, cold")[4]


def test_space_rows_at_paper_shape():
    load = {"users": 20, "calls_per_user": 3, "completed": 58, "errors": 2, "p50_s": 9.0, "p95_s": 12.0,
            "most_in_flight": 2, "wall_s": 90.0}  # fmt: skip
    sp = {"http_ms": 1200.0, "callback_ms": 900.0, "search_ms": 40.0, "search_queries": 5,
          "patterns_in_bank": 2400, "load": load, "from_pretrained_s": 18.0,
          "shape": "T = 100, L = 2048, k = 32"}  # fmt: skip
    rows = rows_from(_results(300, 300, 150) | {"space_paper": {"result": sp}})
    assert _row(rows, "Space at paper shape: explain")[3] == "**no**"  # 1,200 ms > 1,000 ms
    assert _row(rows, "Space at paper shape under load")[3] == "**no**"  # 2 errors
    assert "2 errors, 58 done" in _row(rows, "Space at paper shape under load")[2]
    assert _row(rows, "Space at paper shape: pattern search")[2] == "40 ms"
    assert "bank of 2400 patterns" in _row(rows, "Space at paper shape: pattern search")[4]
    assert _row(rows, "Space at paper shape: LanICModel")[2] == "18.0 s"
    # the quickstart's demo rows are unchanged by it, and a skipped module gives no rows
    assert _row(rows, "demo: explain")[3] == "yes"
    skipped = rows_from(_results(300, 300, 150) | {"space_paper": {"result": {"skipped": "no model"}}})
    assert not [r for r in skipped if r[0].startswith("Space")]


def test_failed_modules_and_gpu_rows_are_shown():
    md = markdown(_results(300, 300, 150), gpu=None)
    assert "| bench_eval | - | RuntimeError: boom |" in md
    assert md.count(NOT_GPU) == 5
    md = markdown(_results(300, 300, 150), gpu={"device": "H200", "loop": {"summary": "12.0x"}})
    assert "| paper-scale ensemble vs sequential loop, same GPU | >= 10x | 12.0x |" in md
    assert md.count(NOT_GPU) == 4


def test_bench_command_outside_a_checkout(tmp_path, monkeypatch, capsys):
    from lanic_hub.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 2
    assert "no benchmarks/ folder" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["eai-sparsify", "SAELens"])
def test_a_peer_that_cannot_run_is_a_row_with_its_error(missing):
    rows = {
        "lanic-hub": {"samples_per_s": 20000.0, "fvu": 0.3},
        "eai-sparsify": {"samples_per_s": 16000.0, "fvu": 0.31},
        "SAELens": {"samples_per_s": 9000.0, "fvu": 0.2, "note": "autoencodes y"},
    }
    rows[missing] = {"error": "ModuleNotFoundError: No module named 'x'"}
    res = {"peers": {"result": {"rows": rows, "data": "synthetic", "shape": "L=2048"}}}
    row = _row(rows_from(res), f"one TopK coder: {missing}")
    assert row[2] == "cannot run: ModuleNotFoundError: No module named 'x'"


def test_scoring_rows_judge_each_pass_against_half_the_encoder():
    def row(stage, ratio):
        return {
            "stage": stage,
            "images_per_s": 100.0,
            "throughput_vs_encoder_median": ratio,
            "throughput_vs_encoder_range": [ratio - 0.1, ratio + 0.1],
        }

    res = {
        "scoring": {
            "result": {
                "rows": [
                    row("encoder", 1.0),
                    row("pass 1 (latent scores)", 0.46),
                    row("pass 2 (pattern scores)", 0.8),
                ],
                "target_throughput_vs_encoder": 0.5,
                "measured_on": "random rows",
                "peak_rss_gb": 5.4,
            }
        }
    }
    rows = rows_from(res)
    assert _row(rows, "bank scoring pass 1")[3] == "**no**"
    assert _row(rows, "bank scoring pass 2")[3] == "yes"
    assert not any("encoder vs" in r[0] for r in rows)


def test_the_shortcut_suite_time_is_read_from_a_run_of_it(tmp_path, monkeypatch):
    """bench_shortcut reads the times each seed of a phantom-shortcut run recorded; the report
    shows one row per seed with its phases."""
    import json

    from benchmarks import bench_shortcut

    for s, (w, r) in {0: (610.0, 240.0), 1: (0.4, 250.0)}.items():
        (tmp_path / f"seed-{s}").mkdir()
        doc = {"seed": s, "coupling": {"factor": "chest_tube", "finding": "Atelectasis"},
               "phantoms": 2000, "test_phantoms": 5000, "seconds": w + r, "seconds_worlds": w,
               "seconds_removal": r}  # fmt: skip
        (tmp_path / f"seed-{s}" / "shortcut.json").write_text(json.dumps(doc))
    monkeypatch.setenv("LANIC_BENCH_SHORTCUT", str(tmp_path))
    res = bench_shortcut.main()
    assert [r["seconds"] for r in res["seeds"]] == [850.0, 250.4]
    rows = rows_from({"shortcut": {"result": res}})
    row = _row(rows, "eval: phantom-shortcut suite, seed 1 (chest_tube:Atelectasis)")
    assert row[2] == "250 s" and "removal 250 s" in row[4] and "worlds 0 s" in row[4]
    monkeypatch.setenv("LANIC_BENCH_SHORTCUT", str(tmp_path / "nothing"))
    assert "skipped" in bench_shortcut.main()


def test_the_paper_shape_rows_sum_the_sittings_and_judge_the_targets():
    """A run split over sittings: training counts the sittings that took steps, the build all of
    them; peak RSS is the largest stage's."""
    sessions = [
        {"started": "a", "step_at_start": 0, "step_at_end": 700, "seconds": 5400.0},
        {"started": "b", "step_at_start": 700, "step_at_end": 1100, "seconds": 3000.0},
        {"started": "c", "step_at_start": 1100, "step_at_end": 1100, "seconds": 900.0},  # bank, eval
    ]
    ps = {
        "n": 20000,
        "steps": 1100,
        "ended_by": "plateau",
        "sessions": sessions,
        "split_over_sessions": True,
        "build_s_all_sessions": 9300.0,
        "render_s": 40.0,
        "peak_rss_gb": {"train": 6.1, "patterns": 7.4, "eval": 3.9},
        "fvu_full_level": 0.02,
        "auroc": {"classifier": 0.866, "ensemble_path": 0.865},
        "bank": {"selected": 5000},
        "patterns_for_90pct": {"median": 31.0, "p10": 20.0, "p90": 48.0},
        "patterns_for_90pct_in_20_50": 0.8,
        "measured_on": "test split",
    }
    rows = rows_from({"paper_shape": {"result": ps}})
    train, build, rss = (_row(rows, f"paper-shape run: {w}") for w in ("ensemble", "the whole", "peak"))
    assert train[2].startswith("2.33 h, 1100 steps (plateau)") and train[3] == "**no**"  # 8400 s > 2 h
    assert build[2] == "2.58 h" and build[3] == "**no**" and "0-700, 700-1100, 1100-1100" in build[4]
    assert rss[2] == "7.4 GB" and rss[3] == "yes"
    assert "median 31 (p10-p90 20-48)" in _row(rows, "paper-shape run: figures")[4]
