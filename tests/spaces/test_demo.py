"""The demo: callbacks directly, every endpoint through gradio_client against a launched app, and
the page in a real headless browser (Debian's chromium driven by Playwright), with screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lanic_hub.demo import Demo, build_app, load_demo

SHOTS = Path(os.environ.get("LANIC_SCREENSHOTS", "test-screenshots"))


@pytest.fixture(scope="module")
def demo(tiny_lanic_model, shared_data) -> Demo:
    os.environ["LANIC_NIH_EXAMPLES"] = str(shared_data / "cxr_real")
    return load_demo(str(tiny_lanic_model))


@pytest.fixture(scope="module")
def image(shared_data) -> str:
    return str(next((shared_data / "cxr_real" / "images").glob("*.png")))


def test_callbacks_explain_and_what_if_are_exact(demo, image):
    probs, fig, cards, choices, status = demo.explain(image, "Pleural Effusion")
    assert set(probs) == set(demo.model.config.findings) and fig is not None and "logit" in status
    ex = demo.model.explain(image)
    f = ex["Pleural Effusion"]
    assert probs["Pleural Effusion"] == pytest.approx(f.probability)
    off = choices["choices"][:2]
    after, msg = demo.what_if(image, off)
    import math

    ids = {int(s.split(":")[0]) for s in off}
    for g in ex.findings:  # switching patterns off moves each logit by exactly their contributions
        want = g.logit - sum(p.contribution for p in g.patterns if p.pattern in ids)
        assert after[g.finding] == pytest.approx(1 / (1 + math.exp(-want)), abs=1e-6)
    assert "Logit changes" in msg or not off
    # each shown pattern's gallery is its one strip file in the model folder (phantoms: allowed)
    import re

    shown = re.findall(r'src="/gradio_api/file=([^"]+)"', cards)
    assert shown and all(Path(f).is_file() and Path(f).parent.name == "thumbnails" for f in shown)
    rows = demo.search("", "all")
    assert len(rows) == min(25, len(demo.model.patterns))
    cat = demo.model.patterns[0].category
    assert all(r[2] == cat for r in demo.search("effusion", cat))


def test_removing_a_concept_in_the_demo_gives_the_changed_models_figures(demo, image):
    import math

    choices = demo.concept_choices()
    assert choices and set(choices) == set(demo.model.concepts.names)
    concept = choices[0]
    probs, status = demo.remove_concept(image, concept)
    changed = demo.model.without(concepts=[concept])
    from lanic_hub.explain import decomposition_by_pattern

    m = demo.model
    e = m.embed_images([image])
    k = m.concepts.keys.index(changed.removal.concepts[0])
    d = decomposition_by_pattern(m.classifier, m.ensemble, m.bank, e, concepts=m.concepts)
    ex1 = changed.explain(image)
    for c, b in enumerate(ex1.findings):  # the logit loses exactly the concept's part
        part = float(d.concept.concepts[0, k, c])
        assert b.removed == pytest.approx(part, abs=1e-5)
        want = float(d.logits[0, c]) - part
        assert probs[b.finding] == pytest.approx(1 / (1 + math.exp(-want)), abs=1e-5)
    # the AUROCs before and after, on the model's own test embeddings (here: they are on disk)
    assert f"**Without '{concept}'**" in status and "| finding | before | after |" in status
    assert f'lanic-hub remove --model MODEL --concept "{concept}"' in status
    assert demo.model.config.removed is None  # the served model itself is not changed
    assert "Cannot remove it: unknown concept" in demo.remove_concept(image, "no such thing")[1]


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"not an image at all", "Cannot read this upload"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "Cannot read this upload"),
    ],
)
def test_bad_uploads_are_messages_not_crashes(demo, tmp_path, payload, words):
    p = tmp_path / "upload.png"
    p.write_bytes(payload)
    assert words in demo.explain(str(p), "Edema")[4]
    assert words in demo.predict(str(p))[1]
    assert "No image" in demo.predict(None)[1]


def test_a_dicom_without_pixels_a_bomb_and_a_16_bit_png(demo, shared_data, tmp_path):
    import numpy as np
    import pydicom
    from PIL import Image

    ds = pydicom.dcmread(next((shared_data / "cxr_real" / "dicom").glob("*.dcm")))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    assert "Cannot read this upload" in demo.predict(str(tmp_path / "nopixels.dcm"))[1]
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")  # 81 megapixels, a few kB on disk
    assert "pixel" in demo.predict(str(tmp_path / "bomb.png"))[1]
    arr = (np.linspace(0, 65535, 128 * 128).reshape(128, 128)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "sixteen.png")
    probs, status = demo.predict(str(tmp_path / "sixteen.png"))
    # a synthetic gradient is read, and said to be unlike the training images
    assert len(probs) == 5 and (status == "ok" or status.startswith("⚠ WARNING: this image is unlike"))


@pytest.fixture(scope="module")
def served(demo):
    app = build_app(demo)
    app.queue(default_concurrency_limit=2)
    _, url, _ = app.launch(
        prevent_thread_lock=True, server_port=None, quiet=True, allowed_paths=[str(demo.model.folder)]
    )
    yield url
    app.close()


def test_every_endpoint_through_gradio_client(served, demo, image, tmp_path):
    from gradio_client import Client, handle_file

    c = Client(served, verbose=False)
    label, status = c.predict(handle_file(image), api_name="/predict")
    assert status == "ok" and {x["label"] for x in label["confidences"]} >= {"Edema", "Cardiomegaly"}
    out = c.predict(handle_file(image), "Cardiomegaly", api_name="/explain")
    assert "Cardiomegaly: logit" in out[-1]
    choices = [ch[0] if isinstance(ch, (list, tuple)) else ch for ch in out[3]["choices"]]
    wl, ws = c.predict(handle_file(image), choices[:1], api_name="/what_if")
    assert wl["confidences"] and ("Logit changes" in ws or not choices)
    concept = demo.concept_choices()[0]
    rl, rs = c.predict(handle_file(image), concept, api_name="/remove_concept")
    assert rl["confidences"] and "before" in rs
    table = c.predict("chest tube", "all", api_name="/search")
    assert table["data"] and len(table["headers"]) == 6
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nonsense")
    _, status = c.predict(handle_file(str(bad)), api_name="/predict")
    assert "Cannot read this upload" in status
    # concurrent requests do not mix up results
    jobs = [c.submit(handle_file(p), api_name="/predict") for p in (image, str(bad), image)]
    results = [j.result()[1] for j in jobs]
    assert results[0] == "ok" and "Cannot read" in results[1] and results[2] == "ok"


def test_the_space_under_load_answers_everyone_and_holds_its_queue(demo, image):
    """The benchmark's load test at test size: 6 concurrent gradio_client users x 2 explain calls
    against the app as the Space builds it (queue limit 2). Every call is answered with the
    finding's logit; no more than 2 explanations ever run at once."""
    from gradio_client import handle_file

    from benchmarks.bench_demo import _count_in_flight, load_test

    inflight = _count_in_flight(demo)
    try:
        app = build_app(demo)
        app.queue(default_concurrency_limit=2)
        _, url, _ = app.launch(prevent_thread_lock=True, quiet=True, allowed_paths=[str(demo.model.folder)])
        try:
            r = load_test(url, "/explain", (handle_file(image), "Edema"), users=6, calls=2)
        finally:
            app.close()
    finally:
        del demo.explain  # the class's method again
    assert r["errors"] == 0, r["first_errors"]
    assert r["completed"] == 12
    assert 1 <= inflight["max"] <= 2 and inflight["now"] == 0
    assert 0 < r["p50_s"] <= r["p95_s"] <= r["max_s"] <= r["wall_s"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_in_a_headless_browser(served, image):
    exe = _chromium()
    if exe is None:
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt where it can)")
    pw = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install '.[dev]')"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        page = browser.new_page(viewport={"width": 1300, "height": 1100})
        page.goto(served, wait_until="networkidle")
        assert "Not a medical device" in page.content()
        page.set_input_files("input[type=file]", image)
        page.get_by_role("button", name="Explain").click()
        page.get_by_text("logit", exact=False).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        assert "Pleural Effusion" in body and "Cardiomegaly" in body
        assert page.locator(".js-plotly-plot, canvas, img, svg").count() > 0
        page.screenshot(path=str(SHOTS / "demo_explain.png"), full_page=True)
        # remove a concept from the model: the changed model's figures appear beside "what if"
        page.get_by_text("Remove a concept from the model").first.click()
        page.get_by_label("Concept to leave out (e.g. a device)").click()
        page.get_by_role("option").first.click()
        page.get_by_role("button", name="Remove this concept from the model").click()
        page.get_by_text("Without '", exact=False).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        assert "before" in page.inner_text("body")
        page.screenshot(path=str(SHOTS / "demo_remove.png"), full_page=True)
        page.get_by_role("tab", name="Patterns").click()
        page.wait_for_timeout(800)
        assert "support" in page.inner_text("body")
        page.screenshot(path=str(SHOTS / "demo_patterns.png"), full_page=True)
        page.get_by_role("tab", name="Leaderboard").click()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SHOTS / "demo_leaderboard.png"), full_page=True)
        browser.close()
    assert (SHOTS / "demo_explain.png").stat().st_size > 20_000


