"""A folder that cannot be listed is not an empty folder: its catalogued files are kept, untouched."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from searcher.catalog import CatalogLocation

from helpers import copy_photos, run_ingest


class Recorder:
    def __init__(self):
        self.warnings: list[str] = []

    def start(self, total): ...
    def advance(self, n=1): ...
    def warn(self, message):
        self.warnings.append(message)

    def failed(self, path, reason): ...


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "lib"
    copy_photos(root, 2)
    copy_photos(root / "sub", 3, start=2)
    location = CatalogLocation(tmp_path / "catalog")
    assert run_ingest([root], location).counts()["added"] == 5
    return root, location


def test_an_unlistable_subfolder_keeps_its_rows_and_nothing_is_recomputed_when_it_returns(tree, monkeypatch):
    """D3: scandir failing with permission denied used to read as an empty folder: `3 removed`."""
    root, location = tree
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(root / "sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    recorder = Recorder()
    summary = run_ingest([root], location, recorder)
    assert summary.counts()["removed"] == 0
    assert [w for w in recorder.warnings if "cannot read folder" in w] == [
        f"cannot read folder {root / 'sub'}: permission denied; its 3 catalogued files are kept"
    ]
    monkeypatch.setattr(os, "scandir", real_scandir)
    back = run_ingest([root], location)
    assert back.counts() == {"added": 0, "updated": 0, "moved": 0, "unchanged": 5, "removed": 0, "failed": 0}


def test_a_transient_io_error_on_a_folder_removes_nothing(tree, monkeypatch):
    """D3: EIO listing a folder is "unreadable", not "gone"."""
    root, location = tree
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(root / "sub"):
            raise OSError(5, "Input/output error", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert run_ingest([root], location).counts()["removed"] == 0


def test_a_file_that_exists_but_cannot_be_stated_keeps_its_row(tree, monkeypatch):
    """D3: a file whose stat fails (other than "no such file") is kept, not removed."""
    root, location = tree
    victim = sorted((root / "sub").iterdir())[0]
    real_scandir = os.scandir

    class Entry:
        def __init__(self, entry):
            self._entry = entry
            self.name, self.path = entry.name, entry.path

        def is_dir(self, follow_symlinks=True):
            return self._entry.is_dir(follow_symlinks=follow_symlinks)

        def is_file(self, follow_symlinks=True):
            return self._entry.is_file(follow_symlinks=follow_symlinks)

        def is_symlink(self):
            return self._entry.is_symlink()

        def stat(self, follow_symlinks=True):
            if self.path == str(victim):
                raise OSError(5, "Input/output error", self.path)
            return self._entry.stat(follow_symlinks=follow_symlinks)

    def scandir(path="."):
        if not os.fspath(path).startswith(str(root)):
            return real_scandir(path)
        return [Entry(e) for e in real_scandir(path)]

    monkeypatch.setattr(os, "scandir", scandir)
    recorder = Recorder()
    assert run_ingest([root], location, recorder).counts()["removed"] == 0
    assert any(str(victim) in w for w in recorder.warnings), recorder.warnings
    monkeypatch.setattr(os, "scandir", real_scandir)
    assert run_ingest([root], location).counts()["unchanged"] == 5


def test_a_really_deleted_folder_is_still_removed(tree):
    """D3 (the other half): a folder that is gone takes its rows with it."""
    root, location = tree
    shutil.rmtree(root / "sub")
    assert run_ingest([root], location).counts()["removed"] == 3


def _nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


def _as_user(user, fn):
    """fn() in a forked child running as `user`; its JSON-able result. The child needs no new
    imports (the interpreter may live where that user cannot read), so the parent ran fn first."""
    import json
    import time

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.write(write_end, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read_end)
        pytest.fail("the ingest run as nobody did not finish in 120 s")
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    assert os.waitstatus_to_exitcode(status) == 0, "the ingest run as nobody failed"
    return json.loads(data)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or _nobody() is None, reason="needs root to run an ingest as the user nobody")
def test_chmod_000_as_an_unprivileged_user_keeps_the_rows():
    """D3 for real: `chmod 000 sub` as a user the permission bits apply to (root bypasses them)."""
    nobody = _nobody()
    work = Path(tempfile.mkdtemp(prefix="searcher-d3-"))
    try:
        os.chmod(work, 0o777)
        root = work / "lib"
        copy_photos(root, 2)
        copy_photos(root / "sub", 3, start=2)
        location = CatalogLocation(work / "catalog")
        run_ingest([root], CatalogLocation(work / "warm-up"), signatures=("hist", "mse"))  # every import done here
        for path in [work, *work.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        recorder = Recorder()

        def ingest_as_nobody():
            recorder.warnings.clear()
            counts = run_ingest([root], location, recorder, signatures=("hist", "mse")).counts()
            return {"counts": counts, "warnings": recorder.warnings}

        assert _as_user(nobody, ingest_as_nobody)["counts"]["added"] == 5
        os.chmod(root / "sub", 0)
        second = _as_user(nobody, ingest_as_nobody)
        assert second["counts"]["removed"] == 0
        assert f"cannot read folder {root / 'sub'}: permission denied; its 3 catalogued files are kept" in second["warnings"]
        os.chmod(root / "sub", 0o755)
        third = _as_user(nobody, ingest_as_nobody)
        assert third["counts"] == {"added": 0, "updated": 0, "moved": 0, "unchanged": 5, "removed": 0, "failed": 0}
    finally:
        shutil.rmtree(work, ignore_errors=True)
