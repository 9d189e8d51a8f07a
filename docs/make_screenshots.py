"""Screenshots of the searcher serve page for the README: python docs/make_screenshots.py

Ingests sample_data into a temporary catalog, starts `searcher serve` on it, and drives Debian's
chromium (headless, through Playwright) over each view: search, duplicates, compare, catalog.
Writes docs/serve-*.png. serve-video.png is of a catalog of two synthetic videos (the tests' own:
a figure walking over a photo, sampled with --every 5 --people), queried with the walker cut out of a frame.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        catalog = Path(folder) / "catalog"
        subprocess.run(
            [sys.executable, "-m", "searcher", "ingest", str(REPO / "sample_data"), "--catalog", str(catalog)], check=True
        )
        with served(catalog, Path(folder) / "moved") as base:
            shoot(base)
    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, str(REPO / "tests"))
        import cv2
        from test_video import two_scene_frames, walker_frames, write_video

        videos = Path(folder) / "videos"
        videos.mkdir()
        write_video(videos / "walker.avi", walker_frames())
        write_video(videos / "two scenes.avi", two_scene_frames())
        catalog = Path(folder) / "catalog"
        ingest = [
            sys.executable,
            "-m",
            "searcher",
            "ingest",
            str(videos),
            "--catalog",
            str(catalog),
            "--every",
            "5",
            "--people",
            "--signatures",
            "hist,mse,orb",
        ]
        subprocess.run(ingest, check=True)
        query = Path(folder) / "person in frame 31.png"
        cv2.imwrite(str(query), walker_frames()[31][70:180, 120:180])  # the walker and a little background
        with served(catalog, Path(folder) / "moved") as base:
            shoot_video(base, query)


@contextmanager
def served(catalog: Path, moved: Path):
    """`searcher serve` on a free port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "searcher", "serve", "--catalog", str(catalog), "--port", str(port), "--move-to", str(moved)]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/settings", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def shoot_video(base: str, query: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--headless=new"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(base + "/")
        page.fill("#top", "18")
        page.set_input_files("#file", str(query))
        page.wait_for_selector("#results .card")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(DOCS / "serve-video.png"))
        browser.close()


def shoot(base: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--headless=new"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(base + "/")
        page.set_input_files("#file", str(REPO / "sample_data" / "copies" / "lomiri_Bridge_by_Sander_Klootwijk__resize50.jpg"))
        page.wait_for_selector("#results .card")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(DOCS / "serve-search.png"))

        page.click("nav a[data-view=groups]")
        page.wait_for_selector(".group")
        page.keyboard.press("ArrowRight")  # pick the second copy of the first group
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(600)  # the smooth scroll to the current group
        page.screenshot(path=str(DOCS / "serve-groups.png"))

        page.keyboard.press("c")
        page.wait_for_selector(".verdict")
        page.screenshot(path=str(DOCS / "serve-compare.png"))

        page.click("nav a[data-view=catalog]")
        page.fill("#ingest-path", str(REPO / "sample_data" / "copies"))
        page.click("#ingest-form button")
        expect(page.locator("#job")).to_contain_text("done", timeout=120_000)  # (no string eval: the page's CSP forbids it)
        expect(page.locator("#info")).to_contain_text("schema")
        page.wait_for_timeout(600)  # the progress bar's transition
        page.screenshot(path=str(DOCS / "serve-catalog.png"))
        browser.close()


if __name__ == "__main__":
    main()
