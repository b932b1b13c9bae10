"""kill -9 in the middle of training, pattern scoring, save_pretrained and writing eval results
(issue 9; extraction has its own test in tests/backbone/test_embed.py). After each kill, what is on
disk is a complete earlier state or nothing; a rerun resumes or redoes the work, and the final
artefacts equal those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

CLI = [sys.executable, "-c", "import sys; from lanic_hub.cli import main; sys.exit(main())"]
EVAL = [sys.executable, "-c", "import sys; from lanic_hub.evaluation.cli import main; sys.exit(main())"]


def _same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return set(x) == set(y) and all(x[k].numpy().tobytes() == y[k].numpy().tobytes() for k in x)


def _kill_when(cmd: list[str], ready, timeout: float = 300) -> bool:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds; False if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        raise TimeoutError(cmd)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _run(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return time.perf_counter() - t


def test_kill_9_during_ensemble_training_then_resume(tiny_embedded, tmp_path):
    """Killed after an epoch's checkpoint, the rerun resumes from it; the weights equal an
    uninterrupted run's bit for bit."""
    args = ["train", "--embeddings", str(tiny_embedded / "emb"), "--members", "24", "--epochs", "30"]
    _run([*CLI, *args, "--out", str(tmp_path / "full")])
    killed = tmp_path / "killed"
    ck = killed / "checkpoint" / "checkpoint.safetensors"

    def epoch() -> int:
        with safe_open(str(ck), framework="pt") as f:
            return int(f.metadata()["epoch"])

    for _ in range(3):  # the kill must land between the first and the last epoch
        shutil.rmtree(killed, ignore_errors=True)
        if _kill_when([*CLI, *args, "--out", str(killed)], ck.is_file) and epoch() < 30:
            break
    else:
        pytest.fail("could not land a kill mid-training in 3 tries")
    at = epoch()
    assert 1 <= at < 30
    assert not (killed / "ensemble.safetensors").exists()  # no final output from a killed run
    assert [p.name for p in (killed / "checkpoint").iterdir()] == ["checkpoint.safetensors"]
    _run([*CLI, *args, "--out", str(killed)])
    for name in ("classifier.safetensors", "ensemble.safetensors"):
        assert _same_tensors(killed / name, tmp_path / "full" / name), name
    steps = [
        json.loads((f / "fidelity.json").read_text())["ensemble"]["steps"]
        for f in (killed, tmp_path / "full")
    ]
    assert steps[0] == steps[1] > 0


def _bank_doc(folder: Path) -> dict:
    doc = json.loads((folder / "patterns.json").read_text())
    doc["meta"].pop("seconds"), doc["meta"].pop("phase_seconds")
    return doc


