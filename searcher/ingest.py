"""Ingest: scan folders -> diff against the catalog -> extract in parallel -> store -> index.

Incremental by design: a file whose size and mtime match its catalog row is not read at all;
a file whose bytes (sha256) are already known gets its signatures copied, or, when the known
row's file is gone, the row is re-pointed (a move); only truly new content is decoded.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
from sqlalchemy import delete, func, select

from searcher import images
from searcher.catalog import (
    KIND_CROP,
    KIND_FRAME,
    KIND_IMAGE,
    KIND_VIDEO,
    STATUS_FAILED,
    STATUS_OK,
    CatalogLocation,
    ImageRow,
    SignatureRow,
    bump_generation,
    frame_key,
    get_generation,
    new_session,
    open_catalog,
)
from searcher.errors import ImageError, SearcherError, UsageError, one_line
from searcher.features import DEFAULT_SIGNATURES, build_extractors
from searcher.index import open_index
from searcher.prune import file_state
from searcher.review_state import clear_moved_out, moved_out_from
from searcher.video import VIDEO_EXTENSIONS, Sampling, is_video_path, sample_video

CHUNK = 16  # files per worker task: enough for batched autoencoder inference, small for progress
COMMIT_EVERY = 256  # results per catalog transaction
COMMIT_SECONDS = 2.0


@dataclass
class IngestOptions:
    workers: int = 0  # 0 = one per core
    max_megapixels: float = images.DEFAULT_MAX_MEGAPIXELS
    signatures: tuple[str, ...] = DEFAULT_SIGNATURES
    sampling: Sampling = field(default_factory=Sampling)  # for video files
    exclude: tuple[str, ...] = ()  # globs of files and folders to leave out (see `excluded`)


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


# ---- the work done for one file (in a worker process, or in-process with --workers 1) ----


@dataclass(frozen=True)
class Task:
    path: str
    size: int
    mtime_ns: int
    only: tuple[str, ...] | None = None  # recompute just these (stale) signatures
    may_reuse: bool = True  # skip extraction when the bytes are already in the catalog

    @property
    def video(self) -> bool:
        return is_video_path(self.path)


@dataclass
class FrameEntry:
    """One sampled frame, or one person crop of it, with its signatures."""

    frame_index: int
    time_s: float
    box: tuple[int, int, int, int] | None
    width: int
    height: int
    blobs: dict[str, bytes]


@dataclass
class Result:
    task: Task
    sha256: str | None = None
    error: str | None = None
    reused: bool = False  # the bytes are known: nothing was extracted
    width: int = 0
    height: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)
    frames: list[FrameEntry] | None = None  # set for a video


_worker_state: dict = {}


def _init_worker(
    signatures: tuple[str, ...], max_megapixels: float, known_hashes: frozenset[str], single_thread: bool, sampling: Sampling
) -> None:
    if single_thread:
        # Parallelism comes from the processes; threads inside each would only contend.
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["SEARCHER_TORCH_THREADS"] = "1"
        import cv2

        cv2.setNumThreads(1)
    _worker_state.update(
        extractors=build_extractors(signatures),
        max_megapixels=max_megapixels,
        known_hashes=known_hashes,
        sampling=sampling,
    )


def _extract_all(images_bgr: list[np.ndarray], only: tuple[str, ...] | None = None) -> list[dict[str, bytes] | str]:
    """Blobs of every extractor for each image, or the error text of an image that broke one."""
    out: list[dict[str, bytes] | str] = [{} for _ in images_bgr]
    for extractor in _worker_state["extractors"]:
        if only is not None and extractor.name not in only:
            continue
        todo = [k for k, blobs in enumerate(out) if isinstance(blobs, dict)]
        if not todo:
            break
        try:
            signatures = extractor.extract_batch([images_bgr[k] for k in todo])
            for k, signature in zip(todo, signatures):
                out[k][extractor.name] = extractor.to_blob(signature)
        except Exception:
            for k in todo:  # find the one image that breaks the batch
                try:
                    out[k][extractor.name] = extractor.to_blob(extractor.extract(images_bgr[k]))
                except Exception as e:
                    out[k] = f"{extractor.name} signature failed: {type(e).__name__}: {e}"
    return out


def _process_video(result: Result) -> None:
    """Sample the video and extract every signature of each kept frame and crop."""
    samples = list(sample_video(result.task.path, _worker_state["sampling"]))
    result.width, result.height = next(((s.width, s.height) for s in samples if s.box is None), (0, 0))
    result.frames = []
    for start in range(0, len(samples), CHUNK):
        batch = samples[start : start + CHUNK]
        for sample, blobs in zip(batch, _extract_all([s.bgr for s in batch])):
            if isinstance(blobs, str):
                raise ImageError(f"frame {sample.frame_index}: {blobs}")
            result.frames.append(FrameEntry(sample.frame_index, sample.time_s, sample.box, sample.width, sample.height, blobs))


def _hash_file(path: str) -> str:
    """sha256 of a file read in pieces (videos can be far larger than memory allows)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with images.open_regular(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise ImageError(f"cannot read file: {e.strerror or e}") from None
    return digest.hexdigest()


def _process_chunk(tasks: list[Task]) -> list[Result]:
    """Read, hash, decode and extract a few files; batched extractors see the chunk at once."""
    results: list[Result] = []
    decoded: list[tuple[Result, np.ndarray]] = []
    for task in tasks:
        result = Result(task)
        results.append(result)
        try:
            if task.video:
                result.sha256 = _hash_file(task.path)
                if task.may_reuse and result.sha256 in _worker_state["known_hashes"]:
                    result.reused = True
                else:
                    _process_video(result)
                continue
            data = images.read_bytes(task.path)
            result.sha256 = images.sha256_hex(data)
            if task.may_reuse and result.sha256 in _worker_state["known_hashes"]:
                result.reused = True
                continue
            image = images.decode(data, _worker_state["max_megapixels"])
            result.width, result.height = image.width, image.height
            decoded.append((result, image.bgr))
        except ImageError as e:
            result.error = str(e)
        except Exception as e:  # one bad file must never stop an ingest
            result.error = f"unexpected {type(e).__name__}: {e}"
    # Stale-signature tasks carry `only`; a chunk mixes them rarely, so group by it.
    for only in dict.fromkeys(r.task.only for r, _ in decoded):
        group = [(r, img) for r, img in decoded if r.task.only == only]
        for (result, _), blobs in zip(group, _extract_all([img for _, img in group], only)):
            if isinstance(blobs, str):
                result.error = blobs
            else:
                result.blobs = blobs
    return results


def _chunks(tasks: list[Task], size: int) -> Iterator[list[Task]]:
    """Images in chunks of `size`; each video alone (it is many images already)."""
    for task in tasks:
        if task.video:
            yield [task]
    still = [t for t in tasks if not t.video]
    for start in range(0, len(still), size):
        yield still[start : start + size]


def _run_tasks(tasks: list[Task], options: IngestOptions, known_hashes: frozenset[str]) -> Iterator[list[Result]]:
    """Results chunk by chunk, as they complete; at most a few chunks per worker in flight."""
    workers = options.workers or os.cpu_count() or 1
    if workers == 1 or len(tasks) <= CHUNK:
        _init_worker(options.signatures, options.max_megapixels, known_hashes, False, options.sampling)
        for chunk in _chunks(tasks, CHUNK):
            yield _process_chunk(chunk)
        return
    initargs = (options.signatures, options.max_megapixels, known_hashes, True, options.sampling)
    # forkserver, not fork: a child forked from a parent whose OpenCV/OpenMP thread pools have run
    # can deadlock on their locks; the fork server never runs them.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["searcher.ingest"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        pending = set()
        chunks = _chunks(tasks, CHUNK)
        try:
            for chunk in chunks:
                pending.add(pool.submit(_process_chunk, chunk))
                if len(pending) >= 3 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            for future in list(pending):
                pending.discard(future)
                yield future.result()
        except BrokenProcessPool:
            raise SearcherError(
                "an extraction worker died (out of memory?); everything committed so far is kept: rerun to resume"
            ) from None
        finally:
            for future in pending:
                future.cancel()


# ---- the catalog side ----


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class _Writer:
    """Applies results to the catalog in batched transactions, then to the indexes."""

    def __init__(self, engine, location, extractors, summary: IngestSummary, reporter: Reporter, missing: dict):
        self.engine = engine
        self.location = location
        self.extractors = {e.name: e for e in extractors}
        self.summary = summary
        self.reporter = reporter
        self.missing = missing  # catalog rows whose file is gone: candidates for moves, else removed
        self.pending: list[Result] = []
        self.retry: list[Task] = []
        self.last_flush = time.monotonic()
        self.generation: int | None = None
        self.indexes: dict = {}
        self.sampling_key = ""

    def begin(self) -> None:
        """Declare that the catalog is about to change, and load the indexes that will follow it."""
        with new_session(self.engine) as session:
            previous = get_generation(session)
            self.generation = bump_generation(session)
            session.commit()
        for extractor in self.extractors.values():
            if extractor.indexed:
                self.indexes[extractor.name] = open_index(self.engine, self.location, extractor, previous, self.reporter.warn)

    def add(self, results: Iterable[Result]) -> None:
        results = list(results)
        self.pending.extend(results)
        self.reporter.advance(sum(_units(r) for r in results))
        if len(self.pending) >= COMMIT_EVERY or time.monotonic() - self.last_flush > COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        index_adds: dict[str, list[tuple[int, bytes]]] = {}
        index_removes: list[int] = []
        with new_session(self.engine) as session:
            for result in self.pending:
                self._apply(session, result, index_adds, index_removes)
            session.commit()
        for name, index in self.indexes.items():
            index.remove(index_removes)
            adds = index_adds.get(name)
            if adds:
                extractor = self.extractors[name]
                ids = np.array([i for i, _ in adds], dtype=np.int64)
                index.add(ids, np.stack([extractor.embedding(extractor.from_blob(b)) for _, b in adds]))
        self.pending.clear()
        self.last_flush = time.monotonic()

    def _apply(self, session, result: Result, index_adds, index_removes) -> None:
        task = result.task
        row = session.scalar(select(ImageRow).where(ImageRow.path == task.path))
        if result.error:
            self._record_failure(session, row, task, result, index_removes)
            return
        if result.reused:
            self._apply_known_bytes(session, row, task, result, index_adds)
            return
        if result.frames is not None:
            self._apply_video(session, row, task, result, index_adds, index_removes)
            return
        if row is None:
            row = ImageRow(path=task.path)
            session.add(row)
            self.summary.added += 1
        else:
            self.summary.updated += 1
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        row.width, row.height, row.status, row.error = result.width, result.height, STATUS_OK, None
        session.flush()
        if task.only is None:
            session.execute(delete(SignatureRow).where(SignatureRow.image_id == row.id))
            index_removes.append(row.id)  # signatures this run does not compute must not linger
        self._store_blobs(session, row.id, result.blobs, index_adds)

    def _apply_video(self, session, row, task: Task, result: Result, index_adds, index_removes) -> None:
        """The video row, then one row per kept frame and crop, replacing any earlier sampling."""
        if row is None:
            row = ImageRow(path=task.path, kind=KIND_VIDEO)
            session.add(row)
            self.summary.added += 1
        else:
            self.summary.updated += 1
            self._drop_children(session, row.id, index_removes)
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        row.width, row.height, row.status, row.error = result.width, result.height, STATUS_OK, None
        row.kind, row.sampling = KIND_VIDEO, self.sampling_key
        session.flush()
        for entry in result.frames:
            child = ImageRow(
                path=frame_key(row.id, entry.frame_index, entry.box),
                size=0,
                mtime_ns=0,
                width=entry.width,
                height=entry.height,
                status=STATUS_OK,
                kind=KIND_CROP if entry.box else KIND_FRAME,
                parent_id=row.id,
                frame_index=entry.frame_index,
                time_s=entry.time_s,
                box=",".join(map(str, entry.box)) if entry.box else None,
            )
            session.add(child)
            session.flush()
            self._store_blobs(session, child.id, entry.blobs, index_adds)
            if entry.box:
                self.summary.crops += 1
            else:
                self.summary.frames += 1

    def _drop_children(self, session, video_id: int, index_removes) -> None:
        children = session.scalars(select(ImageRow.id).where(ImageRow.parent_id == video_id)).all()
        for start in range(0, len(children), 500):
            batch = children[start : start + 500]
            session.execute(delete(SignatureRow).where(SignatureRow.image_id.in_(batch)))
            session.execute(delete(ImageRow).where(ImageRow.id.in_(batch)))
        index_removes.extend(children)

    def _store_blobs(self, session, image_id: int, blobs: dict[str, bytes], index_adds) -> None:
        for name, blob in blobs.items():
            version = self.extractors[name].version
            session.merge(SignatureRow(image_id=image_id, extractor=name, version=version, data=blob))
            index_adds.setdefault(name, []).append((image_id, blob))

    def _record_failure(self, session, row, task: Task, result: Result, index_removes) -> None:
        if row is None:
            row = ImageRow(path=task.path, kind=KIND_VIDEO if task.video else KIND_IMAGE)
            session.add(row)
        elif row.status == STATUS_OK:
            index_removes.append(row.id)
            session.execute(delete(SignatureRow).where(SignatureRow.image_id == row.id))
            self._drop_children(session, row.id, index_removes)
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        reason = one_line(result.error)  # stored and printed as one line
        row.width = row.height = None
        row.status, row.error = STATUS_FAILED, reason
        self.summary.failed += 1
        self.summary.failures.append((task.path, reason))
        self.reporter.failed(task.path, reason)

    def _apply_known_bytes(self, session, row, task: Task, result: Result, index_adds) -> None:
        """Bytes already in the catalog: touch, move or copy signatures instead of extracting."""
        if row is not None and row.sha256 == result.sha256 and row.status == STATUS_OK:
            row.size, row.mtime_ns = task.size, task.mtime_ns  # touched, content unchanged
            self.summary.unchanged += 1
            return
        sources = session.scalars(
            select(ImageRow).where(ImageRow.sha256 == result.sha256, ImageRow.status == STATUS_OK)
        ).all()
        if row is None:
            moved_from = next((s for s in sources if self._is_gone(s.path)), None)
            if moved_from is not None:
                self.missing.pop(moved_from.path, None)
                clear_moved_out(session, moved_from.id)  # back in a library folder: offered again
                moved_from.path, moved_from.size, moved_from.mtime_ns = task.path, task.size, task.mtime_ns
                self.summary.moved += 1
                return
        source = next((s for s in sources if s.id != (row.id if row else None)), None)
        # A copy of a video is sampled afresh rather than copied frame by frame; and when the
        # known copy changed earlier in this run, the file is extracted after all.
        if source is None or task.video:
            self.retry.append(Task(task.path, task.size, task.mtime_ns, may_reuse=False))
            return
        if row is None:
            row = ImageRow(path=task.path)
            session.add(row)
            self.summary.added += 1
        else:
            self.summary.updated += 1
            session.execute(delete(SignatureRow).where(SignatureRow.image_id == row.id))
        row.size, row.mtime_ns, row.sha256 = task.size, task.mtime_ns, result.sha256
        row.width, row.height, row.status, row.error = source.width, source.height, STATUS_OK, None
        session.flush()
        blobs = {
            sig.extractor: sig.data
            for sig in session.scalars(select(SignatureRow).where(SignatureRow.image_id == source.id))
            if sig.extractor in self.extractors and sig.version == self.extractors[sig.extractor].version
        }
        self._store_blobs(session, row.id, blobs, index_adds)

    def _is_gone(self, path: str) -> bool:
        return path in self.missing or not os.path.exists(path)

    def remove_missing(self) -> None:
        ids = [row.id for row in self.missing.values()]
        if not ids:
            return
        index_removes = list(ids)
        with new_session(self.engine) as session:
            for row in self.missing.values():
                if row.kind == KIND_VIDEO:
                    self._drop_children(session, row.id, index_removes)
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                session.execute(delete(SignatureRow).where(SignatureRow.image_id.in_(batch)))
                session.execute(delete(ImageRow).where(ImageRow.id.in_(batch)))
            session.commit()
        for index in self.indexes.values():
            index.remove(index_removes)
        self.summary.removed += len(ids)
        self.missing.clear()

    def save_indexes(self) -> None:
        for index in self.indexes.values():
            index.save(self.generation)


def _units(result: Result) -> int:
    """Progress units of a result: one per image, one per sampled frame of a video."""
    if result.frames is None:
        return 1
    return max(1, sum(1 for f in result.frames if f.box is None))


def _expected_units(task: Task, sampling: Sampling) -> int:
    """A video's frame count over its sampling step (read from its header), else 1."""
    if not task.video:
        return 1
    import cv2

    capture = cv2.VideoCapture(task.path)
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    step = sampling.every if not sampling.scene_change else 10  # scene changes: a guess, corrected as frames come
    return max(1, -(-frames // step))


def _check_roots(paths: list[str], engine, warn) -> list[str]:
    """Absolute roots with every symlink resolved (see ingest's docstring), each at most once. A root
    that does not exist is still a root (its catalog rows are pruned, with a warning from the
    caller) when the catalog has files under it; otherwise it is a mistake."""
    roots: list[str] = []
    for p in paths:
        absolute = os.path.abspath(os.fspath(p))
        if not os.path.exists(absolute):
            if not _has_rows_under(engine, absolute):
                raise UsageError(f"no such file or folder: {p}")
            if absolute not in roots:
                roots.append(absolute)  # gone: its rows are pruned under the path they have
            continue
        real = os.path.realpath(absolute)
        if real != absolute:
            warn(f"{absolute} goes through a symbolic link: its files are catalogued under {real}")
        if real not in roots:
            roots.append(real)
    return roots


def _has_rows_under(engine, root: str) -> bool:
    if engine is None:
        return False
    prefix = root.rstrip(os.sep) + os.sep
    with new_session(engine) as session:
        under = (ImageRow.path == root) | (func.substr(ImageRow.path, 1, len(prefix)) == prefix)
        return session.scalar(select(ImageRow.id).where(under).limit(1)) is not None


def excluded(path: str, root: str, patterns: tuple[str, ...]) -> bool:
    """Whether `path` (under `root`) matches an --exclude glob: a pattern with a "/" is matched
    against the path relative to the root, one without against every folder and file name on it."""
    if not patterns:
        return False
    relative = os.path.relpath(path, root) if path != root else os.path.basename(path)
    parts = relative.split(os.sep)
    for pattern in patterns:
        if "/" in pattern.strip("/"):
            if fnmatch.fnmatchcase(relative, pattern.strip("/")) or fnmatch.fnmatchcase(relative, pattern.strip("/") + "/*"):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern.strip("/")) for part in parts):
            return True
    return False


def remove_rows(engine, location, rows, warn=None) -> int:
    """Remove these top-level rows (each with .id, .path, .kind) with their signatures, frames and
    index entries; the number removed."""
    reporter = Reporter()
    if warn is not None:
        reporter.warn = warn
    with new_session(engine) as session:
        stored = session.scalars(select(SignatureRow.extractor).distinct()).all()
    extractors = [e for e in build_extractors(stored) if e.indexed]
    writer = _Writer(engine, location, extractors, IngestSummary(), reporter, {r.path: r for r in rows})
    writer.begin()
    try:
        writer.remove_missing()
    finally:
        writer.save_indexes()
    return writer.summary.removed


def _check_save_frames(folder: str | None) -> None:
    """--save-frames must be a folder we can write into: said once, before any work, not per video."""
    if not folder:
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--save-frames {folder}: cannot create the folder: {e.strerror or e}") from None
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--save-frames {folder}: not a writable folder")


def _keep_unreadable(rows: dict, unreadable: list[images.Unreadable], reporter: Reporter, summary: IngestSummary) -> None:
    """Rows under a folder that could not be listed, or of a file that could not be stat()ed, are
    neither missing nor changed: they are left untouched (and count as unchanged), said once each."""
    for problem in unreadable:
        if problem.folder:
            kept = [path for path in rows if _under(path, [problem.path])]
        else:
            kept = [problem.path] if problem.path in rows else []
        for path in kept:
            del rows[path]
        summary.unchanged += len(kept)
        what = "folder" if problem.folder else "file"
        tail = f"; its {len(kept)} catalogued files are kept" if problem.folder else ("; its catalog entry is kept" if kept else "")
        reporter.warn(f"cannot read {what} {problem.path}: {problem.reason}{tail}")


def _plan(engine, roots, scanned: dict[str, images.FileStat], extractors, sampling: Sampling, reporter: Reporter, summary, unreadable=()):
    """Split the scan into tasks and rows that went missing, without reading any file."""
    with new_session(engine) as session:
        # Plain rows, not ORM objects: a no-op rerun over 100k files must take seconds at most.
        files = select(
            ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime_ns, ImageRow.status, ImageRow.kind, ImageRow.sampling,
            ImageRow.error,
        ).where(ImageRow.parent_id.is_(None))
        rows = {r.path: r for r in session.execute(files) if _under(r.path, roots)}
        # Files moved out for review (dups --move-to) from these folders, then deleted there.
        for r in moved_out_from(session, roots):
            if r.path not in rows and file_state(r.path) == "gone":
                rows[r.path] = r
        stale: dict[int, list[str]] = {}
        for extractor in extractors:
            current = select(SignatureRow.image_id).where(
                SignatureRow.extractor == extractor.name, SignatureRow.version == extractor.version
            )
            lacking = select(ImageRow.id, ImageRow.parent_id).where(
                ImageRow.status == STATUS_OK, ImageRow.kind != KIND_VIDEO, ImageRow.id.not_in(current)
            )
            for image_id, parent_id in session.execute(lacking):
                # a stale frame or crop makes its whole video stale: it is sampled again
                stale.setdefault(parent_id or image_id, []).append(extractor.name)
        known_hashes = frozenset(session.scalars(select(ImageRow.sha256).where(ImageRow.status == STATUS_OK).distinct()))
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
    _keep_unreadable(rows, list(unreadable), reporter, summary)
    if still_failed:
        reporter.warn(f"{still_failed} unchanged file(s) failed before and were not retried (touch or fix them to retry)")
    return tasks, rows, known_hashes


def ingest(
    paths: list[str | os.PathLike],
    location: CatalogLocation,
    options: IngestOptions | None = None,
    reporter: Reporter | None = None,
) -> IngestSummary:
    """Bring the catalog in line with the image files under `paths` (see the module docstring).

    Paths are catalogued with their symlinks resolved at the roots: a folder ingested once as
    `real/` and once through `alias -> real` is one set of rows, never two copies of each file.
    Symlinked files inside a folder keep their own path (a query may name either); searcher.dups
    collapses paths that name one file (images.path_identity) and never moves such a file.
    A folder that cannot be listed is not an empty folder: its rows are kept untouched.
    """
    options = options or IngestOptions()
    reporter = reporter or Reporter()
    if not location.db_path.exists():
        _check_roots([os.fspath(p) for p in paths], None, lambda message: None)  # a mistyped path must not create a catalog
    _check_save_frames(options.sampling.save_frames)
    engine = open_catalog(location, create=True)
    summary = IngestSummary()
    try:
        roots = _check_roots([os.fspath(p) for p in paths], engine, reporter.warn)
        for root in roots:
            if not os.path.exists(root):
                reporter.warn(f"{root} does not exist (any more): its catalog entries are removed")
        extractors = build_extractors(options.signatures)
        scanned: dict[str, images.FileStat] = {}
        extensions = images.IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
        unreadable: list[images.Unreadable] = []
        present = [r for r in roots if os.path.exists(r)]
        for stat in images.scan_files(present, skip=[str(location.directory)], extensions=extensions, unreadable=unreadable):
            if options.exclude and any(_under(stat.path, [r]) and excluded(stat.path, r, options.exclude) for r in roots):
                continue
            try:
                stat.path.encode("utf-8")
            except UnicodeEncodeError:
                summary.failed += 1
                summary.failures.append((stat.path, "file name is not valid UTF-8"))
                reporter.failed(stat.path, "file name is not valid UTF-8")
                continue
            scanned[stat.path] = stat
        tasks, missing, known_hashes = _plan(engine, roots, scanned, extractors, options.sampling, reporter, summary, unreadable)
        if not tasks and not missing:
            return summary  # nothing changed: not even the indexes are opened
        writer = _Writer(engine, location, extractors, summary, reporter, missing)
        writer.sampling_key = options.sampling.key()
        writer.begin()
        reporter.start(sum(_expected_units(t, options.sampling) for t in tasks))
        try:
            for batch in (tasks, None):
                if batch is None:  # second pass: files whose known twin changed during this run
                    batch, writer.retry = writer.retry, []
                for results in _run_tasks(batch, options, known_hashes):
                    writer.add(results)
                writer.flush()
            writer.remove_missing()
        finally:
            try:
                writer.flush()
            finally:
                writer.save_indexes()
    finally:
        engine.dispose()
    return summary
