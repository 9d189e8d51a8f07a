"""Shared bits of the adversarial tests: a small library of real photos and a bounded call."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from searcher.api import ingest
from searcher.catalog import CatalogLocation
from searcher.ingest import IngestOptions

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
PHOTOS = sorted((SAMPLE / "photos").glob("*.jpg"))
SIGNATURES = ("hist", "mse", "orb")  # no ae: fast, and independent of the installed weights


def copy_photos(folder: Path, n: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for photo in PHOTOS[start : start + n]:
        shutil.copy2(photo, folder / photo.name)
        out.append(folder / photo.name)
    return out


def run_ingest(paths, location: CatalogLocation, reporter=None, **options):
    options.setdefault("workers", 1)
    options.setdefault("signatures", SIGNATURES)
    return ingest([str(p) for p in paths], location, IngestOptions(**options), reporter)


def call_with_timeout(fn, seconds: float, fifos=()):
    """fn() in a thread; fails the test (instead of hanging it) when it is still running after `seconds`.

    A reader blocked on opening a FIFO is released by opening its write end, so a hung call
    does not outlive the test."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 (re-raised in the test's thread)
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(10)
        raise AssertionError(f"still running after {seconds} s (hangs)")
    if "error" in box:
        raise box["error"]
    return box.get("value")
