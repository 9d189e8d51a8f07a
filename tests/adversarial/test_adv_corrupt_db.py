"""A catalog database with corrupt pages (D15): every command says so in one line, with what to do."""

from __future__ import annotations

import shutil

import pytest

from helpers import PHOTOS, assert_one_line_error, cli, cli_ingest

pytestmark = pytest.mark.slow


@pytest.fixture
def corrupt_catalog(tmp_path):
    folder = tmp_path / "ph"
    folder.mkdir()
    for photo in PHOTOS[:10]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    db = catalog / "catalog.db"
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(len(data) // 2 // page * page, len(data), page):  # the second half: table data
        data[start : start + page] = bytes((i * 37 + 11) % 256 for i in range(page))
    db.write_bytes(bytes(data))
    return catalog, folder


@pytest.mark.parametrize("command", [["info"], ["dups"], ["reindex"], ["query", PHOTOS[0]], ["ingest", "FOLDER"]])
def test_corrupt_pages_are_one_line(corrupt_catalog, command):
    """D15: "database disk image is malformed" came out as a traceback."""
    catalog, folder = corrupt_catalog
    args = [folder if a == "FOLDER" else a for a in command]
    result = cli(*args, "--catalog", catalog)
    assert_one_line_error(result, "catalog database is corrupt", "restore a backup")
