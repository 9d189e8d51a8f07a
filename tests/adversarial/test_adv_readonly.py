"""Read-only commands on a catalog nobody may write (D16): query, dups, info and compare work,
rebuilding indexes in memory when they must; nothing is written. A writer says "read-only" in
one line. Root ignores file modes, so as root the catalog (or one file of it) is made read-only
with a read-only bind mount instead of chmod."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager

import pytest

from helpers import PHOTOS, assert_no_traceback, assert_one_line_error, cli, cli_ingest

pytestmark = pytest.mark.slow


def _mount(*args):
    return subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)


@contextmanager
def read_only(*paths):
    """Each path (a folder or a file) read-only for this process while the block runs."""
    if os.geteuid() != 0:
        modes = {p: os.stat(p).st_mode for p in paths}
        for p in paths:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
            for child in p.iterdir() if p.is_dir() else ():
                os.chmod(child, 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                os.chmod(p, mode)
        return
    mounted = []
    try:
        for p in paths:
            bind = _mount("--bind", p, p)
            if bind.returncode != 0:
                pytest.skip(f"running as root, and a read-only bind mount is not allowed here: {bind.stderr.strip()}")
            mounted.append(p)
            remount = _mount("-o", "remount,ro,bind", p, p)
            if remount.returncode != 0:
                pytest.skip(f"cannot remount {p} read-only: {remount.stderr.strip()}")
        yield
    finally:
        for p in reversed(mounted):
            subprocess.run(["umount", str(p)], capture_output=True)


@pytest.fixture
def catalog(tmp_path):
    folder = tmp_path / "ph"
    folder.mkdir()
    for photo in PHOTOS[:6]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    (catalog / "index-hist.json").unlink()  # forces a rebuild, which must stay in memory
    return catalog, folder


def _snapshot(catalog):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in catalog.iterdir()}


@pytest.mark.parametrize("what", ["folder", "database"])
def test_read_only_commands_work_on_a_read_only_catalog(catalog, what):
    """D16: query/dups failed on a read-only catalog (they rebuilt and wrote indexes; SQLite's WAL
    wants to write its -shm file)."""
    catalog, folder = catalog
    before = _snapshot(catalog)
    image = folder / PHOTOS[1].name
    with read_only(catalog if what == "folder" else catalog / "catalog.db"):
        query = cli("query", image, "--catalog", catalog, "--top", "2", "--format", "jsonl")
        assert_no_traceback(query)
        assert query.returncode == 0, query.stderr
        assert str(image) in query.stdout.splitlines()[0]
        for args in (("dups",), ("info",), ("compare", image, folder / PHOTOS[2].name)):
            result = cli(*args, "--catalog", catalog)
            assert_no_traceback(result)
            assert result.returncode == 0, (args, result.stderr)
        assert _snapshot(catalog) == before


def test_a_read_only_shm_left_behind(catalog):
    """D16: a read-only catalog.db-shm left behind (by another user) made commands fail with a traceback."""
    catalog, folder = catalog
    shm = catalog / "catalog.db-shm"
    shm.write_bytes(b"")
    image = folder / PHOTOS[1].name
    with read_only(shm):
        query = cli("query", image, "--catalog", catalog, "--top", "2")
        assert_no_traceback(query)
        assert query.returncode == 0, query.stderr
        ingest = cli("ingest", folder, "--catalog", catalog, "--signatures", "hist,mse,orb", "--workers", "1")
        assert_no_traceback(ingest)
        if ingest.returncode != 0:
            assert_one_line_error(ingest, "catalog.db-shm")


def test_ingest_into_a_read_only_catalog_is_one_line(catalog):
    """D16: a writer on a read-only catalog says so in one line."""
    catalog, folder = catalog
    (folder / "new.jpg").write_bytes(PHOTOS[7].read_bytes())
    with read_only(catalog):
        result = cli("ingest", folder, "--catalog", catalog, "--signatures", "hist", "--workers", "1")
    assert_one_line_error(result, "read-only")
