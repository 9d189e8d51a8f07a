"""Several processes on one catalog: two ingests of one folder (D18), ingests and queries and a
reindex at once (D6). The indexes always hold exactly the catalog's ok rows; every query finds
its own image. (bench/concurrency.py is the bigger, repeated version.)"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from helpers import PHOTOS

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.concurrency import check_consistency, run_round  # noqa: E402


def test_ingests_of_the_same_folder_at_once(tmp_path):
    """D18: ingests of one folder at once raised IntegrityError on images.path (and, on a new
    catalog, "table alembic_version already exists" from two schema creations)."""
    import subprocess

    folder = tmp_path / "ph"
    folder.mkdir()
    for photo in PHOTOS[:12]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    command = [
        sys.executable,
        "-m",
        "searcher",
        "ingest",
        str(folder),
        "--catalog",
        str(catalog),
        "--signatures",
        "hist,mse",
        "--workers",
        "1",
    ]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [r.communicate(timeout=300) + (r.returncode,) for r in runs]
    for _stdout, stderr, code in results:
        assert "Traceback" not in stderr and "IntegrityError" not in stderr, stderr
        assert code == 0, stderr  # the later ones wait for the first
    assert sum(int(stdout.split()[0]) for stdout, *_ in results) == 12  # added once, in all
    assert check_consistency(catalog) == []


class _SecondIngestInTheMiddle:
    """An ingest reporter that, once the first ingest has planned its work (start), runs a second
    ingest of the same folder and lets the first go on only when that one finished or is waiting."""

    def __init__(self, folder, catalog, log):
        self.command = [
            sys.executable,
            "-m",
            "searcher",
            "ingest",
            str(folder),
            "--catalog",
            str(catalog),
            "--signatures",
            "hist,mse,orb",
            "--workers",
            "1",
        ]
        self.log = log
        self.other = None

    def start(self, total):
        import subprocess
        import time

        self.other = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        deadline = time.monotonic() + 120
        while self.other.poll() is None and time.monotonic() < deadline:
            if "waiting for" in Path(self.log).read_text():
                return
            time.sleep(0.2)

    def advance(self, n=1): ...
    def warn(self, message): ...
    def failed(self, path, reason): ...


def test_a_second_ingest_between_the_first_ones_plan_and_apply(tmp_path):
    """D18: a second ingest of one folder started while the first has planned its work (its paths
    new) but written nothing waits for the first; both end without error and the catalog is
    consistent. (A guard: this ordering did not fail before the lock; the three-at-once test did.)"""
    from searcher.catalog import CatalogLocation

    from helpers import copy_photos, run_ingest

    folder = tmp_path / "ph"
    copy_photos(folder, 10)
    catalog = tmp_path / "catalog"
    reporter = _SecondIngestInTheMiddle(folder, catalog, tmp_path / "second.log")
    summary = run_ingest([folder], CatalogLocation(catalog), reporter)
    stdout, _ = reporter.other.communicate(timeout=300)
    log = (tmp_path / "second.log").read_text()
    assert reporter.other.returncode == 0 and "Traceback" not in log, log
    assert summary.added + int(stdout.split()[0]) == 10
    assert check_consistency(catalog) == []


def test_ingests_queries_and_a_reindex_at_once(tmp_path):
    """D6: concurrent ingests/queries/reindex left indexes with fewer vectors than the catalog, marked current."""
    problems = run_round(tmp_path, photos=PHOTOS, per_folder=6, queries=4)
    assert problems == []
