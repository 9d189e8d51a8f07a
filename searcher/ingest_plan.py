"""Planning an ingest: scan the folders and diff the files against the catalog, without reading any file.

A file whose size and mtime match its row is unchanged; a changed or new file becomes a Task; a
row whose signatures are stale (another extractor version, a signature not computed yet) becomes a
Task that recomputes just those; rows under the scanned roots whose file is gone are `missing`
(later a move, or removed).
"""

from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING

from searcher import images
from searcher.catalog.schema import KIND_VIDEO, STATUS_FAILED, STATUS_OK
from searcher.errors import UsageError
from searcher.ingest_work import Task
from searcher.video import VIDEO_EXTENSIONS, Sampling

if TYPE_CHECKING:
    from searcher.catalog import Catalog
    from searcher.ingest import IngestSummary, Reporter


def under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def check_roots(paths: list[str], warn=None, store=None) -> list[str]:
    """Absolute roots with every symlink resolved (see searcher.ingest.run), each at most once. A
    root that does not exist is still a root when the catalog (`store`) has files under it: they
    are pruned, with a warning; otherwise it is a usage error. A file that is not an image or
    video is skipped, said so."""
    roots: list[str] = []
    for p in paths:
        absolute = os.path.abspath(os.fspath(p))
        if not os.path.exists(absolute):
            if store is None or not store.has_rows_under(absolute):
                raise UsageError(f"no such file or folder: {p}")
            if warn is not None:
                warn(f"{absolute} does not exist (any more): its catalog entries are removed")
            if absolute not in roots:
                roots.append(absolute)
            continue
        real = os.path.realpath(absolute)
        if not os.path.isdir(real) and os.path.splitext(real)[1].lower() not in images.IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            if warn is not None:  # named explicitly, so its user expects a word about it
                warn(f"skipped: {p}: not a supported image type")
            continue
        if real != absolute and warn is not None:
            warn(f"{absolute} goes through a symbolic link: its files are catalogued under {real}")
        if real not in roots:
            roots.append(real)
    return roots


def check_save_frames(folder: str | None) -> None:
    """--save-frames must be a folder we can write into: said once, before any work, not per video."""
    if not folder:
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--save-frames {folder}: cannot create the folder: {e.strerror or e}") from None
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--save-frames {folder}: not a writable folder")


def excluded(path: str, root: str, patterns: tuple[str, ...]) -> bool:
    """Whether `path` (under `root`) matches an --exclude glob: a pattern with a "/" is matched
    against the path relative to the root, one without against every folder and file name on it."""
    relative = os.path.relpath(path, root) if path != root else os.path.basename(path)
    parts = relative.split(os.sep)
    for pattern in (p.strip("/") for p in patterns):
        if "/" in pattern:
            if fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(relative, pattern + "/*"):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def scan(
    roots: list[str],
    skip: list[str],
    summary: IngestSummary,
    reporter: Reporter,
    unreadable: list[images.Unreadable],
    exclude: tuple[str, ...] = (),
) -> dict[str, images.FileStat]:
    """Image and video files under the roots, less those matching an --exclude glob; a name that is
    not valid UTF-8 is a failure. Folders and files that cannot be read are added to `unreadable`."""
    scanned: dict[str, images.FileStat] = {}
    extensions = images.IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    present = [r for r in roots if os.path.exists(r)]  # a vanished root has nothing to scan
    for stat in images.scan_files(present, skip=skip, extensions=extensions, unreadable=unreadable):
        if exclude and any(under(stat.path, [r]) and excluded(stat.path, r, exclude) for r in present):
            continue
        try:
            stat.path.encode("utf-8")
        except UnicodeEncodeError:
            summary.failed += 1
            summary.failures.append((stat.path, "file name is not valid UTF-8"))
            reporter.failed(stat.path, "file name is not valid UTF-8")
            continue
        scanned[stat.path] = stat
    return scanned


