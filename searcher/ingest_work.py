"""The work done for each file of an ingest, in worker processes (or in-process for small runs):
read, hash, decode, sample videos, extract every signature. No catalog access here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from searcher import images
from searcher.errors import ImageError
from searcher.executors import make_executor
from searcher.features import build_extractors
from searcher.features.work_image import WorkImage
from searcher.video import Sampling, is_video_path, sample_video

if TYPE_CHECKING:
    from searcher.ingest import IngestOptions

CHUNK = 16  # files per worker task: enough for batched autoencoder inference, small for progress


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
    """Blobs of every extractor for each image, or the error text of an image that broke one.
    Extractors that take a WorkImage share its derived images (grey, 256 px square) between them."""
    out: list[dict[str, bytes] | str] = [{} for _ in images_bgr]
    work = [WorkImage(bgr) for bgr in images_bgr]
    for extractor in _worker_state["extractors"]:
        inputs = work if extractor.takes_work_image else images_bgr
        if only is not None and extractor.name not in only:
            continue
        todo = [k for k, blobs in enumerate(out) if isinstance(blobs, dict)]
        if not todo:
            break
        try:
            signatures = extractor.extract_batch([inputs[k] for k in todo])
            for k, signature in zip(todo, signatures):
                out[k][extractor.name] = extractor.to_blob(signature)
        except Exception:
            for k in todo:  # find the one image that breaks the batch
                try:
                    out[k][extractor.name] = extractor.to_blob(extractor.extract(inputs[k]))
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
    try:
        return images.file_sha256(path)
    except OSError as e:
        raise ImageError(f"cannot read file: {e.strerror or e}") from None


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


def run_tasks(tasks: list[Task], options: IngestOptions, known_hashes: frozenset[str]) -> Iterator[list[Result]]:
    """Results chunk by chunk, as they complete, from the executor named in the options."""
    workers = options.workers or os.cpu_count() or 1
    local = options.executor == "local"
    if local and len(tasks) <= CHUNK:
        workers = 1  # a handful of files: starting processes would cost more than it saves
    executor = make_executor(options.executor, 1 if local and workers == 1 else options.workers)
    # Worker processes keep to one thread each; only the in-process run may use all cores.
    single_thread = not (local and workers == 1)
    setup_args = (options.signatures, options.max_megapixels, known_hashes, single_thread, options.sampling)
    yield from executor.map(_process_chunk, _chunks(tasks, CHUNK), _init_worker, setup_args)


# ---- the catalog side ----
