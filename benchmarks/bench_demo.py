"""The demo on the phantom quickstart model: explanation latency (target <= 1 s on 2 cores), measured
on the callback and through the HTTP API (gradio_client), medians of 10 warm calls; the Space under
load (LANIC_BENCH_DEMO_USERS concurrent gradio_client users on loopback, default 20, each making
LANIC_BENCH_DEMO_CALLS explain calls, default 3: p50 / p95 latency, errors, and the most calls in
flight at once against the queue's concurrency limit); the pattern search's latency; and, where
Debian's chromium and Playwright are installed, one screenshot of each tab into docs/.

    python -m benchmarks demo            # LANIC_BENCH_RUN=runs/quickstart
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: Free-text queries of the Patterns tab's search, timed one after the other.
QUERIES = ("chest tube", "blunted costophrenic angle", "enlarged heart", "pacemaker", "rotated patient")


def main() -> dict:
    from lanic_hub.demo import load_demo

    run = Path(os.environ.get("LANIC_BENCH_RUN", "runs/quickstart"))
    if not (run / "model" / "config.json").is_file():
        print(f"no LanIC model in {run / 'model'}: run `lanic-hub quickstart --out {run}` first (skipped)")
        return {"skipped": f"no LanIC model in {run / 'model'}"}
    demo = load_demo(str(run / "model"), build_if_missing=False)
    return measure_space(demo, demo.examples[0][0], "phantom quickstart model", screenshot_dir=Path("docs"))


def measure_space(demo, image: str, what: str, screenshot_dir: Path | None = None) -> dict:
    """The Space's figures for one loaded demo: explain latency on the callback and over HTTP
    (medians of 10 warm calls), pattern search latency (median over :data:`QUERIES`), and the
    load test (``LANIC_BENCH_DEMO_USERS`` x ``LANIC_BENCH_DEMO_CALLS``); screenshots of the tabs
    into ``screenshot_dir`` where given."""
    from lanic_hub.demo import build_app

    demo.explain(image, "Pleural Effusion")  # loads the backbone once
    demo.search("warm up", "all")  # and the sentence model and the search index
    direct = []
    for _ in range(10):
        t = time.perf_counter()
        demo.explain(image, "Pleural Effusion")
        direct.append(time.perf_counter() - t)
    search = []
    for q in QUERIES:
        t = time.perf_counter()
        demo.search(q, "all")
        search.append(time.perf_counter() - t)
    inflight = _count_in_flight(demo)
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
        n_pat = len(demo.model.bank)
        print(
            f"explain ({what}, bank of {n_pat} patterns, one image): "
            f"callback median {np.median(direct) * 1e3:.0f} ms, "
            f"through the HTTP API median {np.median(http) * 1e3:.0f} ms; target 1000 ms: "
            f"ratio {np.median(http) / 1.0:.2f}; pattern search median {np.median(search) * 1e3:.0f} ms "
            f"over {len(QUERIES)} queries"
        )
        users = int(os.environ.get("LANIC_BENCH_DEMO_USERS", 20))
        calls = int(os.environ.get("LANIC_BENCH_DEMO_CALLS", 3))
        load = load_test(url, "/explain", (handle_file(image), "Pleural Effusion"), users, calls)
        load["most_in_flight"] = inflight["max"]
        print(
            f"under load ({users} users x {calls} explain calls, bank of {n_pat} "
            f"patterns): p50 {load['p50_s']:.2f} s, p95 {load['p95_s']:.2f} s, {load['errors']} errors, "
            f"{load['wall_s']:.0f} s in all; at most {load['most_in_flight']} explain calls ran at once "
            "(queue concurrency limit 2)"
        )
        if screenshot_dir is not None:
            screenshots(url, image, screenshot_dir)
    finally:
        app.close()
    return {
        "callback_ms": float(np.median(direct) * 1e3),
        "http_ms": float(np.median(http) * 1e3),
        "search_ms": float(np.median(search) * 1e3),
        "search_queries": len(QUERIES),
        "patterns_in_bank": n_pat,
        "target_ms": 1000.0,
        "load": load,
        "concurrency_limit": 2,
    }


def _count_in_flight(demo) -> dict:
    """Wrap ``demo.explain`` (before the app binds it) to count the calls running at once: what
    the queue lets through, whatever the number of users."""
    import functools

    state, lock, inner = {"now": 0, "max": 0}, threading.Lock(), demo.explain

    @functools.wraps(inner)
    def explain(*args):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            return inner(*args)
        finally:
            with lock:
                state["now"] -= 1

    demo.explain = explain
    return state


def load_test(url: str, api_name: str, args: tuple, users: int, calls: int) -> dict:
    """``users`` concurrent gradio_client users (one Client each, as separate browsers are), each
    making ``calls`` calls of ``api_name`` one after the other. Returns every call's latency, the
    errors (type: message), and the p50 / p95 latency; a call counts from its submission, so the
    time spent queued behind other users is in it."""
    from gradio_client import Client

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(_: int) -> None:
        try:
            c = Client(url, verbose=False)
        except Exception as exc:  # noqa: BLE001 (a failed connection is a result of the test)
            with lock:
                errors.extend([f"connect: {type(exc).__name__}: {exc}"] * calls)
            return
        for _ in range(calls):
            t = time.perf_counter()
            try:
                c.predict(*args, api_name=api_name)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    wall = time.perf_counter() - t0
    q = np.percentile(lat, [50, 95]) if lat else [float("nan")] * 2
    return {
        "users": users,
        "calls_per_user": calls,
        "completed": len(lat),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_s": float(q[0]),
        "p95_s": float(q[1]),
        "max_s": float(max(lat)) if lat else float("nan"),
        "wall_s": wall,
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
