"""Only regular files are ever opened: a FIFO (or device) named like an image must not hang a command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
import pytest

from searcher import images
from searcher.api import duplicates as find_duplicates
from searcher.catalog import CatalogLocation
from searcher.errors import ImageError

from helpers import PHOTOS, call_with_timeout, copy_photos, run_ingest


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "x.jpg"
    os.mkfifo(path)
    return path


def run_cli(*args, timeout=60):
    try:
        return subprocess.run(
            [sys.executable, "-m", "searcher", *map(str, args)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"searcher {' '.join(map(str, args))} still running after {timeout} s (hangs)")


def test_reading_a_fifo_is_a_one_line_error_not_a_hang(fifo):
    """D5: images.read_bytes used to block forever in open()."""
    with pytest.raises(ImageError, match="not a regular file"):
        call_with_timeout(lambda: images.read_bytes(str(fifo)), 10, [fifo])


@pytest.mark.slow
def test_query_of_a_fifo_fails_in_one_line(fifo, tmp_path):
    """D5: `searcher query x.jpg` on a FIFO hung forever."""
    catalog = CatalogLocation(tmp_path / "catalog")
    run_ingest([copy_photos(tmp_path / "photos", 2)[0]], catalog)
    result = run_cli("query", fifo, "--catalog", catalog.directory)
    assert "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_compare_with_a_fifo_fails_in_one_line(fifo, tmp_path):
    """D5: `searcher compare x.jpg y.jpg` on a FIFO hung forever."""
    result = run_cli("compare", fifo, PHOTOS[0])
    assert result.returncode == 1
    assert "not a regular file" in result.stderr and "Traceback" not in result.stderr


def test_ingest_of_a_fifo_given_by_name_does_not_hang(fifo, tmp_path):
    """D5: a FIFO passed explicitly to ingest is reported, not opened."""
    summary = call_with_timeout(lambda: run_ingest([fifo], CatalogLocation(tmp_path / "catalog")), 30, [fifo])
    assert summary.counts()["added"] == 0


def test_video_hashing_refuses_a_fifo(tmp_path):
    """D5: a FIFO named clip.avi must not block the video path of ingest either."""
    from searcher.ingest_work import _hash_file

    path = tmp_path / "clip.avi"
    os.mkfifo(path)
    with pytest.raises(ImageError, match="not a regular file"):
        call_with_timeout(lambda: _hash_file(str(path)), 10, [path])


def test_dups_mirror_check_skips_a_catalogued_file_that_became_a_fifo(tmp_path):
    """D5: dups decodes files again for the mirror check; a file replaced by a FIFO hung it."""
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(PHOTOS[0].parent / "mate_Dune.jpg", folder / "dune.jpg")
    cv2.imwrite(str(folder / "dune_mirrored.jpg"), cv2.imread(str(folder / "dune.jpg"))[:, ::-1])
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([folder], location)
    fifos = [folder / "dune.jpg", folder / "dune_mirrored.jpg"]
    for path in fifos:
        path.unlink()
        os.mkfifo(path)
    call_with_timeout(lambda: find_duplicates(location, workers=1), 60, fifos)
