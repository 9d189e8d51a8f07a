"""`dups --move-to/--log` where nothing can be written (D21) and two movers at once (D28):
a one-line usage error before anything moves; never an extra copy left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from helpers import PHOTOS, assert_one_line_error, cli, cli_ingest

pytestmark = pytest.mark.slow


@pytest.fixture
def dup_catalog(tmp_path):
    folder = tmp_path / "ph"
    folder.mkdir()
    for i in range(3):
        shutil.copy(PHOTOS[0], folder / f"copy{i}.jpg")
        shutil.copy(PHOTOS[1], folder / f"other{i}.jpg")
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    return catalog, folder


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_move_to_where_nothing_can_be_written_is_a_usage_error(dup_catalog, tmp_path, where):
    """D21: --move-to under a file (or in /proc) failed with a traceback, after planning."""
    catalog, folder = dup_catalog
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    target = blocker / "dest" if where == "under-a-file" else "/proc/searcher-dest"
    before = _files(folder)
    result = cli("dups", "--catalog", catalog, "--move-to", target, "--yes")
    assert_one_line_error(result, str(target))
    assert _files(folder) == before


@pytest.mark.parametrize("where", ["under-a-file", "proc", "a-folder"])
def test_a_log_where_nothing_can_be_written_is_a_usage_error(dup_catalog, tmp_path, where):
    """D21: --log under a file or in /proc: one line, and no file is moved without its log."""
    catalog, folder = dup_catalog
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    log = {"under-a-file": blocker / "moves.jsonl", "proc": "/proc/moves.jsonl", "a-folder": tmp_path}[where]
    before = _files(folder)
    result = cli("dups", "--catalog", catalog, "--move-to", tmp_path / "dest", "--yes", "--log", log)
    assert_one_line_error(result, code=2 if where == "a-folder" else 1)
    assert _files(folder) == before


def test_two_movers_at_once_leave_no_extra_copies(dup_catalog, tmp_path):
    """D28: two concurrent `dups --move-to --yes` left extra hard-linked copies (link, then the other's unlink)."""
    catalog, folder = dup_catalog
    dest = tmp_path / "dest"
    command = [sys.executable, "-m", "searcher", "dups", "--catalog", str(catalog), "--move-to", str(dest), "--yes"]
    for _ in range(3):
        movers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [m.communicate(timeout=180) for m in movers]
        for _, stderr in outputs:
            assert b"Traceback" not in stderr, stderr.decode(errors="replace")
        kept = list(folder.iterdir())
        moved = list(dest.rglob("*.jpg"))
        assert len(kept) + len(moved) == 6, (sorted(map(str, kept)), sorted(map(str, moved)))
        assert all(os.stat(p).st_nlink == 1 for p in kept + moved)
        log = [p for p in dest.iterdir() if p.suffix == ".jsonl"]
        for entry in log:
            assert_no_extra(cli("undo", entry))
        assert len(list(folder.iterdir())) == 6


def assert_no_extra(result):
    assert "Traceback" not in result.stderr


def test_a_file_moved_by_another_mover_between_our_link_and_unlink(tmp_path, monkeypatch):
    """D28, the race itself made certain: the other mover moves the file after our link and before
    our unlink. Exactly one name of the file must remain, with no extra hard link."""
    try:
        from searcher.moves import _move_file
    except ImportError:  # before the storage seam split dups.py
        from searcher.dups import _move_file
    source, ours, theirs = tmp_path / "a.jpg", tmp_path / "g1" / "a.jpg", tmp_path / "g1" / "a~2.jpg"
    shutil.copy(PHOTOS[0], source)
    real_link = os.link

    def link_then_the_other_mover_runs(src, dst, *args, **kwargs):
        real_link(src, dst, *args, **kwargs)
        if os.fspath(dst) == str(ours):
            monkeypatch.setattr(os, "link", real_link)
            _move_file(str(source), str(theirs))

    monkeypatch.setattr(os, "link", link_then_the_other_mover_runs)
    try:
        _move_file(str(source), str(ours))
    except OSError:
        pass  # reported as not moved by the caller
    names = [p for p in (source, ours, theirs) if p.exists()]
    assert len(names) == 1, names
    assert os.stat(names[0]).st_nlink == 1
    assert names[0].read_bytes() == PHOTOS[0].read_bytes()
