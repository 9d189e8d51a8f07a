"""Applying an ingest's results: catalog rows and signatures in batched transactions, then the indexes.

One writer (this process) applies what the workers computed. Before the first change the catalog's
generation is bumped, so index files saved before are known to be behind until they are saved again.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Iterable

import numpy as np

from searcher.catalog.schema import KIND_CROP, KIND_FRAME, KIND_IMAGE, KIND_VIDEO, STATUS_FAILED, STATUS_OK, frame_key
from searcher.errors import one_line
from searcher.ingest_work import Result, Task

if TYPE_CHECKING:
    from searcher.catalog import Catalog
    from searcher.catalog.store import Batch
    from searcher.ingest import IngestSummary, Reporter

COMMIT_EVERY = 256  # results per catalog transaction
COMMIT_SECONDS = 2.0


class Changes:
    """What one transaction did to the vectors: (id, blob) added per signature, ids removed."""

    def __init__(self) -> None:
        self.adds: dict[str, list[tuple[int, bytes]]] = {}
        self.removes: list[int] = []


def units(result: Result) -> int:
    """Progress units of a result: one per image, one per sampled frame of a video."""
    if result.frames is None:
        return 1
    return max(1, sum(1 for f in result.frames if f.box is None))


def remove_rows(catalog: Catalog, rows, reporter: Reporter) -> int:
    """Remove these file rows (each with .id, .path, .kind), their signatures, frames and index
    entries (searcher prune); the number removed."""
    from searcher.ingest import IngestSummary

    extractors = [e for e in catalog.extractors.values() if e.indexed]
    writer = Writer(catalog, extractors, IngestSummary(), reporter, {r.path: r for r in rows}, "")
    catalog.changed()
    writer.begin()
    try:
        writer.remove_missing()
    finally:
        writer.save_indexes()
        catalog.changed()
    return writer.summary.removed


class Writer:
    """Applies results to the catalog in batched transactions, then to the indexes."""

    def __init__(
        self, catalog: Catalog, extractors, summary: IngestSummary, reporter: Reporter, missing: dict, sampling_key: str
    ):
        self.catalog = catalog
        self.extractors = {e.name: e for e in extractors}
        self.summary = summary
        self.reporter = reporter
        self.missing = missing  # catalog rows whose file is gone: candidates for moves, else removed
        self.sampling_key = sampling_key
        self.pending: list[Result] = []
        self.retry: list[Task] = []
        self.last_flush = time.monotonic()
        self.generation: int | None = None
        self.indexes: dict = {}

    def begin(self) -> None:
        """Declare that the catalog is about to change, and load the indexes that will follow it."""
        indexed = [extractor for extractor in self.extractors.values() if extractor.indexed]
        stamps = {extractor.name: self.catalog.stamp(extractor) for extractor in indexed}
        _, self.generation = self.catalog.store.bump_generation()
        for extractor in indexed:
            index = self.catalog.load_index(extractor, stamps[extractor.name], self.reporter.warn, save=False)
            self.indexes[extractor.name] = index

    def add(self, results: Iterable[Result]) -> None:
        results = list(results)
        self.pending.extend(results)
        self.reporter.advance(sum(units(r) for r in results))
        if len(self.pending) >= COMMIT_EVERY or time.monotonic() - self.last_flush > COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        # Path order: concurrent writers then take their row locks in one order (no deadlock cycle).
        self.pending.sort(key=lambda result: result.task.path)
        changes = Changes()
        before = self._snapshot()

        def apply(batch: Batch) -> None:
            rows = batch.rows_by_paths([result.task.path for result in self.pending])
            plain = [r for r in self.pending if r.task.path not in rows and not (r.error or r.reused) and r.frames is None]
            self._insert_new_images(batch, plain, changes)
            done = {id(r) for r in plain}
            for result in self.pending:
                if id(result) not in done:
                    self._apply(batch, result, changes, rows.get(result.task.path))

        def undo() -> None:  # another writer made the transaction fail: it runs again from scratch
            changes.__init__()
            self._restore(before)

        self.catalog.store.run_batch(apply, undo)
        for path, reason in self.summary.failures[len(before[1]) :]:
            self.reporter.failed(path, reason)
        self._update_indexes(changes)
        self.pending.clear()
        self.last_flush = time.monotonic()

    def _snapshot(self) -> tuple:
        """What applying a batch changes on this side of the database, to undo a failed attempt."""
        counts = {
            key: getattr(self.summary, key) for key in ("added", "updated", "moved", "unchanged", "failed", "frames", "crops")
        }
        return counts, list(self.summary.failures), len(self.retry), dict(self.missing)

    def _restore(self, snapshot: tuple) -> None:
        counts, failures, retries, missing = snapshot
        for key, value in counts.items():
            setattr(self.summary, key, value)
        self.summary.failures[:] = failures
        del self.retry[retries:]
        self.missing.clear()
        self.missing.update(missing)

    def _update_indexes(self, changes: Changes) -> None:
        for name, index in self.indexes.items():
            index.remove(changes.removes)
            adds = changes.adds.get(name)
            if adds:
                extractor = self.extractors[name]
                ids = np.array([i for i, _ in adds], dtype=np.int64)
                index.add(ids, np.stack([extractor.embedding(extractor.from_blob(b)) for _, b in adds]))

    def _insert_new_images(self, batch: Batch, results: list[Result], changes: Changes) -> None:
        """The common case, new files with their signatures, as two bulk inserts (no ORM objects)."""
        ids = batch.insert_images(
            [
                dict(path=r.task.path, kind=KIND_IMAGE, size=r.task.size, mtime_ns=r.task.mtime_ns, sha256=r.sha256,
                     width=r.width, height=r.height, status=STATUS_OK, error=None)
                for r in results
            ]
        )  # fmt: skip
        signatures = []
        for image_id, result in zip(ids, results):
            for name, blob in result.blobs.items():
                signatures.append(dict(image_id=image_id, extractor=name, version=self.extractors[name].version, data=blob))
                changes.adds.setdefault(name, []).append((image_id, blob))
        batch.insert_signatures(signatures)
        self.summary.added += len(results)

    def _apply(self, batch: Batch, result: Result, changes: Changes, row) -> None:
        task = result.task
        if result.error:
            self._record_failure(batch, row, task, result, changes)
        elif result.reused:
            self._apply_known_bytes(batch, row, task, result, changes)
        elif result.frames is not None:
            self._apply_video(batch, row, task, result, changes)
        else:
            self._apply_image(batch, row, task, result, changes)

    def _apply_image(self, batch: Batch, row, task: Task, result: Result, changes: Changes) -> None:
        if row is not None and task.only is None and self._stored_meanwhile(batch, row, task, result):
            self.summary.unchanged += 1
            return
        if row is None:
            row = batch.new_row(task.path)
            self.summary.added += 1
        else:
            self.summary.updated += 1
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        row.width, row.height, row.status, row.error = result.width, result.height, STATUS_OK, None
        batch.flush()
        if task.only is None:
            batch.delete_signatures(row.id)
            changes.removes.append(row.id)  # signatures this run does not compute must not linger
        self._store_blobs(batch, row.id, result.blobs, changes)

    def _stored_meanwhile(self, batch: Batch, row, task: Task, result: Result) -> bool:
        """Another ingest (on a shared catalog) stored this very file since this one planned: same
        size, time and bytes, and every signature this run computed, at its version."""
        if (row.status, row.size, row.mtime_ns, row.sha256) != (STATUS_OK, task.size, task.mtime_ns, result.sha256):
            return False
        stored = {(name, version) for name, version, _ in batch.signatures_of(row.id)}
        return all((name, self.extractors[name].version) in stored for name in result.blobs)

    def _apply_video(self, batch: Batch, row, task: Task, result: Result, changes: Changes) -> None:
        """The video row, then one row per kept frame and crop, replacing any earlier sampling."""
        if row is None:
            row = batch.new_row(task.path, KIND_VIDEO)
            self.summary.added += 1
        else:
            self.summary.updated += 1
            changes.removes.extend(batch.drop_children(row.id))
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        row.width, row.height, row.status, row.error = result.width, result.height, STATUS_OK, None
        row.kind, row.sampling = KIND_VIDEO, self.sampling_key
        batch.flush()
        for entry in result.frames:
            child = batch.new_row(
                frame_key(row.id, entry.frame_index, entry.box),
                KIND_CROP if entry.box else KIND_FRAME,
                size=0,
                mtime_ns=0,
                width=entry.width,
                height=entry.height,
                status=STATUS_OK,
                parent_id=row.id,
                frame_index=entry.frame_index,
                time_s=entry.time_s,
                box=",".join(map(str, entry.box)) if entry.box else None,
            )
            batch.flush()
            self._store_blobs(batch, child.id, entry.blobs, changes)
            if entry.box:
                self.summary.crops += 1
            else:
                self.summary.frames += 1

    def _store_blobs(self, batch: Batch, image_id: int, blobs: dict[str, bytes], changes: Changes) -> None:
        for name, blob in blobs.items():
            batch.put_signature(image_id, name, self.extractors[name].version, blob)
            changes.adds.setdefault(name, []).append((image_id, blob))

    def _record_failure(self, batch: Batch, row, task: Task, result: Result, changes: Changes) -> None:
        if row is None:
            row = batch.new_row(task.path, KIND_VIDEO if task.video else KIND_IMAGE)
        elif row.status == STATUS_OK:
            changes.removes.append(row.id)
            batch.delete_signatures(row.id)
            changes.removes.extend(batch.drop_children(row.id))
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        reason = one_line(result.error)  # stored and printed as one line
        row.width = row.height = None
        row.status, row.error = STATUS_FAILED, reason
        self.summary.failed += 1
        self.summary.failures.append((task.path, reason))  # reported once the batch commits

    def _apply_known_bytes(self, batch: Batch, row, task: Task, result: Result, changes: Changes) -> None:
        """Bytes already in the catalog: touch, move or copy signatures instead of extracting."""
        if row is not None and row.sha256 == result.sha256 and row.status == STATUS_OK:
            row.size, row.mtime_ns = task.size, task.mtime_ns  # touched, content unchanged
            self.summary.unchanged += 1
            return
        sources = batch.ok_rows_with_sha(result.sha256)
        if row is None:
            moved_from = next((s for s in sources if self._is_gone(s.path)), None)
            if moved_from is not None:
                self.missing.pop(moved_from.path, None)
                batch.clear_moved_out(moved_from.id)  # back in a library folder: offered again by dups
                moved_from.path, moved_from.size, moved_from.mtime_ns = task.path, task.size, task.mtime_ns
                self.summary.moved += 1
                return
        source = next((s for s in sources if s.id != (row.id if row else None)), None)
        # A copy of a video is sampled afresh rather than copied frame by frame; and when the
        # known copy changed earlier in this run, the file is extracted after all.
        if source is None or task.video:
            self.retry.append(Task(task.path, task.size, task.mtime_ns, may_reuse=False))
            return
        self._copy_signatures(batch, row, source, task, result, changes)

    def _copy_signatures(self, batch: Batch, row, source, task: Task, result: Result, changes: Changes) -> None:
        """A new or changed file whose bytes another row holds: that row's current signatures are its own."""
        if row is None:
            row = batch.new_row(task.path)
            self.summary.added += 1
        else:
            self.summary.updated += 1
            batch.delete_signatures(row.id)
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        row.width, row.height, row.status, row.error = source.width, source.height, STATUS_OK, None
        batch.flush()
        blobs = {
            name: blob
            for name, version, blob in batch.signatures_of(source.id)
            if name in self.extractors and version == self.extractors[name].version
        }
        self._store_blobs(batch, row.id, blobs, changes)

    def _is_gone(self, path: str) -> bool:
        return path in self.missing or not os.path.exists(path)

    def remove_missing(self) -> None:
        ids = [row.id for row in self.missing.values()]
        if not ids:
            return
        removes = list(ids)
        with self.catalog.store.batch() as batch:
            for row in self.missing.values():
                if row.kind == KIND_VIDEO:
                    removes.extend(batch.drop_children(row.id))
            batch.delete_images(ids)
        for index in self.indexes.values():
            index.remove(removes)
        self.summary.removed += len(ids)
        self.missing.clear()

    def save_indexes(self) -> None:
        """Record the indexes as current: they followed every change this run committed (the
        caller holds the catalog's writer lock, so nobody else on this machine changed it). An
        ingest on another machine (a database URL catalog) bumps the generation past this run's:
        then the indexes lack its changes and are left to be rebuilt on next use."""
        if self.catalog.generation != self.generation:
            self.reporter.warn("another ingest changed the catalog meanwhile: the vector indexes are rebuilt on next use")
            return
        for name, index in self.indexes.items():
            self.catalog.save_index(index, self.extractors[name])
