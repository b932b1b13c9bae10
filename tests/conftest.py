"""Shared fixtures: tiny real data, never mocks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real fixtures (shared/data): $LANIC_SHARED_DATA, else ../shared/data beside the clone."""
    from lanic_hub.utils.fixtures import missing_message, shared_data_dir

    found = shared_data_dir()
    if found is None:
        pytest.skip(missing_message())
    return found


@pytest.fixture(scope="session")
def tiny_biomedclip(tmp_path_factory):
    """A tiny open_clip model in BiomedCLIP's Hub layout: (folder, tiny BERT folder, state dict)."""
    from .tiny_models import build_tiny_biomedclip

    return build_tiny_biomedclip(tmp_path_factory.mktemp("tiny-biomedclip"))


@pytest.fixture(scope="session")
def phantom_export(tmp_path_factory):
    """40 phantoms exported once in both forms."""
    from lanic_hub.data.phantom import PhantomConfig, export

    out = tmp_path_factory.mktemp("phantoms")
    paths = export(out, 40, seed=3, cfg=PhantomConfig(), progress=False)
    return paths


@pytest.fixture(scope="session")
def tiny_phantom_clip(tmp_path_factory):
    """A phantom CLIP trained for one short epoch: the real training code, at a tiny size."""
    from dataclasses import replace

    from lanic_hub.backbone.phantom_clip import PhantomClipConfig, ensure_phantom_clip

    cfg = replace(
        PhantomClipConfig(),
        n_images=96,
        epochs=1,
        batch_size=32,
        check_train=120,
        check_test=80,
        min_probe_auroc=0.0,  # a 3-step model is not calibrated; the probe still runs and is recorded
    )
    root = tmp_path_factory.mktemp("cache")
    return cfg, root, ensure_phantom_clip(cfg, root=root, progress=False)


@pytest.fixture(scope="session")
def tiny_embedded(tiny_phantom_clip, tmp_path_factory):
    """300 phantoms (findings twice as common) embedded by the tiny phantom CLIP."""
    from lanic_hub.backbone import load_backbone
    from lanic_hub.backbone.embed import embed_dataset
    from lanic_hub.data.phantom import PhantomConfig, export, load_phantom_dataset

    root = tmp_path_factory.mktemp("train")
    world = PhantomConfig(prevalence_scale=2.0, split_fractions=(0.6, 0.2, 0.2))
    hf = export(root / "ph", 300, seed=4, cfg=world, mimic=False, progress=False)["hf"]
    bb = load_backbone(f"local-dir:{tiny_phantom_clip[2]}")
    embed_dataset(
        load_phantom_dataset(hf),
        bb,
        root / "emb",
        num_workers=0,
        text=False,
        progress=False,
        data_spec=f"hf:{hf}",
    )
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_embedded):
    """A trained classifier + 8-member ensemble with its pattern bank, at a tiny size (a 1-epoch
    backbone's members agree less than real ones: merge thresholds are loosened to 0.3)."""
    from lanic_hub.patterns import BankConfig
    from lanic_hub.stages import build_patterns
    from lanic_hub.training import train_from_embeddings

    out = tiny_embedded / "bank-model"
    train_from_embeddings(tiny_embedded / "emb", out, n_members=8, progress=False)
    build_patterns(
        out,
        tiny_embedded / "emb",
        config=BankConfig(min_support=2, gallery_size=5, cos_threshold=0.3, corr_threshold=0.3),
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def tiny_lanic_model(tiny_model, tmp_path_factory):
    """The tiny model as a LanIC model folder, written by the pipeline's export (card included)."""
    import json

    from lanic_hub.data.open import open_dataset
    from lanic_hub.pipeline import ModelOptions, export_model
    from lanic_hub.records import TrainingReport

    bank = json.loads((tiny_model / "patterns.json").read_text())
    spec = json.loads((tiny_model.parent / "emb" / "manifest.json").read_text())["data_spec"]
    report = TrainingReport.read(tiny_model)
    out = tmp_path_factory.mktemp("lanic") / "model"
    export_model(tiny_model, out, open_dataset(spec), ModelOptions(repo_id="lanic-test/tiny-lanic"), report)
    assert (
        bank["meta"]["counts"]["selected"]
        == json.loads((out / "patterns.json").read_text())["meta"]["counts"]["selected"]
    )
    return out


NETWORK_ATTEMPTS: list[str] = []
SUBPROCESS_LOG: list[Path] = []
GUARD_DIR = Path(__file__).parent / "offline_guard"


@pytest.fixture(autouse=True, scope="session")
def _offline_socket_guard(tmp_path_factory):
    """The suite runs offline: a connection to anything but loopback (or a local socket file) is
    refused and recorded, here and in every Python subprocess the tests start (``PYTHONPATH``
    carries ``offline_guard/sitecustomize.py``), so a Hub call, analytics or telemetry fails where
    it happens."""
    sys.path.insert(0, str(GUARD_DIR))
    from lanic_offline_guard import install, uninstall

    log = tmp_path_factory.mktemp("offline") / "subprocess-attempts.tsv"
    log.touch()
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "LANIC_OFFLINE_GUARD", "LANIC_OFFLINE_LOG")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD_DIR), saved["PYTHONPATH"]]))
    os.environ["LANIC_OFFLINE_GUARD"], os.environ["LANIC_OFFLINE_LOG"] = "1", str(log)
    install(record=NETWORK_ATTEMPTS)
    SUBPROCESS_LOG.append(log)
    yield log
    uninstall()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pytest_terminal_summary(terminalreporter):
    for log in SUBPROCESS_LOG:
        if log.is_file():
            NETWORK_ATTEMPTS.extend(f"subprocess {ln}" for ln in log.read_text().splitlines())
    if NETWORK_ATTEMPTS:
        terminalreporter.write_line(
            f"offline guard: {len(NETWORK_ATTEMPTS)} non-loopback connection attempt(s) refused: "
            f"{sorted(set(NETWORK_ATTEMPTS))[:5]}"
        )
