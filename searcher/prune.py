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

from sqlalchemy import select

from searcher.catalog import CatalogLocation, ImageRow, new_session, open_catalog


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
        return "unreachable" if e.errno in (errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTCONN, errno.ESTALE) else "gone"
    folder = os.path.dirname(path)
    if os.path.isdir(folder):
        return "gone" if _listable(folder) else "unreachable"
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not _listable(folder):
        return "unreachable"
    try:
        return "gone" if any(True for _ in os.scandir(folder)) else "unreachable"
    except OSError:
        return "unreachable"


def _listable(folder: str) -> bool:
    try:
        with os.scandir(folder):
            return True
    except OSError:
        return False


def missing_rows(engine, paths: list[str] | None = None) -> tuple[list, list[str]]:
    """(rows of files that are gone, paths kept as unreachable) among the catalog's files
    (top-level rows; video frames go with their video). `paths`: only rows with these paths."""
    with new_session(engine) as session:
        query = select(ImageRow.id, ImageRow.path, ImageRow.kind).where(ImageRow.parent_id.is_(None))
        rows = session.execute(query).all()
    wanted = set(paths) if paths is not None else None
    gone, unreachable = [], []
    for row in rows:
        if not os.path.isabs(row.path) or (wanted is not None and row.path not in wanted):
            continue
        state = file_state(row.path)
        if state == "gone":
            gone.append(row)
        elif state == "unreachable":
            unreachable.append(row.path)
    return gone, unreachable


def prune(location: CatalogLocation, warn=None) -> PruneResult:
    """Remove the rows (signatures, video frames, index entries) of every catalog file gone from disk."""
    from searcher.ingest import remove_rows

    warn = warn or (lambda message: None)
    engine = open_catalog(location, create=False)
    try:
        gone, unreachable = missing_rows(engine)
        result = PruneResult(removed=[r.path for r in gone], unreachable=unreachable)
        if gone:
            remove_rows(engine, location, gone, warn)
    finally:
        engine.dispose()
    if unreachable:
        example = unreachable[0]
        warn(
            f"{len(unreachable)} file(s) kept: their folder cannot be read or looks unmounted (e.g. {example}); "
            "run again when it is back, or ingest that folder"
        )
    return result
