"""Read-only commands on a catalog nobody may write (D16): query, dups, info and compare work,
rebuilding indexes in memory when they must; nothing is written. Run as an unprivileged user
when the tests run as root (root ignores file modes)."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from helpers import PHOTOS, assert_no_traceback, assert_one_line_error, cli, cli_ingest

pytestmark = pytest.mark.slow

NOBODY = 65534


def _as_user():
    if os.geteuid() == 0:
        os.setgid(NOBODY)
        os.setgroups([])
        os.setuid(NOBODY)


def _open_up(path):
    """Let another user reach `path` (pytest's base folder is private to its user)."""
    for parent in [path, *path.parents]:
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IROTH | stat.S_IXOTH)


def _freeze(catalog, folder_too: bool):
    for p in catalog.iterdir():
        os.chmod(p, 0o444)
    os.chmod(catalog, 0o555 if folder_too else 0o777)


def _run(*args):
    return cli(*args, preexec_fn=_as_user, env={**os.environ, "HOME": "/tmp"})


@pytest.fixture
def catalog(tmp_path):
    folder = tmp_path / "ph"
    folder.mkdir()
    for photo in PHOTOS[:6]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    _open_up(tmp_path)
    for p in [folder, *folder.iterdir()]:
        os.chmod(p, os.stat(p).st_mode | stat.S_IROTH | stat.S_IXOTH)
    yield catalog, folder
    os.chmod(catalog, 0o755)


def _snapshot(catalog):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in catalog.iterdir()}


@pytest.mark.parametrize("folder_too", [True, False], ids=["read-only-folder", "read-only-db"])
def test_read_only_commands_work_on_a_read_only_catalog(catalog, folder_too):
    """D16: query/dups failed (they rebuilt and wrote indexes; SQLite WAL wants to write)."""
    catalog, folder = catalog
    (catalog / "index-hist.json").unlink()  # forces a rebuild, which must stay in memory
    _freeze(catalog, folder_too)
    before = _snapshot(catalog)
    image = folder / PHOTOS[1].name
    query = _run("query", image, "--catalog", catalog, "--top", "2", "--format", "jsonl")
    assert_no_traceback(query)
    assert query.returncode == 0, query.stderr
    assert str(image) in query.stdout.splitlines()[0]
    for args in (("dups",), ("info",), ("compare", image, folder / PHOTOS[2].name)):
        result = _run(*args, "--catalog", catalog)
        assert_no_traceback(result)
        assert result.returncode == 0, (args, result.stderr)
    assert _snapshot(catalog) == before


def test_a_read_only_shm_left_behind(catalog):
    """D16: a 0444 catalog.db-shm left by another user made every command fail with a traceback."""
    catalog, folder = catalog
    shm = catalog / "catalog.db-shm"
    shm.write_bytes(b"")
    os.chmod(shm, 0o444)
    os.chmod(catalog / "catalog.db", 0o666)
    os.chmod(catalog, 0o777)
    image = folder / PHOTOS[1].name
    query = _run("query", image, "--catalog", catalog, "--top", "2")
    assert_no_traceback(query)
    assert query.returncode == 0, query.stderr
    ingest = _run("ingest", folder, "--catalog", catalog, "--signatures", "hist,mse,orb", "--workers", "1")
    if ingest.returncode != 0:
        assert_one_line_error(ingest, "catalog.db-shm")


def test_ingest_into_a_read_only_catalog_is_one_line(catalog):
    """D16: a writer on a read-only catalog says so in one line."""
    catalog, folder = catalog
    _freeze(catalog, True)
    result = _run("ingest", folder, "--catalog", catalog, "--signatures", "hist", "--workers", "1")
    assert_one_line_error(result, "read-only")