def test_kill_9_during_pattern_scoring_then_redo(tiny_model, tiny_embedded, tmp_path):
    """Killed while scoring, the folder holds no bank (or a complete one, never a torn pair);
    the rerun redoes it and equals the uninterrupted bank."""
    from lanic_hub.patterns import PatternBank

    args = ["--embeddings", str(tiny_embedded / "emb")]
    args += ["--min-support", "2", "--gallery-size", "5", "--cos-threshold", "0.3", "--corr-threshold", "0.3"]
    folders = {}
    for name in ("full", "killed"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        for f in tiny_model.iterdir():
            if f.is_file() and not f.name.startswith("patterns."):
                shutil.copy(f, folders[name])
    took = _run([*CLI, "patterns", "--model", str(folders["full"]), *args])
    landed = []
    for frac in (0.5, 0.8):
        deadline = time.time() + frac * took
        cmd = [*CLI, "patterns", "--model", str(folders["killed"]), *args]
        landed.append(_kill_when(cmd, lambda d=deadline: time.time() > d))
        left = sorted(p.name for p in folders["killed"].iterdir() if p.name.startswith("patterns"))
        assert left in ([], ["patterns.json", "patterns.safetensors"]), left  # no temp files, no half
        if left:
            PatternBank.load(folders["killed"])
    assert landed[0], "the first kill must land mid-run (a noisy machine may finish the second first)"
    _run([*CLI, "patterns", "--model", str(folders["killed"]), *args])
    assert _same_tensors(folders["killed"] / "patterns.safetensors", folders["full"] / "patterns.safetensors")
    assert _bank_doc(folders["killed"]) == _bank_doc(folders["full"])


def test_a_torn_bank_is_refused(tiny_model, tmp_path):
    """What a kill between the bank's two renames would leave: new tensors beside old JSON."""
    from lanic_hub.errors import DataError
    from lanic_hub.patterns import PatternBank

    f = tmp_path / "torn"
    shutil.copytree(tiny_model, f)
    bank = PatternBank.load(f)
    bank.latent_scores["ms"] = bank.latent_scores["ms"] + 1.0
    old_json = (f / "patterns.json").read_text()
    bank.save(f)
    (f / "patterns.json").write_text(old_json)
    with pytest.raises(DataError, match="different builds"):
        PatternBank.load(f)


SAVE_LOOP = r"""
import sys, torch
from lanic_hub import LanICModel
m = LanICModel.from_pretrained(sys.argv[1])
i = 0
while True:
    m.patterns[0].name = f"version {i}"
    with torch.no_grad():
        m.classifier.fc2.bias[0] = float(i)
    m.save_pretrained(sys.argv[2])
    i += 1
"""


def test_kill_9_during_save_pretrained_leaves_a_complete_folder(tiny_lanic_model, tmp_path):
    """A process saving versions in a loop is killed at random moments: the folder always loads,
    its weights and sidecar are always the same version, and files the save does not write (the
    card, the bundled backbone) are kept."""
    from lanic_hub import LanICModel

    out = tmp_path / "model"
    shutil.copytree(tiny_lanic_model, out)
    rng = random.Random(0)
    versions = []
    for _ in range(4):
        first = os.stat(out / "config.json").st_ino
        when: list[float] = []

        def ready(first: int = first, when: list[float] = when) -> bool:
            if not when:
                try:
                    if os.stat(out / "config.json").st_ino != first:  # the loop's first save landed
                        when.append(time.time() + rng.uniform(0.0, 1.5))
                except FileNotFoundError:  # mid-swap
                    pass
            return bool(when) and time.time() > when[0]

        assert _kill_when([sys.executable, "-c", SAVE_LOOP, str(tiny_lanic_model), str(out)], ready)
        m = LanICModel.from_pretrained(out)
        v = int(m.patterns[0].name.split()[-1])
        assert m.classifier.fc2.bias[0].item() == v  # weights and sidecar from the same save
        assert (out / "README.md").read_text() == (tiny_lanic_model / "README.md").read_text()
        assert (out / "backbone").is_dir()
        versions.append(v)
    m.save_pretrained(out)  # a later save sweeps what the killed ones left beside the folder
    assert not list(tmp_path.glob(".model.saving*")) and not (tmp_path / "model.old").exists()
    assert LanICModel.from_pretrained(out).patterns[0].name == f"version {versions[-1]}"


def test_an_interrupted_folder_swap_is_recovered(tiny_lanic_model, tmp_path):
    """A kill between replace_dir's two renames leaves only ``model.old``: loading puts it back."""
    from lanic_hub import LanICModel

    shutil.copytree(tiny_lanic_model, tmp_path / "model.old")
    m = LanICModel.from_pretrained(tmp_path / "model")
    assert (tmp_path / "model").is_dir() and not (tmp_path / "model.old").exists()
    assert len(m.patterns) == m.config.n_patterns


def _results(out: Path) -> dict:
    docs = {}
    for f in sorted((out / "results" / "phantom").glob("*.json")):
        d = json.loads(f.read_text())
        d.pop("seconds")
        d["metrics"].pop("seconds", None)
        d["dataset"].pop("spec")
        docs[f.name] = d
    return docs


def test_kill_9_during_evaluation_then_rerun(tiny_lanic_model, tmp_path):
    args = ["--model", str(tiny_lanic_model), "--suite", "phantom", "--n", "300", "--bootstrap", "20"]
    took = _run([*EVAL, *args, "--out", str(tmp_path / "full")])
    killed = tmp_path / "killed"
    landed = []
    for frac in (0.5, 0.25):  # the second run reuses what the first cached, so it is shorter
        deadline = time.time() + frac * took
        landed.append(_kill_when([*EVAL, *args, "--out", str(killed)], lambda d=deadline: time.time() > d))
        for f in killed.rglob("*.json"):
            if ".tmp" not in str(f):  # temporary names may stay behind a kill; outputs are whole
                json.loads(f.read_text())
    assert landed[0], "the first kill must land mid-run"
    _run([*EVAL, *args, "--out", str(killed)])
    assert not [f for f in killed.rglob("*") if ".tmp" in f.name], "the rerun sweeps temporary files"
    full, again = _results(tmp_path / "full"), _results(killed)
    assert full.keys() == again.keys() and len(full) >= 2
    for name in full:
        assert json.dumps(full[name], sort_keys=True) == json.dumps(again[name], sort_keys=True), name
