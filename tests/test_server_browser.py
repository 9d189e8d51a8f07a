"""searcher serve in a real browser: Playwright driving Debian's chromium against a served catalog.

Starts `searcher serve` in a subprocess on a free port, searches by upload, opens the duplicate
groups, marks one "not duplicates" with the keyboard, and checks the page and the catalog. The
browser is the system's (apt-get install chromium), never a download by Playwright.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'searcher[serve]'")

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="document.title=1">.jpg'  # a file name that must show as text


def _browser_or_skip():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not os.path.exists(CHROMIUM):
        print(f"\nskipping the browser test: {CHROMIUM} is missing (apt-get install -y chromium)", file=sys.stderr)
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    return sync_playwright, expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """(base url, library, catalog folder) of a `searcher serve` subprocess; stopped afterwards."""
    library_root = tmp_path / "lib"
    library_root.mkdir()
    shutil.copytree(Path(__file__).resolve().parents[1] / "sample_data" / "photos", library_root / "library" / "photos")
    shutil.copy(library_root / "library" / "photos" / "mate_Aqua.jpg", library_root / "library" / "photos" / HOSTILE)
    _, location = make_library_from(library_root)
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "searcher",
            "serve",
            "--catalog",
            str(location.directory),
            "--port",
            str(port),
            "--move-to",
            str(tmp_path / "moved"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/settings", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"searcher serve exited: {process.stdout.read()}")
                time.sleep(0.1)
        yield base, library_root / "library", location
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def make_library_from(root: Path):
    import searcher

    with searcher.Catalog.open(root / "catalog") as catalog:
        catalog.ingest([root / "library"], searcher.IngestOptions(workers=1, signatures=("hist", "mse", "orb")))
        return root / "library", catalog.location


def test_search_open_a_group_and_mark_it_not_duplicates(server):
    sync_playwright, expect = _browser_or_skip()
    base, library, location = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            title = page.title()

            # search by upload: the photo and its byte-identical hostile-named twin come first
            page.set_input_files("#file", str(library / "photos" / "mate_Aqua.jpg"))
            page.wait_for_selector("#results .card")
            cards = page.locator("#results .card")
            assert cards.count() == 12  # the page asks for 12
            names = page.locator("#results .card .meta").all_inner_texts()
            assert "mate_Aqua.jpg" in names and HOSTILE in names  # the hostile name is text...
            assert page.locator("#results img[src='x']").count() == 0  # ...not an element
            assert page.locator("#results .card.dup").count() >= 2  # green: near duplicates
            assert page.locator("#results .card").first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
            assert "near duplicate" in page.locator("#results .card").first.inner_text()

            # the groups view: the Aqua pair is a group; move to it with j and mark it with i
            page.click("nav a[data-view=groups]")
            page.wait_for_selector(".group")
            groups = page.locator(".group")
            target = next(k for k in range(groups.count()) if HOSTILE in groups.nth(k).inner_text())
            group_id = groups.nth(target).get_attribute("data-group")
            for _ in range(target):
                page.keyboard.press("j")
            assert page.locator(".group.current").get_attribute("data-group") == group_id
            page.keyboard.press("i")
            page.wait_for_selector(f".group.done[data-group='{group_id}']")
            assert "not duplicates" in page.locator(f".group[data-group='{group_id}']").inner_text()
            assert "marked not duplicates" in page.locator("#status").inner_text()

            # reloading the view: the group is gone, and counted as ignored
            page.click("#groups-reload")
            expect(page.locator("#groups-summary")).to_contain_text("marked not duplicates", timeout=120_000)
            assert page.locator(f".group[data-group='{group_id}']").count() == 0
            assert page.title() == title and not errors
        finally:
            browser.close()
    import searcher

    with searcher.Catalog.open(location, create=False) as catalog:
        assert group_id in catalog.store.ignored_group_ids()
