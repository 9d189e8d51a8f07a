"""Screenshots of the searcher serve page for the README: python docs/make_screenshots.py

Ingests sample_data into a temporary catalog, starts `searcher serve` on it, and drives Debian's
chromium (headless, through Playwright) over each view: search, duplicates, compare, catalog.
Writes docs/serve-*.png.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        catalog = Path(folder) / "catalog"
        subprocess.run([sys.executable, "-m", "searcher", "ingest", str(REPO / "sample_data"), "--catalog", str(catalog)], check=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "searcher", "serve", "--catalog", str(catalog), "--port", str(port), "--move-to", str(Path(folder) / "moved")])
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/api/settings", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            shoot(base)
        finally:
            server.terminate()
            server.wait(timeout=10)


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
        page.keyboard.press("j")
        page.keyboard.press("ArrowRight")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(600)  # the smooth scroll to the current group
        page.screenshot(path=str(DOCS / "serve-groups.png"))

        page.keyboard.press("c")
        page.wait_for_selector(".verdict")
        page.screenshot(path=str(DOCS / "serve-compare.png"))

        page.click("nav a[data-view=catalog]")
        page.fill("#ingest-path", str(REPO / "sample_data" / "copies"))
        page.click("#ingest-form button")
        page.wait_for_function("document.getElementById('job').textContent.includes('done')", timeout=120_000)
        page.wait_for_function("document.getElementById('info').textContent.length > 0")
        page.wait_for_timeout(600)  # the progress bar's transition
        page.screenshot(path=str(DOCS / "serve-catalog.png"))
        browser.close()


if __name__ == "__main__":
    main()
