"""Several processes on one catalog: two ingests of one folder (D18), ingests and queries and a
reindex at once (D6). The indexes always hold exactly the catalog's ok rows; every query finds
its own image. (bench/concurrency.py is the bigger, repeated version.)"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from helpers import PHOTOS, assert_no_traceback, cli

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.concurrency import check_consistency, run_round  # noqa: E402


def test_two_ingests_of_the_same_folder(tmp_path):
    """D18: two ingests of one folder at once raised IntegrityError on images.path."""
    import subprocess

    folder = tmp_path / "ph"
    folder.mkdir()
    for photo in PHOTOS[:12]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    command = [sys.executable, "-m", "searcher", "ingest", str(folder), "--catalog", str(catalog), "--signatures", "hist,mse", "--workers", "1"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [r.communicate(timeout=300) + (r.returncode,) for r in runs]
    for stdout, stderr, code in results:
        assert "Traceback" not in stderr and "IntegrityError" not in stderr, stderr
        assert code == 0 or "another ingest is running on this catalog" in stderr, stderr
    assert any(code == 0 for *_, code in results)
    assert check_consistency(catalog) == []


def test_ingests_queries_and_a_reindex_at_once(tmp_path):
    """D6: concurrent ingests/queries/reindex left indexes with fewer vectors than the catalog, marked current."""
    problems = run_round(tmp_path, photos=PHOTOS, per_folder=6, queries=4)
    assert problems == []