def test_fuzzed_uploads_are_predictions_or_messages(demo, tmp_path):
    """The Space's upload path under hypothesis: damaged PNG/JPEG/DICOM bytes and random bytes,
    under any extension, give five probabilities or a 'Cannot read' message, never a traceback."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.data.test_image_fuzz import damaged

    findings = set(demo.model.config.findings)

    @given(damaged() | st.binary(max_size=300), st.sampled_from([".png", ".jpg", ".dcm", ""]))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def upload(data, ext):
        p = tmp_path / f"upload{ext}"
        p.write_bytes(data)
        probs, msg = demo.predict(str(p))
        read = msg == "ok" or msg.startswith("⚠ WARNING: this image is unlike")  # read, and flagged
        if read:
            assert set(probs) == findings and all(0.0 <= v <= 1.0 for v in probs.values())
        else:
            assert msg.startswith(("Cannot read this upload", "No image")) and probs == {}
        out = demo.explain(str(p), demo.model.config.findings[0])
        assert ("logit" in out[4]) == read, out[4]
        assert "logit" in out[4] or out[4].startswith("Cannot read this upload")

    upload()


def test_a_pattern_card_says_what_supports_its_report_name():
    from lanic_hub.demo import _support_text
    from lanic_hub.patterns import Pattern
    from lanic_hub.patterns.naming import ConceptSupport

    base = {"id": 3, "name": "chest tube", "category": "device", "support": 1, "members": [[0, 1]]}
    sparse = ConceptSupport("chest_tube", "gallery", 0.85, 12.5, None, True).to_dict()
    p = Pattern.from_dict({**base, "named": True, "name_support": sparse})
    assert (
        _support_text(p) == "name kept: 85% of its gallery's reports state chest tube (12.5x the base rate)"
    )
    graded = ConceptSupport("pleural_effusion", "graded", None, None, 0.84, False).to_dict()
    q = Pattern.from_dict({**base, "named": False, "dense": True, "name_support": graded})
    assert _support_text(q) == "name withheld: its magnitude ranks reports of pleural effusion at AUROC 0.84"
