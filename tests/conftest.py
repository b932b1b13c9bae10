"""Shared fixtures: tiny real data, never mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real fixtures not found at {SHARED} (expected ../shared beside the clone)")
    return SHARED


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

    cfg = replace(PhantomClipConfig(), n_images=96, epochs=1, batch_size=32, max_seconds=60)
    root = tmp_path_factory.mktemp("cache")
    return cfg, root, ensure_phantom_clip(cfg, root=root, progress=False)
