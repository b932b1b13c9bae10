"""The suite's offline guard really refuses outside connections; the same seeds give bit-identical
ensembles, pattern banks and evaluation results on CPU."""

from __future__ import annotations

import json
import socket

import pytest
from safetensors.torch import load_file


def test_the_offline_guard_refuses_non_loopback_connections():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ConnectionRefusedError, match="offline"):
            s.connect(("93.184.216.34", 443))
        assert s.connect_ex(("8.8.8.8", 53)) == 111
    finally:
        s.close()


def test_subprocesses_run_behind_the_same_guard(_offline_socket_guard):
    import subprocess
    import sys

    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('93.184.216.34', 443)); print('connected')\n"
        "except ConnectionRefusedError as e:\n    print('refused', e)\n"
    )
    before = _offline_socket_guard.read_text().count("\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("refused") and "offline" in r.stdout, r.stdout + r.stderr
    lines = _offline_socket_guard.read_text().splitlines()
    assert len(lines) == before + 1 and "93.184.216.34" in lines[-1]


def _tensors_equal(a, b) -> bool:
    x, y = load_file(a), load_file(b)
    # bytes, not torch.equal: dead latents' scores are NaN, and NaN != NaN
    return set(x) == set(y) and all(x[k].numpy().tobytes() == y[k].numpy().tobytes() for k in x)


def test_same_seeds_give_bit_identical_models_banks_and_results(tiny_embedded, tmp_path):
    from lanic_hub.data.open import open_dataset
    from lanic_hub.patterns import BankConfig
    from lanic_hub.patterns.build import build_bank
    from lanic_hub.training import load_trained, train_from_embeddings

    emb = tiny_embedded / "emb"
    cfg = BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3)
    spec = json.loads((emb / "manifest.json").read_text())["data_spec"]
    banks = []
    for run in ("a", "b"):
        # 40 steps: bit-identity does not need the preset's 180 (the same code runs either way)
        train_from_embeddings(emb, tmp_path / run, n_members=3, steps=40, progress=False)
        _, ens = load_trained(tmp_path / run)
        bank = build_bank(ens, emb, open_dataset(spec), config=cfg, progress=False)
        bank.save(tmp_path / run)
        banks.append(bank)
    for f in ("classifier.safetensors", "ensemble.safetensors", "patterns.safetensors"):
        assert _tensors_equal(tmp_path / "a" / f, tmp_path / "b" / f), f
    a, b = (json.loads((tmp_path / r / "patterns.json").read_text()) for r in ("a", "b"))
    for d in (a, b):
        d["meta"].pop("seconds"), d["meta"].pop("phase_seconds")  # timings: never identical
    assert a == b
    fa, fb = (json.loads((tmp_path / r / "fidelity.json").read_text()) for r in ("a", "b"))
    for doc in (fa, fb):
        doc["classifier"].pop("seconds", None), doc["ensemble"].pop("seconds", None)
    assert fa["auroc"] == fb["auroc"] and fa["fidelity"] == fb["fidelity"]


def test_eval_results_are_identical_on_rerun(tiny_lanic_model, tmp_path, monkeypatch):
    from lanic_hub.evaluation.runner import run

    monkeypatch.setenv("LANIC_HUB_SMOKE", "1")  # the baselines' transcoder: 30 steps, not 180

    docs = []
    for r in ("a", "b"):
        run(
            [str(tiny_lanic_model)],
            "phantom",
            tmp_path / r,
            n_boot=20,
            progress=False,
            log=lambda *x: None,
            phantom_n=300,
        )
        files = sorted((tmp_path / r / "results" / "phantom").glob("*.json"))
        docs.append({f.name: json.loads(f.read_text()) for f in files})
    assert docs[0].keys() == docs[1].keys()
    for name in docs[0]:
        x, y = docs[0][name], docs[1][name]
        for doc in (x, y):
            doc.pop("seconds")
            doc["metrics"].pop("seconds", None)
            doc["dataset"].pop("spec")  # the run's own folder; the fingerprint stays compared
        assert json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True), name
