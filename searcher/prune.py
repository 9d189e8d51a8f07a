"""Which catalog files are gone from disk, and `searcher prune`, which removes their rows.

A file counts as gone when stat() says it does not exist AND the evidence is trustworthy:
- its folder exists and can be listed: the file was deleted or renamed away;
- its folder is gone too, and the nearest existing folder above it can be listed and is not
  empty: the folder was deleted (e.g. a review folder of `dups --move-to`).
Otherwise (a folder that cannot be read, or an empty folder above it, as an unmounted drive's
mount point is) the row is kept and counted as "unreachable": removing it would make a re-ingest
redo the work once the drive is back, and the files may be fine.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from searcher.catalog import Catalog

_UNREACHABLE = (errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTCONN, errno.ESTALE)


@dataclass
class PruneResult:
    removed: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # kept: their folder cannot be read or is not there


def file_state(path: str) -> str:
    """'present', 'gone' or 'unreachable' (see the module docstring)."""
    try:
        os.stat(path)
        return "present"
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        return "gone"  # a folder on the way became a file
    except OSError as e:
        return "unreachable" if e.errno in _UNREACHABLE else "gone"
    folder = os.path.dirname(path)
    if os.path.isdir(folder):
        return "gone" if _listable(folder) else "unreachable"
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        with os.scandir(folder) as entries:
            return "gone" if any(True for _ in entries) else "unreachable"
    except OSError:
        return "unreachable"


def _listable(folder: str) -> bool:
    try:
        with os.scandir(folder):
            return True
    except OSError:
        return False


def prune(catalog: Catalog) -> PruneResult:
    """Remove the rows (signatures, video frames, index entries) of every catalog file gone from disk."""
    from searcher.ingest import Reporter
    from searcher.ingest_apply import remove_rows

    gone, result = [], PruneResult()
    for row in catalog.store.file_rows():
        if not os.path.isabs(row.path):
            continue
        state = file_state(row.path)
        if state == "gone":
            gone.append(row)
            result.removed.append(row.path)
        elif state == "unreachable":
            result.unreachable.append(row.path)
    if gone:
        reporter = Reporter()
        reporter.warn = catalog.warn
        remove_rows(catalog, gone, reporter)
    if result.unreachable:
        catalog.warn(
            f"{len(result.unreachable)} file(s) kept: their folder cannot be read or looks unmounted "
            f"(e.g. {result.unreachable[0]}); run again when it is back, or ingest that folder"
        )
    return result
