"""The console entry point: thin wrappers, examples in --help, clean errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lanic_hub.cli import build_parser, main
from lanic_hub.data import load_mimic_cxr
from lanic_hub.data.phantom import load_phantom_dataset
from lanic_hub.records import RunFolder, RunSummary


@pytest.mark.parametrize(
    "command", ["phantom", "preview", "quickstart", "build", "export", "patterns", "explain", "eval", "demo"]
)
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--help"])
    assert e.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_phantom_command_writes_both_forms(tmp_path):
    assert main(["phantom", "--n", "6", "--seed", "2", "--out", str(tmp_path)]) == 0
    hf = load_phantom_dataset(tmp_path / "hf")
    assert len(hf) == 6 and len(load_mimic_cxr(tmp_path / "mimic-cxr-jpg")) == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_quickstart_runs_the_whole_pipeline_at_a_tiny_size_and_reruns_from_cache(
    tmp_path, tiny_phantom_clip, capsys, monkeypatch
):
    import json

    monkeypatch.setenv("LANIC_HUB_SMOKE", "1")  # 30 transcoder steps; --n, --members as given

    from lanic_hub import LanICModel
    from lanic_hub.backbone.embed import load_embeddings

    spec = f"local-dir:{tiny_phantom_clip[2]}"
    argv = ["quickstart", "--n", "200", "--members", "3", "--out", str(tmp_path), "--backbone", spec]
    argv += ["--counterfactual-pairs", "2"]  # the suite runs (its table goes into the card), small
    assert main(argv) == 0
    assert (tmp_path / "phantom_preview.png").stat().st_size > 10_000
    cf = json.loads(
        next((tmp_path / "eval" / "results" / "phantom-counterfactual").glob("*model*.json")).read_text()
    )
    assert "2 per factor" in cf["dataset"]["spec"]
    assert "Ground-truth prevalence" in (tmp_path / "label_summary.md").read_text()
    e = load_embeddings(tmp_path / "embeddings")
    assert e.row_ids.tolist() == list(range(200)) and e.image.shape == (200, 256)
    assert e.manifest.backbone.spec == spec
    layout = RunFolder(tmp_path)  # the layout is named once, and the pipeline writes it
    for p in (layout.phantoms_hf, layout.phantom_preview, layout.label_summary, layout.embeddings):
        assert p.exists(), p
    for p in (layout.train, layout.model, layout.stages_json, layout.eval_results("phantom-counterfactual")):
        assert p.exists(), p
    summary = RunSummary.read(tmp_path)
    assert set(summary.seconds) == {"data", "backbone", "embeddings", "train", "patterns", "model", "eval"}
    # each stage's peak memory, from the process's own high-water mark reset between stages
    assert set(summary.peak_rss_gb) == set(summary.seconds)
    assert all(0.05 < v < 64 for v in summary.peak_rss_gb.values())
    model = LanICModel.from_pretrained(tmp_path / "model")
    assert model.ensemble.cfg.n_members == 3
    assert model.config.bundled_backbone  # a phantom CLIP lives in a local cache: it is bundled
    ex = model.explain_embedding(e.image[0].float())
    assert all(abs(f.total - f.logit) < 1e-4 for f in ex.findings)
    stages = (tmp_path / "stages.json").read_text()
    mtime = (tmp_path / "train" / "ensemble.safetensors").stat().st_mtime
    capsys.readouterr()
    assert main(argv) == 0
    log = capsys.readouterr().out
    for stage in ("phantoms", "classifier + ensemble", "pattern bank", "evaluation"):
        assert f"{stage}: up to date" in log
    assert (tmp_path / "stages.json").read_text() == stages
    assert (tmp_path / "train" / "ensemble.safetensors").stat().st_mtime == mtime


def test_bad_input_is_a_clean_error(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lanic_hub.cli",
            "phantom",
            "--n",
            "2",
            "--out",
            str(tmp_path),
            "--shortcut",
            "edema:Edema",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "not a device or artifact" in r.stderr and "Traceback" not in r.stderr


def test_build_help_lists_the_yaml_keys_and_the_packaged_configs(capsys):
    from lanic_hub.pipeline import packaged_config_dir

    with pytest.raises(SystemExit):
        build_parser().parse_args(["build", "--help"])
    out = capsys.readouterr().out
    assert str(packaged_config_dir()) in out and "mimic-cxr-biomedclip.yaml" in out
    for key in ("phantom_n: 2000", "embed:", "num_workers: 2", "train:", "preset: phantom", "min_support: 5"):
        assert key in out, key
    assert "capped at the machine's" in out  # a field's documentation is its help


def test_eval_seed_and_demo_share_have_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    assert "seed of the bootstrap resamples" in capsys.readouterr().out
    args = build_parser().parse_args(["demo", "--share"])
    assert args.share is True and build_parser().parse_args(["demo"]).share is False


def test_real_fixtures_from_elsewhere_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    """`--data ../shared/data/cxr_real` typed outside the repository root: a message naming the
    folder and what to do (exit 2), and no empty leaderboard."""
    from lanic_hub.evaluation.cli import main as eval_main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "eval"
    argv = ["--suite", "real-fixtures", "--model", "m", "--data", "../nowhere/cxr_real", "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "lanic_hub.evaluation.cli", *argv], capture_output=True, text=True
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "../nowhere/cxr_real: no such folder (relative to" in r.stderr
    assert not out.exists()
    # and with the fixtures nowhere to be found, the message names the variable to set
    monkeypatch.setenv("LANIC_SHARED_DATA", str(tmp_path / "missing"))
    assert eval_main(["--suite", "real-fixtures", "--model", "m", "--out", str(out)]) == 2
    assert not out.exists()


def test_workers_are_capped_at_the_cores(capsys):
    from lanic_hub.utils.system import available_cores, cap_workers

    n = available_cores()
    assert cap_workers(n + 6, "embed") == n
    assert f"embed: {n + 6} workers asked for, {n} used" in capsys.readouterr().err
    assert cap_workers(0, "embed") == 0 and capsys.readouterr().err == ""


def test_progress_is_plain_lines_when_not_a_terminal(monkeypatch):
    import io

    from lanic_hub.utils.progress import tqdm

    monkeypatch.setenv("LANIC_PROGRESS_SECONDS", "3600")
    f = io.StringIO()
    bar = tqdm(total=1000, desc="steps", file=f)
    for _ in range(1000):
        bar.update()
    bar.close()
    text = f.getvalue()
    assert "\r" not in text and text.count("\n") == 2  # the first line and the last, nothing between
    assert text.splitlines()[-1].startswith("steps: 100% 1000/1000")


def test_help_loads_no_heavy_library():
    """`lanic-hub --help`, a subcommand's help and `lanic-eval --help` answer without importing
    torch, transformers, scikit-learn, open_clip or datasets (they load when a command runs);
    the package's model classes still load, and register with AutoModel, on first use."""
    code = (
        "import sys, contextlib, io\n"
        "from lanic_hub.cli import main\n"
        "from lanic_hub.evaluation.cli import main as eval_main\n"
        "for f, argv in ((main, ['--help']), (main, ['train', '--help']), (eval_main, ['--help'])):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        f(argv)\n"
        "heavy = ('torch', 'transformers', 'sklearn', 'open_clip', 'datasets')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "import lanic_hub\n"
        "from transformers import AutoConfig\n"
        "from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
        "print('lanic' in CONFIG_MAPPING, lanic_hub.LanICModel.__name__, 'lanic' in CONFIG_MAPPING)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "False LanICModel True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import lanic_hub

        lanic_hub.nothing  # noqa: B018
