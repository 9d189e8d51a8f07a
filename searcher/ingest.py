"""Ingest: scan folders -> diff against the catalog -> extract in parallel -> store -> index.

Incremental by design: a file whose size and mtime match its catalog row is not read at all;
a file whose bytes (sha256) are already known gets its signatures copied, or, when the known
row's file is gone, the row is re-pointed (a move); only truly new content is decoded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from searcher import images
from searcher.features import DEFAULT_SIGNATURES
from searcher.video import Sampling

if TYPE_CHECKING:
    from searcher.catalog import Catalog


@dataclass
class IngestOptions:
    workers: int = 0  # 0 = one per core
    max_megapixels: float = images.DEFAULT_MAX_MEGAPIXELS
    signatures: tuple[str, ...] = DEFAULT_SIGNATURES
    sampling: Sampling = field(default_factory=Sampling)  # for video files
    executor: str = "local"  # local | ray | ray://ADDRESS (searcher.executors)
    exclude: tuple[str, ...] = ()  # globs of files and folders to leave out (ingest_plan.excluded)
    wait: bool = True  # when another ingest runs on the catalog: wait for it (else CatalogBusy)


@dataclass
class IngestSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0  # video frames and person crops stored by this run (not in counts())
    crops: int = 0

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("added", "updated", "moved", "unchanged", "removed", "failed")}


class Reporter:
    """What ingest tells the outside world while it runs; the CLI draws a progress bar from it."""

    def start(self, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def warn(self, message: str) -> None: ...
    def failed(self, path: str, reason: str) -> None: ...


def run(catalog: Catalog, paths, options: IngestOptions | None = None, reporter: Reporter | None = None) -> IngestSummary:
    """Bring the catalog in line with the image files under `paths` (see the module docstring):
    scan -> plan (diff) -> extract (process pool) -> apply (one writer) -> save the indexes.

    Paths are catalogued with their symlinks resolved at the roots: a folder ingested once as
    `real/` and once through `alias -> real` is one set of rows, never two copies of each file.
    Symlinked files inside a folder keep their own path (a query may name either); searcher.dups
    collapses paths that name one file (images.path_identity) and never moves such a file.
    A folder that cannot be listed is not an empty folder: its rows are kept untouched.
    """
    from searcher.executors import parse_executor
    from searcher.ingest_plan import check_roots, check_save_frames

    options = options or IngestOptions()
    parse_executor(options.executor)  # an unknown or uninstalled executor is refused before any change
    reporter = reporter or Reporter()
    roots = check_roots(
        [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)], reporter.warn, catalog.store
    )
    check_save_frames(options.sampling.save_frames)
    # One writer at a time: a second ingest planning against rows the first is still changing would
    # add the same paths twice (IntegrityError) and leave indexes behind the catalog.
    with catalog.writing("ingest", wait=options.wait):
        return _run(catalog, roots, options, reporter)


def _run(catalog: Catalog, roots: list[str], options: IngestOptions, reporter: Reporter) -> IngestSummary:
    from searcher.features import build_extractors
    from searcher.ingest_apply import Writer
    from searcher.ingest_plan import expected_units, plan, scan
    from searcher.ingest_work import run_tasks

    summary = IngestSummary()
    extractors = build_extractors(options.signatures)
    skip = [str(catalog.location.vector_dir)]
    unreadable: list = []
    scanned = scan(roots, skip, summary, reporter, unreadable, options.exclude)
    tasks, missing, known_hashes = plan(catalog, roots, scanned, extractors, options.sampling, reporter, summary, unreadable)
    if not tasks and not missing:
        return summary  # nothing changed: not even the indexes are opened
    writer = Writer(catalog, extractors, summary, reporter, missing, options.sampling.key())
    catalog.changed()
    writer.begin()
    reporter.start(expected_units(tasks, options.sampling))
    try:
        for batch in (tasks, None):
            if batch is None:  # second pass: files whose known twin changed during this run
                batch, writer.retry = writer.retry, []
            for results in run_tasks(batch, options, known_hashes):
                writer.add(results)
            writer.flush()
        writer.remove_missing()
        catalog.store.remember_signature_counts()
    finally:
        try:
            writer.flush()
        finally:
            writer.save_indexes()
            catalog.changed()
    return summary
