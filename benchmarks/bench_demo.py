"""The demo on the phantom quickstart model: explanation latency (target <= 1 s on 2 cores), measured
on the callback and through the HTTP API (gradio_client), medians of 10 warm calls; and, where
Debian's chromium and Playwright are installed, one screenshot of each tab into docs/.

    python -m benchmarks demo            # LANIC_BENCH_RUN=runs/quickstart
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np


def main() -> dict:
    from lanic_hub.demo import build_app, load_demo

    run = Path(os.environ.get("LANIC_BENCH_RUN", "runs/quickstart"))
    if not (run / "model" / "config.json").is_file():
        print(f"no LanIC model in {run / 'model'}: run `lanic-hub quickstart --out {run}` first (skipped)")
        return {"skipped": f"no LanIC model in {run / 'model'}"}
    demo = load_demo(str(run / "model"), build_if_missing=False)
    image = demo.examples[0][0]
    demo.explain(image, "Pleural Effusion")  # loads the backbone once
    demo.search("warm up", "all")  # and the sentence model
    direct = []
    for _ in range(10):
        t = time.perf_counter()
        demo.explain(image, "Pleural Effusion")
        direct.append(time.perf_counter() - t)
    app = build_app(demo)
    app.queue(default_concurrency_limit=2)
    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True, allowed_paths=[str(demo.model.folder)])
    try:
        from gradio_client import Client, handle_file

        c = Client(url, verbose=False)
        c.predict(handle_file(image), "Pleural Effusion", api_name="/explain")
        http = []
        for _ in range(10):
            t = time.perf_counter()
            c.predict(handle_file(image), "Pleural Effusion", api_name="/explain")
            http.append(time.perf_counter() - t)
        print(
            "explain (phantom quickstart model, one image): "
            f"callback median {np.median(direct) * 1e3:.0f} ms, "
            f"through the HTTP API median {np.median(http) * 1e3:.0f} ms; target 1000 ms: "
            f"ratio {np.median(http) / 1.0:.2f}"
        )
        screenshots(url, image, Path("docs"))
    finally:
        app.close()
    return {
        "callback_ms": float(np.median(direct) * 1e3),
        "http_ms": float(np.median(http) * 1e3),
        "target_ms": 1000.0,
    }


def screenshots(url: str, image: str, out: Path) -> None:
    exe = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        print("no chromium / playwright: screenshots skipped")
        return
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        page = b.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(url, wait_until="networkidle")
        page.set_input_files("input[type=file]", image)
        page.get_by_role("button", name="Explain").click()
        page.get_by_text("items carry 90%", exact=False).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "demo_explain.png"), full_page=True)
        page.get_by_role("tab", name="Patterns").click()
        page.get_by_placeholder("e.g. blunted costophrenic angle").fill("chest tube")
        page.keyboard.press("Enter")
        page.wait_for_timeout(500)
        page.wait_for_function("!document.body.innerText.includes('processing')", timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "demo_patterns.png"), full_page=True)
        page.get_by_role("tab", name="Leaderboard").click()
        page.wait_for_timeout(800)
        page.screenshot(path=str(out / "demo_leaderboard.png"), full_page=True)
        b.close()
    print(f"screenshots: {out}/demo_explain.png, demo_patterns.png, demo_leaderboard.png")


if __name__ == "__main__":
    main()
