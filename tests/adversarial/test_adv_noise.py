"""What a user reads on stderr (D29, second half): no raw library warnings, files given by name
that are not images are mentioned, and a stray temporary file is not part of the catalog's size."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from helpers import PHOTOS, assert_no_traceback, cli, cli_ingest

pytestmark = pytest.mark.slow


def test_libjpeg_warnings_do_not_reach_stderr_raw(tmp_path):
    """D29: "Corrupt JPEG data: 2 extraneous bytes before marker 0xd9" came straight from libjpeg."""
    folder = tmp_path / "ph"
    folder.mkdir()
    data = PHOTOS[0].read_bytes()
    assert data.endswith(b"\xff\xd9")
    (folder / "extra.jpg").write_bytes(data[:-2] + b"\x00\x00\xff\xd9")
    result = cli_ingest(folder, tmp_path / "catalog")
    assert result.returncode == 0
    assert "1 added" in result.stdout
    assert "Corrupt JPEG data" not in result.stderr
    query = cli("query", folder / "extra.jpg", "--catalog", tmp_path / "catalog", "--top", "1")
    assert query.returncode == 0 and "Corrupt JPEG data" not in query.stderr
    compare = cli("compare", folder / "extra.jpg", PHOTOS[0])
    assert compare.returncode == 0 and "Corrupt JPEG data" not in compare.stderr


def test_files_given_by_name_that_are_not_images_are_mentioned(tmp_path):
    """D29: `searcher ingest x.gif notes.txt` ignored them without a word."""
    gif, txt = tmp_path / "x.gif", tmp_path / "notes.txt"
    gif.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    txt.write_text("hello")
    photo = tmp_path / "p.jpg"
    shutil.copy(PHOTOS[0], photo)
    result = cli("ingest", gif, txt, photo, "--catalog", tmp_path / "catalog", "--signatures", "hist", "--workers", "1")
    assert_no_traceback(result)
    assert result.returncode == 0
    assert f"skipped: {gif}: not a supported image type" in result.stderr
    assert f"skipped: {txt}: not a supported image type" in result.stderr
    assert "1 added" in result.stdout


def test_stray_temporary_files_are_not_counted_by_info(tmp_path):
    """D29: an `index-hist.bin.tmp` left by a killed save was counted in the indexes' disk use."""
    folder = tmp_path / "ph"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((50, 60, 3), 90, np.uint8))
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    before = json.loads(cli("info", "--catalog", catalog, "--format", "json").stdout)
    (catalog / "index-hist.bin.tmp").write_bytes(b"\0" * 100_000)
    after = json.loads(cli("info", "--catalog", catalog, "--format", "json").stdout)
    assert after["disk"]["indexes"] == before["disk"]["indexes"]
