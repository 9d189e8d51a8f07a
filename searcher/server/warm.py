"""The open catalog that requests read, replaced whole (never changed in place) after a write.

Why: an ingest adds and removes vectors; an HNSW index must not change while another thread
searches it. So a write works on its own handle, and afterwards a fresh handle is opened and
swapped in under a lock. Requests that started on the old handle finish on it; it is closed when
the last of them is done. SQLite in WAL mode gives every reader a consistent snapshot meanwhile.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Generic, Iterator, TypeVar

Handle = TypeVar("Handle")


class _Lease(Generic[Handle]):
    def __init__(self, handle: Handle):
        self.handle = handle
        self.users = 0
        self.retired = False


class WarmCatalog(Generic[Handle]):
    """Hands out the current handle to readers; `reload()` opens a new one and retires the old."""

    def __init__(self, opener: Callable[[], Handle], closer: Callable[[Handle], None]):
        self._opener = opener
        self._closer = closer
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()  # two reloads at once would open two handles for nothing
        self._current: _Lease[Handle] | None = _Lease(opener())

    @contextmanager
    def use(self) -> Iterator[Handle]:
        with self._lock:
            lease = self._current
            if lease is None:
                raise RuntimeError("the catalog is closed")
            lease.users += 1
        try:
            yield lease.handle
        finally:
            self._release(lease)

    def _release(self, lease: _Lease[Handle]) -> None:
        with self._lock:
            lease.users -= 1
            close = lease.retired and lease.users == 0
        if close:
            self._closer(lease.handle)

    def reload(self) -> None:
        """Open a fresh handle (slow: loads the indexes) and swap it in; the old one closes when idle."""
        with self._reload_lock:
            fresh = _Lease(self._opener())
            with self._lock:
                old, self._current = self._current, fresh
                if old is not None:
                    old.retired = True
                close = old is not None and old.users == 0
            if close:
                self._closer(old.handle)

    def close(self) -> None:
        with self._lock:
            old, self._current = self._current, None
            if old is not None:
                old.retired = True
            close = old is not None and old.users == 0
        if close:
            self._closer(old.handle)
