"""One writer at a time per catalog: an advisory lock file beside the catalog's vector files.

`catalog.lock` is locked with flock(2), so a killed holder releases it at once (the kernel drops
the lock with the last descriptor); the file itself is never deleted, only its content (the
holder's pid and what it is doing) changes. Every process that changes signatures (ingest,
reindex) or moves files (dups --move-to, undo) holds it exclusively for its whole run, and an
index file is saved as current only under it (see vectors.load_or_rebuild), so no process can
record an index built from a catalog that another process is still changing.

Readers never wait for it. A catalog whose folder cannot be written has no lock, and no writer.
A database URL catalog is locked in its local vector folder: one machine's processes only.
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from searcher.errors import CatalogBusy, CatalogError

LOCK_NAME = "catalog.lock"
POLL_SECONDS = 0.2


def lock_path(directory: Path) -> Path:
    return Path(directory) / LOCK_NAME


def holder(directory: Path) -> str:
    """What the lock file says about its holder: "pid N: what" ("" when unknown)."""
    try:
        return lock_path(directory).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _open(directory: Path) -> int:
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        return os.open(lock_path(directory), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise CatalogError(f"catalog {directory} is read-only ({e.strerror}): it can be searched but not changed") from None
        raise CatalogError(f"cannot lock catalog {directory}: {e.strerror}") from None


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _describe(fd: int, what: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)


@contextmanager
def exclusive(directory: Path, what: str, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the catalog's writer lock while the block runs.

    When another process holds it: wait for it (telling `on_wait` once who it is), or with
    wait=False raise CatalogBusy naming the holder."""
    fd = _open(directory)
    try:
        if not _try(fd):
            who = holder(directory) or "another process"
            if not wait:
                raise CatalogBusy(
                    f"another {_activity(who)} is running on this catalog ({_pid(who)}); wait for it to finish, or stop it"
                )
            if on_wait:
                on_wait(f"waiting for the {_activity(who)} running on this catalog ({_pid(who)}) to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        _describe(fd, what)
        try:
            yield
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def if_free(directory: Path) -> Iterator[bool]:
    """Take the writer lock only if nobody holds it: yields True while held, False when busy or
    when the catalog folder cannot be written (then nothing may be saved)."""
    try:
        fd = os.open(lock_path(directory), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        yield False
        return
    try:
        yield _try(fd)
    finally:
        os.close(fd)


def _pid(who: str) -> str:
    return who.split(":", 1)[0] if who.startswith("pid ") else "pid unknown"


def _activity(who: str) -> str:
    what = who.split(":", 1)[1].strip() if ":" in who else ""
    return what or "searcher writer"
