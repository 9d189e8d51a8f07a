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


# ---- running the command line as a user would ----

import subprocess  # noqa: E402
import sys  # noqa: E402


def cli(*args, timeout: float = 120, env=None, input=None, cwd=None, **popen):
    """`python -m searcher ARGS` in a subprocess; stdout/stderr decoded as UTF-8 with surrogateescape
    (what a terminal would receive, byte for byte). A run past `timeout` fails the test as a hang."""
    command = [sys.executable, "-m", "searcher", *(a if isinstance(a, bytes) else str(a) for a in args)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, env=env, input=input, cwd=cwd, **popen)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"searcher {' '.join(map(str, args))} still running after {timeout} s (hangs)") from None
    done.stdout = done.stdout.decode("utf-8", "surrogateescape")
    done.stderr = done.stderr.decode("utf-8", "surrogateescape")
    return done


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]


def assert_one_line_error(result, *fragments: str, code: int = 1) -> str:
    """The run failed with exit `code` and exactly one `error:` line holding every fragment
    (for code 2, a usage error shown by typer: its panel names the problem)."""
    assert_no_traceback(result)
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    if code == 2 and "Usage:" in result.stderr:
        flat = " ".join(result.stderr.replace("│", " ").split())
        assert all(" ".join(f.split()) in flat for f in fragments), (fragments, flat)
        return flat
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def cli_ingest(folder, catalog, *extra, **kw):
    result = cli("ingest", folder, "--catalog", catalog, "--signatures", ",".join(SIGNATURES), "--workers", "1", *extra, **kw)
    assert_no_traceback(result)
    return result