def stale_rows(catalog: Catalog, extractors) -> dict[int, list[str]]:
    """File row id -> names of the signatures it lacks in their current version."""
    stale: dict[int, list[str]] = {}
    for extractor in extractors:
        for image_id, parent_id in catalog.store.lacking_signature(extractor.name, extractor.version):
            # a stale frame or crop makes its whole video stale: it is sampled again
            stale.setdefault(parent_id or image_id, []).append(extractor.name)
    return stale


def keep_unreadable(rows: dict, unreadable: list[images.Unreadable], reporter: Reporter, summary: IngestSummary) -> None:
    """Rows under a folder that could not be listed, or of a file that could not be stat()ed, are
    neither missing nor changed: they are left untouched (and count as unchanged), said once each."""
    for problem in unreadable:
        if problem.folder:
            kept = [path for path in rows if under(path, [problem.path])]
        else:
            kept = [problem.path] if problem.path in rows else []
        for path in kept:
            del rows[path]
        summary.unchanged += len(kept)
        what = "folder" if problem.folder else "file"
        tail = (
            f"; its {len(kept)} catalogued files are kept" if problem.folder else ("; its catalog entry is kept" if kept else "")
        )
        reporter.warn(f"cannot read {what} {problem.path}: {problem.reason}{tail}")


def moved_out_and_gone(catalog: Catalog, roots: list[str], rows: dict) -> dict:
    """Rows of files moved out for review (dups --move-to) from a folder under `roots`, then deleted
    from the review folder: missing like any other file of these folders."""
    from searcher.prune import file_state

    return {
        r.path: r
        for r in catalog.store.moved_out_rows()
        if r.path not in rows and under(r.original_path, roots) and file_state(r.path) == "gone"
    }


def expected_units(tasks: list[Task], sampling: Sampling) -> int:
    """Progress units of the tasks: one per image; for a video its frame count (read from its
    header) over its sampling step (scene changes: a guess, corrected as frames come)."""
    import cv2

    total = 0
    for task in tasks:
        if not task.video:
            total += 1
            continue
        capture = cv2.VideoCapture(task.path)
        try:
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            capture.release()
        total += max(1, -(-frames // (sampling.every if not sampling.scene_change else 10)))
    return total


def plan(
    catalog: Catalog, roots, scanned: dict[str, images.FileStat], extractors, sampling: Sampling, reporter, summary, unreadable=()
):
    """(tasks, missing rows by path, known sha256 values): the scan split into work, without reading any file."""
    rows = {r.path: r for r in catalog.store.file_rows() if under(r.path, roots)}
    rows.update(moved_out_and_gone(catalog, roots, rows))
    stale = stale_rows(catalog, extractors)
    known_hashes = catalog.store.known_hashes()
    tasks: list[Task] = []
    still_failed = 0
    for path, stat in scanned.items():
        row = rows.pop(path, None)
        if row is None or row.size != stat.size or row.mtime_ns != stat.mtime_ns:
            tasks.append(Task(path, stat.size, stat.mtime_ns))
        elif row.status == STATUS_FAILED and images.is_access_error(row.error):
            tasks.append(Task(path, stat.size, stat.mtime_ns))  # chmod changes no mtime: try again
        elif row.kind == KIND_VIDEO and row.status == STATUS_OK and (row.sampling != sampling.key() or row.id in stale):
            tasks.append(Task(path, stat.size, stat.mtime_ns, may_reuse=False))
        elif row.id in stale:
            tasks.append(Task(path, stat.size, stat.mtime_ns, only=tuple(stale[row.id]), may_reuse=False))
        else:
            summary.unchanged += 1
            still_failed += row.status == STATUS_FAILED
    keep_unreadable(rows, list(unreadable), reporter, summary)
    if still_failed:
        reporter.warn(f"{still_failed} unchanged file(s) failed before and were not retried (touch or fix them to retry)")
    return tasks, rows, known_hashes
