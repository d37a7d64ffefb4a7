"""The page of ``mmkgrec serve`` in a real headless browser: Debian's chromium driven by
Playwright (no browser download). The test loads the page, picks a user, checks that the
recommendations shown are the API's (and the Run's), that posters and the history show, that a
click shows the API's similar items, and saves a screenshot (``$MMKGREC_SCREENSHOT`` names a
copy, e.g. docs/img/serve-page.jpg; ``$MMKGREC_SCREENSHOT_RUN`` serves that run, with its own
posters, instead of a short synthetic one). Skipped, saying why, only where no chromium is installed
(``make browser`` installs it) or Playwright is missing."""

import os
import shutil

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                    "'mmkgrec[serve]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

from helpers import ServedInThread, poster  # noqa: E402
from mmkgrec import api  # noqa: E402
from mmkgrec.serving.app import create_app  # noqa: E402

# what the workplace's closed network and a root user need (no sandbox, no background traffic)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def _browser_or_skip():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `make browser` installs Debian's chromium (needs root "
                    "and apt-get); the page's browser test cannot run without a browser")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test "
                        "extra: pip install 'mmkgrec[test]')")




@pytest.fixture
def server(tmp_path):
    """A uvicorn server in a thread on a free loopback port, serving a BPR run with posters for
    some items (the others show the placeholder)."""
    run_dir, posters = os.environ.get("MMKGREC_SCREENSHOT_RUN"), None
    if not run_dir:
        run_dir = tmp_path / "run"
        api.train("BPR", "synthetic", run_dir,
                  overrides={"show_progress": False, "threads": 1, "epochs": 3})
        posters = tmp_path / "posters"
        posters.mkdir()
        for i in range(0, 200, 2):
            poster(i, size=(120, 180)).save(posters / f"{i}.jpg")
    with ServedInThread(create_app(run_dir, images=posters)) as base:
        yield base, api.load(run_dir)


def drive(page, base: str, user: str, k: int, shot) -> dict:
    """Load the page, show ``user``'s top ``k``, click the first recommendation; returns what the
    page shows (item ids of each section) and saves a screenshot to ``shot``."""
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready]")
    page.fill("#user", user)
    page.fill("#k", str(k))
    page.click("#show")
    page.wait_for_selector(f"body[data-recs-for='{user}']")
    page.wait_for_selector(f"body[data-explained='{user}']", timeout=60_000)
    shown = {"recs": page.eval_on_selector_all("#recs .card", "els => els.map(e => e.dataset.item)"),
             "history": page.eval_on_selector_all("#history .card",
                                                  "els => els.map(e => e.dataset.item)")}
    page.click("#recs .card >> nth=0")
    page.wait_for_selector("body[data-similar-for]")
    shown["similar"] = page.eval_on_selector_all("#similar .card",
                                                 "els => els.map(e => e.dataset.item)")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    shown["posters_loaded"] = page.eval_on_selector_all(
        "#recs .card img", "els => els.map(e => e.naturalWidth > 0)")
    shown["why"] = page.eval_on_selector_all("#recs .card .why", "els => els.map(e => e.textContent)")
    shown["message"] = page.text_content("#message")
    page.screenshot(path=str(shot), full_page=True)
    return shown


def test_page_shows_the_apis_recommendations(server, tmp_path):
    _browser_or_skip()
    import httpx
    from playwright.sync_api import sync_playwright

    base, run = server
    user = str(run.dataset.user_ids[7])
    shot = tmp_path / "page.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            shown = drive(page, base, user, 8, shot)
        finally:
            browser.close()
    with httpx.Client(base_url=base) as c:
        recs = [e["item"] for e in c.get("/v1/recommend", params={"user": user, "k": 8}).json()["items"]]
        first = recs[0]
        sim = [e["item"] for e in c.get("/v1/similar", params={"item": first, "k": 10}).json()["items"]]
        hist = c.get("/v1/history", params={"user": user, "limit": 30}).json()
        explained = c.get("/v1/explain", params={"user": user, "item": first})
    assert shown["recs"] == recs == [i for i, _ in run.recommend(user, 8)]
    assert shown["similar"] == sim
    assert shown["history"] == [h["item"] for h in hist["items"]] and shown["history"]
    assert all(shown["posters_loaded"])  # files and placeholders alike
    assert explained.status_code == 200  # the page shows the API's explanation of the item
    assert shown["why"][0] == explained.json()["text"] and all(w.strip() for w in shown["why"]), shown["why"]
    assert not shown["message"] and not errors
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
    target = os.environ.get("MMKGREC_SCREENSHOT")
    if target:  # a .jpg keeps the README light
        from PIL import Image

        if target.lower().endswith((".jpg", ".jpeg")):
            Image.open(shot).convert("RGB").save(target, quality=85, optimize=True)
        else:
            shutil.copy(shot, target)
