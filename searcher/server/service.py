"""What the server does, as plain methods over the library: the routes in app.py only translate HTTP.

One Service per server: it opens the catalog once (indexes warm, see warm.py), runs ingest jobs in
the background, caches the duplicate groups until the catalog changes, and keeps the move logs it
writes under its move folder. Files are only ever named by catalog id here, never by a client path
(the one exception: the folder of an ingest job, which must be a folder on the server).
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from searcher import images
from searcher.errors import ImageError, SearcherError, UsageError
from searcher.server.groups import GroupCache
from searcher.server.jobs import Job, Jobs
from searcher.server.warm import WarmCatalog

if TYPE_CHECKING:
    from searcher.catalog import Catalog

THUMB_SIDES = (64, 128, 256, 512)  # the sizes a client may ask for (one cache entry each)
THUMB_QUALITY = 82
THUMB_CACHE = 2048  # entries; a 256 px JPEG is ~15 KB
MAX_PAGE = 200  # groups per page


class NotFound(SearcherError):
    """What the client asked for is not in the catalog (or not on disk any more)."""


@dataclass(frozen=True)
class Entry:
    """One catalog entry as a reviewer sees it: a file, or a frame / person crop inside a video."""

    id: int
    path: str  # the file; for a frame or crop, its video
    kind: str
    sha256: str | None
    width: int | None
    height: int | None
    size: int | None
    frame: int | None = None
    time: float | None = None
    box: tuple[int, ...] | None = None


class Service:
    def __init__(self, location, move_to: str | os.PathLike | None = None, warn=None):
        from searcher.catalog import locate

        self.location = locate(location)
        self.warn = warn or (lambda message: None)
        self.move_to = Path(move_to or self.location.directory.parent / "searcher-duplicates").resolve()
        self.catalog: WarmCatalog[Catalog] = WarmCatalog(self._open, lambda handle: handle.close())
        self.jobs = Jobs()
        self.groups_cache = GroupCache(self.catalog, self.jobs)
        self._write_lock = threading.Lock()  # moves, undo and decisions: one at a time
        self._thumbs: OrderedDict[tuple, bytes] = OrderedDict()
        self._thumbs_lock = threading.Lock()

    def _open(self) -> Catalog:
        """A catalog handle with its extractors and indexes loaded now: they load lazily, and two
        requests must not both load them (nor one search an index while another builds it)."""
        from searcher.catalog import Catalog

        handle = Catalog.open(self.location, create=True, warn=self.warn)
        handle.indexes  # noqa: B018 (loads extractors and indexes)
        return handle

    def close(self, wait_s: float = 5.0) -> None:
        """Close the catalog once the running job (if any) has finished or `wait_s` has passed."""
        self.jobs.wait_idle(wait_s)
        self.catalog.close()

    # ---- reading ----

    def info(self) -> dict:
        """What `searcher info --format json` prints."""
        with self.catalog.use() as handle:
            return handle.info().to_dict()

    def settings(self) -> dict:
        from searcher import __version__
        from searcher.query import available_metrics
        from searcher.scoring import DEFAULT_THRESHOLD

        with self.catalog.use() as handle:
            metrics = list(available_metrics(handle))
        return {"version": __version__, "threshold": DEFAULT_THRESHOLD, "metrics": metrics, "move_to": str(self.move_to)}

    def query_upload(self, data: bytes, name: str, top: int, metric: str, hist_method: str = "bhattacharyya") -> dict:
        """The jsonl object of `searcher query` for an uploaded image, with `query` = its file name."""
        with _temporary_file(data) as path:
            return self._query(path, name, top, metric, hist_method)

    def query_entry(self, image_id: int, top: int, metric: str, hist_method: str = "bhattacharyya") -> dict:
        """The jsonl object of `searcher query` for a catalog entry (a frame or crop is queried as its picture)."""
        entry = self.entry(image_id)
        name = entry.path if entry.frame is None else f"{entry.path}#frame={entry.frame}"
        if entry.frame is None:
            return self._query(entry.path, name, top, metric, hist_method)
        with _temporary_file(self._encode(self._picture(entry), ".png")) as path:
            return self._query(path, name, top, metric, hist_method)

    def _query(self, path: str, name: str, top: int, metric: str, hist_method: str) -> dict:
        with self.catalog.use() as handle:
            result = handle.query_result(path, top=top, metric=metric, hist_method=hist_method)
        if result.error:
            raise ImageError(f"{name}: {result.error}")
        result.query = name
        return result.to_dict()

    def entry(self, image_id: int) -> Entry:
        with self.catalog.use() as handle:
            row = handle.store.entry(image_id)
        if row is None or row["status"] != "ok" or row["kind"] == "video":
            raise NotFound(f"no image with id {image_id} in the catalog")
        box = tuple(int(v) for v in row["box"].split(",")) if row["box"] else None
        return Entry(**{**{k: v for k, v in row.items() if k != "status"}, "box": box})

    def thumbnail(self, image_id: int, side: int) -> bytes:
        """JPEG of the entry, long side <= side (one of THUMB_SIDES), EXIF-rotated; frames and crops as such."""
        if side not in THUMB_SIDES:
            raise UsageError(f"size must be one of {', '.join(map(str, THUMB_SIDES))}")
        entry = self.entry(image_id)
        key = (image_id, entry.sha256, side)
        with self._thumbs_lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        data = self._encode(images.fit_to_work_size(self._picture(entry), side), ".jpg")
        with self._thumbs_lock:
            self._thumbs[key] = data
            while len(self._thumbs) > THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return data

    def original(self, image_id: int) -> tuple[str | None, bytes | None]:
        """(path of the file, None) for an image file; (None, PNG bytes) for a video frame or person crop."""
        entry = self.entry(image_id)
        if entry.frame is not None:
            return None, self._encode(self._picture(entry), ".png")
        if not os.path.isfile(entry.path):
            raise NotFound(f"image {image_id} is no longer on disk")
        return entry.path, None

    def _picture(self, entry):
        """BGR pixels of an entry: the decoded file, or the frame (or crop) of its video."""
        if entry.frame is not None:
            from searcher.video import read_frame

            bgr = read_frame(entry.path, entry.frame, entry.box)
            if bgr is None:
                raise NotFound(f"image {entry.id}: cannot read frame {entry.frame} of its video")
            return bgr
        try:
            return images.load_image(entry.path).bgr
        except ImageError as e:
            raise NotFound(f"image {entry.id} cannot be read any more: {e}") from None

    @staticmethod
    def _encode(bgr, extension: str) -> bytes:
        params = [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY] if extension == ".jpg" else []
        ok, data = cv2.imencode(extension, bgr, params)
        if not ok:
            raise SearcherError("cannot encode the picture")
        return data.tobytes()

    # ---- compare ----

    def compare_entries(self, a: int, b: int) -> dict:
        entries = self.entry(a), self.entry(b)
        files = [self._encode(self._picture(e), ".png") if e.frame is not None else None for e in entries]
        return self._compare(files, [e.path for e in entries], names=[str(e.path) for e in entries])

    def compare_uploads(self, a: bytes, b: bytes, names: list[str]) -> dict:
        return self._compare([a, b], [None, None], names)

    def _compare(self, data: list[bytes | None], paths: list[str | None], names: list[str]) -> dict:
        """compare_images on two files (or bytes written to temporary files) with the catalog's signatures."""
        from searcher.comparison import draw

        with _temporary_file(data[0]) as ta, _temporary_file(data[1]) as tb, _temporary_file(b"") as drawing:
            with self.catalog.use() as handle:
                result = handle.compare(paths[0] or ta, paths[1] or tb)
            draw(result, drawing)
            with open(drawing, "rb") as f:
                png = f.read()
        out = result.to_dict()
        out.update(a=names[0], b=names[1], explanation=result.explanation)
        out["drawing"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return out

    # ---- duplicate groups and what a reviewer decides ----

    def groups(self, threshold: float, offset: int, limit: int, refresh: bool = False) -> dict:
        """A page of the groups at this threshold (Computing while a job finds them)."""
        result = self.groups_cache.get(threshold, refresh)
        limit = max(1, min(limit, MAX_PAGE))
        page = result.groups[offset : offset + limit]
        return {
            "total": len(result.groups),
            "offset": offset,
            "limit": limit,
            "threshold": threshold,
            "images": result.images,
            "ignored": result.ignored_groups,
            "groups": [_group_dict(g) for g in page],
        }

    def group(self, group_id: str, threshold: float) -> dict:
        return _group_dict(self._find_group(group_id, threshold))

    def _find_group(self, group_id: str, threshold: float):
        for g in self.groups_cache.get(threshold).groups:
            if g.id == group_id:
                return g
        raise NotFound(f"no group {group_id} at threshold {threshold:g}")

    def changed(self) -> None:
        """The catalog changed in a way cached groups cannot follow: they are found again when asked."""
        self.groups_cache.clear()

    def ignore_group(self, group_id: str, threshold: float) -> dict:
        """Mark a group "not duplicates" (persisted; `searcher dups` leaves it out too)."""
        group = self._find_group(group_id, threshold)
        with self._write_lock, self.catalog.use() as handle:
            handle.store.add_ignored_group(group.id)
        self.groups_cache.drop_group(group.id, ignored=True)
        return {"group": group.id, "ignored": True}

    def ignore_member(self, group_id: str, image_id: int, threshold: float) -> dict:
        """Mark one member "not a duplicate of the kept copy" (persisted as a pair of contents): the
        next grouping no longer links them, so the member leaves the group unless another link holds it."""
        group = self._find_group(group_id, threshold)
        member = next((m for m in group.members if m.image_id == image_id), None)
        if member is None:
            raise NotFound(f"image {image_id} is not a member of group {group.id}")
        if member is group.keep:
            raise UsageError("the kept copy cannot be marked as not a duplicate of itself; keep another copy first")
        if not member.sha256 or not group.keep.sha256:
            raise UsageError("this pair has no content hash to record")
        with self._write_lock, self.catalog.use() as handle:
            handle.store.add_ignored_pair(group.keep.sha256, member.sha256)
        self.groups_cache.drop_member(group.id, image_id)
        return {"group": group.id, "keep": group.keep.image_id, "image": image_id, "ignored": True}

    def unignore_group(self, group_id: str) -> dict:
        with self._write_lock, self.catalog.use() as handle:
            removed = handle.store.remove_ignored_group(group_id)
        if not removed:
            raise NotFound(f"group {group_id} is not marked as not duplicates")
        self.changed()
        return {"group": group_id, "ignored": False}

    def move_group(self, group_id: str, threshold: float, keep: int | None, dry_run: bool) -> dict:
        """Move every member but the kept one (the suggested one, or `keep`) to MOVE_TO/<group id>/."""
        from searcher.moves import default_log_path, plan_moves

        group = self._find_group(group_id, threshold)
        if keep is not None:
            chosen = [m for m in group.members if m.image_id == keep]
            if not chosen:
                raise UsageError(f"image {keep} is not a member of group {group.id}")
            others = [m for m in group.members if m is not chosen[0]]
            group = replace(group, keep=chosen[0], keep_reason="chosen by the reviewer", members=[chosen[0], *others])
        moves = plan_moves([group], self.move_to)
        out = {
            "group": group.id,
            "keep": group.keep.path,
            "dry_run": dry_run,
            "moves": [{"from": m.source, "to": m.target} for m in moves],
        }
        if dry_run or not moves:
            return {**out, "moved": 0, "skipped": [], "log": None}
        with self._write_lock, self.catalog.use() as handle:
            log = default_log_path(self.move_to)
            outcome = handle.move_duplicates([group], self.move_to, log_path=log, moves=moves)
        if outcome.moved:
            self.groups_cache.drop_group(group.id, ignored=False)
        skipped = [{"from": m.source, "reason": reason} for m, reason in outcome.skipped]
        return {
            **out,
            "moves": [{"from": m.source, "to": m.target} for m in outcome.moved],
            "moved": len(outcome.moved),
            "skipped": skipped,
            "log": log.name,
        }

    def move_logs(self) -> list[str]:
        if not self.move_to.is_dir():
            return []
        return sorted((p.name for p in self.move_to.glob("searcher-moves-*.jsonl")), reverse=True)

    def undo(self, log_name: str) -> dict:
        """Undo one move log of this server's move folder, named as move_group returned it."""
        if log_name not in self.move_logs():  # a name from the listing only: no path from the client
            raise NotFound(f"no move log {log_name!r} in {self.move_to}")
        with self._write_lock, self.catalog.use() as handle:
            outcome = handle.undo(self.move_to / log_name)
        self.changed()
        return {
            "log": log_name,
            "restored": [{"from": moved, "to": restored} for moved, restored in outcome.restored],
            "skipped": [{"path": path, "reason": reason} for path, reason in outcome.skipped],
        }

    # ---- ingest ----

    def start_ingest(self, folder: str, workers: int = 0) -> Job:
        """Ingest a folder of the server's disk in the background; the warm catalog is swapped when done."""
        from searcher.catalog import Catalog
        from searcher.ingest import IngestOptions

        path = Path(folder).expanduser()
        if not path.is_absolute() or not path.is_dir():
            raise UsageError(f"not a folder on the server (give an absolute path): {folder}")

        def work(reporter) -> dict:
            # A handle of its own: the one requests read must not change under them.
            with Catalog.open(self.location, warn=reporter.warn) as writer:
                summary = writer.ingest([str(path)], IngestOptions(workers=workers), reporter)
            self.catalog.reload()  # the new indexes, loaded beside the old ones, then swapped in
            self.changed()
            return {**summary.counts(), "frames": summary.frames, "crops": summary.crops}

        return self.jobs.start("ingest", str(path), work)


def _group_dict(group) -> dict:
    return {
        "id": group.id,
        "keep": group.keep.path,
        "keep_reason": group.keep_reason,
        "members": [
            {
                "id": m.image_id,
                "path": m.path,
                "score": round(m.score, 6),
                "width": m.width,
                "height": m.height,
                "size": m.size,
                "keep": m is group.keep,
            }
            for m in group.members
        ],
    }


class _temporary_file:
    """A named temporary file holding `data` (None: no file, the context gives None), removed afterwards."""

    def __init__(self, data: bytes | None):
        self.data = data
        self.path: str | None = None

    def __enter__(self) -> str | None:
        if self.data is None:
            return None
        fd, self.path = tempfile.mkstemp(prefix="searcher-serve-", suffix=".img")
        with os.fdopen(fd, "wb") as f:
            f.write(self.data)
        return self.path

    def __exit__(self, *exc) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
