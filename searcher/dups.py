"""Near-duplicate groups of a whole catalog, the copy to keep in each, and safe, logged moves.

Grouping recipe (no n x n matrix; the work grows with n * neighbours):
1. Candidates: each image's `neighbours` nearest images in every vector index of the catalog
   (hist, mse, ae: each searched with the image's own stored vector), plus every pair of files with
   the same bytes (sha256), which are linked with score 1 without further work.
2. Exact fused score of each candidate pair from the stored vectors, as a query computes it: the mean
   of hist 1 - Bhattacharyya, mse 1 - 2*RMSE over the best of the 8 flips/rotations, ae cosine.
3. Verification with the stored ORB signatures, as a query verifies: cross-checked matches, then
   homography inliers. The pair rule is searcher.compare's: score = (fused + orb) / 2 >= threshold,
   orb = clip((inliers - 8) / 24, 0, 1). From its fused score each pair needs a number of inliers;
   the homography is skipped when there are fewer matches than that (exact). ORB is not
   flip-invariant, so a pair whose thumbnails match best with one mirrored, and closely (mse
   similarity >= MIRROR_SIMILARITY), and that did not pass, is verified once more with one image
   decoded again and mirrored.
4. Groups: connected components of the linked pairs (union-find); single images are left out.
   A member's score is the best score of its linked pairs. Pairs and groups a reviewer marked
   "not duplicates" (searcher.review_store) are left out: such pairs are not linked, such groups
   not returned.
5. One file, one member: paths that name the same file (a symlink and its target, hard links of
   one inode: images.path_identity) are collapsed into one member, the path that is not a symlink
   first. Moving one of them would free nothing (or leave a link dangling); a group left with one
   file is no group.

Group id: "g" + the first 12 hex digits of the smallest sha256 among the members. It stays the same
across runs, renames and moves for as long as that member stays in the group.

Copy to keep: the largest resolution (width x height), then the largest file, then the oldest
(modification time), then the first path in sort order.

Moves (`move_duplicates`): every member except the kept one goes to DEST/<group id>/<file name>;
nothing is overwritten, nothing is deleted, the kept file is never moved, members already under
DEST stay, a group whose kept file is gone or changed since ingest is left alone, and a member
that is a symlink, or that is the kept file under another name, is never moved. Each move is
written to a JSON-lines log (before it is done, flushed to disk) and the catalog row is re-pointed
to the new path, so the next ingest sees the file where it is; `undo_moves(log)` moves every file
back and re-points the rows again.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import select, update

from searcher import images
from searcher.catalog import STATUS_OK, CatalogLocation, ImageRow, SignatureRow, new_session, open_catalog
from searcher.compare import DEFAULT_THRESHOLD, FUSED_SIGNATURES, match_orb, orientations, required_inliers
from searcher.errors import CatalogError, SearcherError, UsageError
from searcher.features.orb import MIN_INLIERS, OrbExtractor
from searcher.group_review import ReviewCounts, ReviewOptions, in_scope, prepare_groups
from searcher.review_state import clear_moved_out, mark_moved_out, moved_out_ids
from searcher.review_store import ignored_group_ids, ignored_pairs

DEFAULT_NEIGHBOURS = 10
MIRROR_SIMILARITY = 0.9  # mse similarity, mirrored, from which a pair gets the mirror check
CHUNK = 1024  # candidate pairs per verification task
SCORE_BLOCK = 8192  # candidate pairs scored at once (bounded memory)
LOG_FORMAT = 1


# ---- results ----


@dataclass
class Member:
    image_id: int
    path: str
    sha256: str
    width: int
    height: int
    size: int
    mtime_ns: int
    score: float = 0.0  # best score of this member's linked pairs


@dataclass
class Group:
    id: str
    keep: Member
    keep_reason: str
    members: list[Member]  # the kept copy first, then by score
    protected: set[str] = field(default_factory=set)  # paths under a --reference folder: never moved


@dataclass
class DupsResult:
    groups: list[Group]
    images: int = 0  # catalog rows that are files (video frames and crops are not)
    candidate_pairs: int = 0
    verified_pairs: int = 0  # pairs whose ORB matches were computed
    linked_pairs: int = 0
    ignored_groups: int = 0  # groups found but marked "not duplicates" (searcher.review_store), left out
    review: ReviewCounts = field(default_factory=ReviewCounts)  # what searcher.group_review left out
    threshold: float = DEFAULT_THRESHOLD
    neighbours: int = DEFAULT_NEIGHBOURS
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "groups": [
                {
                    "id": g.id,
                    "keep": g.keep.path,
                    "keep_reason": g.keep_reason,
                    "members": [
                        {
                            "path": m.path,
                            "score": round(m.score, 6),
                            "width": m.width,
                            "height": m.height,
                            "size": m.size,
                            "reference": m.path in g.protected,
                        }
                        for m in g.members
                    ],
                }
                for g in self.groups
            ]
        }


class Reporter:
    """What find_duplicates tells the outside world while it runs (the CLI draws a progress bar)."""

    def start(self, total: int, description: str = "") -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def warn(self, message: str) -> None: ...


# ---- keep choice and ids ----


def keep_key(member: Member) -> tuple:
    """Sort key of the copy to keep: largest resolution, then largest file, then oldest, then path."""
    return (-(member.width or 0) * (member.height or 0), -member.size, member.mtime_ns, member.path)


def choose_keep(members: list[Member]) -> tuple[Member, str]:
    """The copy to keep and why, in words."""
    ordered = sorted(members, key=keep_key)
    keep, runner_up = ordered[0], ordered[1]
    pixels = lambda m: (m.width or 0) * (m.height or 0)  # noqa: E731
    if pixels(keep) != pixels(runner_up):
        reason = f"largest resolution ({keep.width}x{keep.height}; next {runner_up.width}x{runner_up.height})"
    elif keep.size != runner_up.size:
        reason = f"same resolution, largest file ({keep.size} bytes; next {runner_up.size})"
    elif keep.mtime_ns != runner_up.mtime_ns:
        when = datetime.fromtimestamp(keep.mtime_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        reason = f"same resolution and file size, oldest (modified {when})"
    else:
        reason = "same resolution, file size and age: first path in sort order"
    return keep, reason


def group_id(members: list[Member]) -> str:
    """'g' + 12 hex digits of the smallest sha256 among the members (stable while that member stays)."""
    hashes = [m.sha256 for m in members if m.sha256]
    if hashes:
        return "g" + min(hashes)[:12]
    return f"id{min(m.image_id for m in members)}"


# ---- grouping ----


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _file_rows(engine) -> list[Member]:
    """Catalog rows that are image files (status ok, an absolute path: not a video frame key)."""
    with new_session(engine) as session:
        rows = session.execute(
            select(ImageRow.id, ImageRow.path, ImageRow.sha256, ImageRow.width, ImageRow.height, ImageRow.size, ImageRow.mtime_ns)
            .where(ImageRow.status == STATUS_OK)
            .order_by(ImageRow.id)
        ).all()
    return [
        Member(r.id, r.path, r.sha256 or "", r.width or 0, r.height or 0, r.size or 0, r.mtime_ns or 0)
        for r in rows
        if os.path.isabs(r.path)
    ]


def _stored_vectors(index, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(present: bool per id, vectors: one row per id, NaN where absent) from an index."""
    present = np.array([int(i) in index for i in ids], dtype=bool)
    vectors = np.full((len(ids), index.dim), np.nan, dtype=np.float32)
    if present.any():
        vectors[present] = index.vectors([int(i) for i in ids[present]])
    return present, vectors


def _candidate_pairs(indexes: dict, vectors: dict, ids: np.ndarray, neighbours: int, reporter: Reporter) -> np.ndarray:
    """Unique (i, j) positions, i < j, of each image and its nearest neighbours in every index."""
    position = {int(image_id): k for k, image_id in enumerate(ids)}
    found: list[np.ndarray] = []
    for name, index in indexes.items():
        present, matrix = vectors[name]
        rows = np.flatnonzero(present)
        reporter.start(len(rows), f"{name} neighbours")
        for start in range(0, len(rows), 1024):
            block = []
            for k in rows[start : start + 1024]:
                labels, _ = index.search(matrix[k], neighbours + 1)  # +1: the image itself comes back
                block.extend((k, position[int(j)]) for j in labels if int(j) in position and position[int(j)] != k)
            if block:
                found.append(np.array(block, dtype=np.int64))
            reporter.advance(min(1024, len(rows) - start))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def _fused_scores(pairs: np.ndarray, vectors: dict) -> tuple[np.ndarray, np.ndarray]:
    """(fused score, mirror similarity) of each pair, computed in blocks. The mirror similarity is
    the mse similarity when the thumbnails match best with one of them mirrored, else 0.

    The similarities are those of searcher.query, vectorised: hist 1 - Bhattacharyya distance
    (OpenCV's sqrt(1 - BC / sqrt(sum a * sum b))), mse 1 - 2*RMSE, ae cosine clipped to [0, 1].
    """
    fused = np.zeros(len(pairs))
    mirror = np.zeros(len(pairs))
    for start in range(0, len(pairs), SCORE_BLOCK):
        a, b = pairs[start : start + SCORE_BLOCK, 0], pairs[start : start + SCORE_BLOCK, 1]
        sims = []
        if "hist" in vectors:  # stored as sqrt(histogram): the dot product is the Bhattacharyya coefficient
            va, vb = vectors["hist"][1][a], vectors["hist"][1][b]
            norms = np.sqrt(np.einsum("ij,ij->i", va, va) * np.einsum("ij,ij->i", vb, vb))
            bc = np.einsum("ij,ij->i", va, vb) / np.maximum(norms, 1e-12)
            sims.append(1.0 - np.sqrt(np.clip(1.0 - bc, 0.0, 1.0)))
        if "mse" in vectors:
            ta, tb = vectors["mse"][1][a], vectors["mse"][1][b]
            turned = orientations(ta)
            mse = ((turned - tb[:, None, :]) ** 2).mean(axis=2)  # pairs x 8 orientations
            valid = ~np.isnan(mse).any(axis=1)
            best = np.argmin(np.where(valid[:, None], mse, 0.0), axis=1)
            low = mse[np.arange(len(a)), best]
            similarity = np.where(valid, np.clip(1.0 - 2.0 * np.sqrt(np.maximum(low, 0.0)), 0.0, 1.0), np.nan)
            sims.append(similarity)
            mirror[start : start + len(a)] = np.where(valid & (best >= 4), similarity, 0.0)  # 4..7: mirrored
        if "ae" in vectors:  # unit vectors: the dot product is the cosine
            cosine = np.einsum("ij,ij->i", vectors["ae"][1][a], vectors["ae"][1][b])
            sims.append(np.clip(cosine, 0.0, 1.0))
        if sims:
            stacked = np.vstack(sims)
            counts = (~np.isnan(stacked)).sum(axis=0)
            fused[start : start + len(a)] = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), 0.0)
    return fused, mirror


def _same_bytes_pairs(members: list[Member]) -> np.ndarray:
    """(first, other) positions of files with the same sha256: duplicates whatever the indexes say."""
    first: dict[str, int] = {}
    pairs = []
    for k, m in enumerate(members):
        if m.sha256:
            if m.sha256 in first:
                pairs.append((first[m.sha256], k))
            else:
                first[m.sha256] = k
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


# Verification runs in worker processes for big catalogs; each task carries its pairs and their signatures.
_verifier: dict = {}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes


def _verify_task(task: tuple[np.ndarray, np.ndarray, dict[int, bytes]]) -> np.ndarray:
    """Inliers of each pair (a, b as image ids) given the inliers it needs; 0 when RANSAC was skipped."""
    pairs, needed, blobs = task
    orb = _verifier.setdefault("orb", OrbExtractor())
    out = np.zeros(len(pairs), dtype=np.int64)
    signatures = {image_id: orb.from_blob(blob) for image_id, blob in blobs.items()}
    for k, ((a, b), need) in enumerate(zip(pairs, needed)):
        sa, sb = signatures.get(int(a)), signatures.get(int(b))
        if sa is not None and sb is not None:
            out[k] = match_orb(sa, sb, needed=int(need)).verification.inliers
    return out


def _load_orb(engine, ids: list[int]) -> dict[int, bytes]:
    orb = OrbExtractor()
    blobs: dict[int, bytes] = {}
    with new_session(engine) as session:
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            blobs.update(
                session.execute(
                    select(SignatureRow.image_id, SignatureRow.data).where(
                        SignatureRow.image_id.in_(batch), SignatureRow.extractor == "orb", SignatureRow.version == orb.version
                    )
                ).all()
            )
    return blobs


def _verify(engine, pairs_ids: np.ndarray, needed: np.ndarray, workers: int, reporter: Reporter) -> np.ndarray:
    """RANSAC inliers of each pair of image ids (0 where it was not worth running, see match_orb)."""
    inliers = np.zeros(len(pairs_ids), dtype=np.int64)
    if not len(pairs_ids):
        return inliers
    blobs = _load_orb(engine, sorted({int(i) for i in pairs_ids.ravel()}))

    def task(start: int):
        chunk = pairs_ids[start : start + CHUNK]
        return chunk, needed[start : start + CHUNK], {int(i): blobs[int(i)] for i in np.unique(chunk) if int(i) in blobs}

    starts = range(0, len(pairs_ids), CHUNK)
    reporter.start(len(pairs_ids), "ORB verification")
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(starts) <= 2:
        for start in starts:
            inliers[start : start + CHUNK] = _verify_task(task(start))
            reporter.advance(min(CHUNK, len(pairs_ids) - start))
        return inliers
    # forkserver, as ingest: a child forked after OpenCV's thread pools ran can deadlock.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["searcher.dups"])
    pending: dict = {}
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
            for start in starts:
                pending[pool.submit(_verify_task, task(start))] = start
                if len(pending) >= 3 * workers:  # a few tasks in flight: their signatures are copied to the workers
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        _collect(inliers, pending.pop(future), future.result(), reporter)
            for future in as_completed(list(pending)):
                _collect(inliers, pending.pop(future), future.result(), reporter)
    except BrokenProcessPool:
        raise SearcherError("a verification worker died (out of memory?); try --workers 1") from None
    return inliers


def _collect(inliers: np.ndarray, start: int, result: np.ndarray, reporter: Reporter) -> None:
    inliers[start : start + len(result)] = result
    reporter.advance(len(result))


def _mirror_check(members: list[Member], pairs: np.ndarray, engine, reporter: Reporter, needed: np.ndarray) -> np.ndarray:
    """Inliers of the pairs with the first image decoded again and mirrored (ORB is not flip-invariant)."""
    orb = OrbExtractor()
    ids = sorted({members[int(b)].image_id for _, b in pairs})
    stored = {i: orb.from_blob(blob) for i, blob in _load_orb(engine, ids).items()}
    mirrored: dict[int, np.ndarray | None] = {}
    out = np.zeros(len(pairs), dtype=np.int64)
    unreadable = 0
    for k, ((a, b), need) in enumerate(zip(pairs, needed)):
        a, b = int(a), int(b)
        if a not in mirrored:
            try:
                bgr = images.load_image(members[a].path).bgr
                mirrored[a] = orb.extract(np.ascontiguousarray(bgr[:, ::-1]))
            except SearcherError:
                mirrored[a] = None
                unreadable += 1
        signature_b = stored.get(members[b].image_id)
        if mirrored[a] is not None and signature_b is not None:
            out[k] = match_orb(mirrored[a], signature_b, needed=int(need)).verification.inliers
    if unreadable:
        reporter.warn(f"{unreadable} file(s) could not be read again for the mirror check (moved or changed since ingest?)")
    return out


def find_duplicates(
    location: CatalogLocation,
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: int = DEFAULT_NEIGHBOURS,
    workers: int = 0,
    reporter: Reporter | None = None,
    review: ReviewOptions | None = None,
) -> DupsResult:
    """Near-duplicate groups of the catalog's image files (see the module docstring), ready for
    review: keep rule, reference folders, scope, missing files and links (searcher.group_review)."""
    from searcher.query import Searcher

    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"--threshold must be in (0, 1], not {threshold:g}")
    if neighbours < 1:
        raise UsageError("--neighbours must be at least 1")
    reporter = reporter or Reporter()
    review = review or ReviewOptions()
    result = DupsResult(groups=[], threshold=threshold, neighbours=neighbours)
    clock = time.perf_counter()
    with Searcher(location, warn=reporter.warn) as searcher:
        engine = searcher.engine
        set_aside = moved_out_ids(engine)  # moved out for review: not offered again
        members = [m for m in _file_rows(engine) if m.image_id not in set_aside and in_scope(m.path, review)]
        result.images = len(members)
        ids = np.array([m.image_id for m in members], dtype=np.int64)
        indexes = {name: index for name, index in searcher.indexes.items() if name in FUSED_SIGNATURES}
        vectors = {name: _stored_vectors(index, ids) for name, index in indexes.items()}
        result.timings["load"] = time.perf_counter() - clock

        clock = time.perf_counter()
        neighbour_pairs = _candidate_pairs(indexes, vectors, ids, neighbours, reporter)
        pairs = np.unique(np.concatenate([neighbour_pairs, _same_bytes_pairs(members)]), axis=0)
        result.timings["neighbours"] = time.perf_counter() - clock

        clock = time.perf_counter()
        fused, mirror = _fused_scores(pairs, vectors)
        hashes = np.array([m.sha256 for m in members])
        same_bytes = (hashes[pairs[:, 0]] == hashes[pairs[:, 1]]) & (hashes[pairs[:, 0]] != "") if len(pairs) else np.zeros(0, bool)
        need = np.array([_need(f, threshold) for f in fused], dtype=np.int64)  # -1: cannot pass
        result.timings["score"] = time.perf_counter() - clock

        clock = time.perf_counter()
        has_orb = "orb" in searcher.extractors
        if not has_orb and len(pairs):
            reporter.warn("the catalog has no ORB signatures: pairs cannot be verified, only near-identical ones are linked")
        todo = np.flatnonzero((need >= 0) & ~same_bytes) if has_orb else np.empty(0, dtype=np.int64)
        inliers = np.zeros(len(pairs), dtype=np.int64)
        inliers[todo] = _verify(engine, ids[pairs[todo]], need[todo], workers, reporter)
        result.verified_pairs = len(todo)
        scores = pair_scores(fused, inliers)
        retry = np.flatnonzero((scores < threshold) & (mirror >= MIRROR_SIMILARITY) & (need >= 0) & ~same_bytes)
        if has_orb and len(retry):
            mirrored = _mirror_check(members, pairs[retry], engine, reporter, need[retry])
            better = mirrored > inliers[retry]
            inliers[retry[better]] = mirrored[better]
            scores[retry] = pair_scores(fused[retry], inliers[retry])
        scores[same_bytes] = 1.0
        result.timings["verify"] = time.perf_counter() - clock
        ignored_groups, ignored = ignored_group_ids(engine), ignored_pairs(engine)

    linked = np.flatnonzero(scores >= threshold)
    linked = linked[[_sha_pair(members, a, b) not in ignored for a, b in pairs[linked]]] if ignored else linked
    result.candidate_pairs = len(pairs)
    result.linked_pairs = len(linked)
    groups, result.review = prepare_groups(_groups(members, pairs[linked], scores[linked]), review, group_id)
    if result.review.missing:
        reporter.warn(
            f"{result.review.missing} file(s) in the catalog are gone from disk (e.g. {result.review.missing_paths[0]}) "
            "and were left out; `searcher prune` removes them"
        )
    result.groups = [g for g in groups if g.id not in ignored_groups]
    result.ignored_groups = len(groups) - len(result.groups)
    return result


def _sha_pair(members: list[Member], a: int, b: int) -> tuple[str, str]:
    return tuple(sorted((members[a].sha256, members[b].sha256)))


def pair_scores(fused: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """searcher.compare.pair_score of every pair at once."""
    orb = np.clip((inliers - MIN_INLIERS) / (3.0 * MIN_INLIERS), 0.0, 1.0)
    return (fused + orb) / 2.0


def _need(fused: float, threshold: float) -> int:
    needed = required_inliers(fused, threshold)
    return -1 if needed is None else needed


def _groups(members: list[Member], pairs: np.ndarray, scores: np.ndarray) -> list[Group]:
    union = _UnionFind(len(members))
    best = np.zeros(len(members))
    for (a, b), score in zip(pairs, scores):
        union.union(int(a), int(b))
        best[a] = max(best[a], score)
        best[b] = max(best[b], score)
    components: dict[int, list[int]] = {}
    for k in np.unique(pairs.ravel()) if len(pairs) else []:
        components.setdefault(union.find(int(k)), []).append(int(k))
    groups = []
    for positions in components.values():
        group_members = _one_per_file([Member(**{**members[k].__dict__, "score": float(best[k])}) for k in positions])
        if len(group_members) >= 2:
            groups.append(_make_group(group_members))
    return _sorted_groups(groups)


def _one_per_file(group_members: list[Member]) -> list[Member]:
    """One member per file on disk (step 5): of the paths naming one file, the one that is not a
    symlink, then the first in sort order; it keeps the best score of them."""
    by_file: dict[object, list[Member]] = {}
    for m in group_members:
        identity = images.path_identity(m.path)
        key = (identity.device, identity.inode) if identity is not None else m.path
        by_file.setdefault(key, []).append(m)
    out = []
    for names in by_file.values():
        chosen = min(names, key=lambda m: (os.path.islink(m.path), m.path))
        chosen.score = max(m.score for m in names)
        out.append(chosen)
    return out


def _make_group(group_members: list[Member]) -> Group:
    keep, reason = choose_keep(group_members)
    others = sorted((m for m in group_members if m is not keep), key=lambda m: (-m.score, m.path))
    return Group(id=group_id(group_members), keep=keep, keep_reason=reason, members=[keep, *others])


def _sorted_groups(groups: list[Group]) -> list[Group]:
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


# ---- moves and their undo ----


@dataclass
class Move:
    group: str
    image_id: int
    source: str
    target: str
    sha256: str
    size: int
    mtime_ns: int


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_moves(groups: list[Group], destination: str | os.PathLike) -> list[Move]:
    """DEST/<group id>/<file name> for every member but the kept copy (a name taken gets ~2, ~3...).
    Members already under DEST stay where they are."""
    destination = os.path.abspath(os.fspath(destination))
    taken: set[str] = set()
    moves = []
    for group in groups:
        for member in group.members[1:]:
            if _under(member.path, destination) or member.path in group.protected:
                continue
            folder = os.path.join(destination, group.id)
            stem, ext = os.path.splitext(os.path.basename(member.path))
            target, n = os.path.join(folder, stem + ext), 1
            while target in taken or os.path.lexists(target):
                n += 1
                target = os.path.join(folder, f"{stem}~{n}{ext}")
            taken.add(target)
            moves.append(Move(group.id, member.image_id, member.path, target, member.sha256, member.size, member.mtime_ns))
    return moves


def _move_file(source: str, target: str) -> None:
    """Move without ever overwriting: a hard link (fails if the target exists) then unlink the source;
    across file systems, an exclusive-create copy with the source's times, then unlink."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # other file system, or links not supported
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        shutil.copystat(source, target)
        if os.path.getsize(target) != os.path.getsize(source):  # keep both rather than risk the only copy
            raise OSError(f"copy to {target} is incomplete; the original is left in place")
    os.unlink(source)


def _unchanged(path: str, size: int, mtime_ns: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


@dataclass
class MoveOutcome:
    moved: list[Move] = field(default_factory=list)
    skipped: list[tuple[Move, str]] = field(default_factory=list)


def move_duplicates(
    groups: list[Group], moves: list[Move], log_path: str | os.PathLike, location: CatalogLocation | None = None, warn=None
) -> MoveOutcome:
    """Carry out planned moves: each logged (and flushed) before it is done, then the catalog row re-pointed."""
    warn = warn or (lambda message: None)
    keep_of = {g.id: g.keep for g in groups}
    outcome = MoveOutcome()
    engine = open_catalog(location, create=False) if location is not None else None
    log_path = os.path.abspath(os.fspath(log_path))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    safe_groups: dict[str, str | None] = {}
    try:
        with open(log_path, "a", encoding="utf-8") as log:
            for move in moves:
                if move.group not in safe_groups:
                    keep = keep_of.get(move.group)
                    ok = keep is not None and _unchanged(keep.path, keep.size, keep.mtime_ns)
                    safe_groups[move.group] = None if ok else f"kept copy {keep.path if keep else '?'} is missing or changed since ingest"
                reason = safe_groups[move.group] or _not_a_copy(move.source, keep_of[move.group].path)
                if reason is None and not _unchanged(move.source, move.size, move.mtime_ns):
                    reason = "missing or changed since ingest (run searcher ingest)"
                if reason is None and os.path.lexists(move.target):
                    reason = f"target {move.target} exists"
                if reason is not None:
                    outcome.skipped.append((move, reason))
                    warn(f"not moved: {move.source}: {reason}")
                    continue
                entry = {
                    "format": LOG_FORMAT,
                    "op": "move",
                    "group": move.group,
                    "from": move.source,
                    "to": move.target,
                    "sha256": move.sha256,
                    "size": move.size,
                    "catalog": str(location.directory) if location is not None else None,
                    "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                log.flush()
                os.fsync(log.fileno())  # the log knows of the move before the file system does
                try:
                    _move_file(move.source, move.target)
                except OSError as e:
                    outcome.skipped.append((move, f"cannot move: {e.strerror or e}"))
                    warn(f"not moved: {move.source}: {e.strerror or e}")
                    continue
                outcome.moved.append(move)
                if engine is not None:
                    _repoint(engine, move.source, move.target, warn, moved_out=log_path)
    finally:
        if engine is not None:
            engine.dispose()
    return outcome


def _not_a_copy(source: str, kept: str) -> str | None:
    """Why moving `source` would free nothing or break a link, else None."""
    if os.path.islink(source):
        return "is a symbolic link (moving it frees nothing)"
    identity, kept_identity = images.path_identity(source), images.path_identity(kept)
    if identity is not None and kept_identity is not None and (identity.device, identity.inode) == (kept_identity.device, kept_identity.inode):
        return f"is the kept file {kept} under another name"
    return None


def _repoint(engine, old: str, new: str, warn, moved_out: str | None) -> None:
    """The catalog row of `old` now describes `new` (same bytes, same mtime: the next ingest sees it
    unchanged). `moved_out`: the log of a move for review (the row is set aside, see
    searcher.review_state); None: an undo (the row is offered again)."""
    with new_session(engine) as session:
        if session.scalar(select(ImageRow.id).where(ImageRow.path == new)) is not None:
            warn(f"catalog already has a row for {new}; run searcher ingest to reconcile")
            return
        image_id = session.scalar(select(ImageRow.id).where(ImageRow.path == old))
        if image_id is None:
            return
        session.execute(update(ImageRow).where(ImageRow.id == image_id).values(path=new))
        if moved_out is not None:
            mark_moved_out(session, image_id, old, moved_out)
        else:
            clear_moved_out(session, image_id)
        session.commit()


@dataclass
class UndoOutcome:
    restored: list[tuple[str, str]] = field(default_factory=list)  # (moved-to path, restored path)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def read_log(log_path: str | os.PathLike) -> list[dict]:
    """The move entries of a log written by move_duplicates."""
    entries = []
    try:
        with open(log_path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise SearcherError(f"{log_path}:{number}: not a searcher move log line") from None
                if entry.get("op") == "move" and {"from", "to", "size"} <= set(entry):
                    entries.append(entry)
                elif entry.get("op") == "link" and {"path", "target", "kind", "sha256"} <= set(entry):
                    entries.append(entry)
    except FileNotFoundError:
        raise UsageError(f"no such log: {log_path}") from None
    except OSError as e:
        raise SearcherError(f"cannot read {log_path}: {e.strerror}") from None
    return entries


def undo_moves(log_path: str | os.PathLike, location: CatalogLocation | None = None, warn=None) -> UndoOutcome:
    """Move every logged file back, newest move first, never overwriting; re-point the catalog rows.

    The catalog is `location`, else the one each log line names. Entries already undone, or whose
    file is no longer where the log put it, are skipped and said so; running undo twice is harmless.
    """
    warn = warn or (lambda message: None)
    outcome = UndoOutcome()
    engines: dict[str, object] = {}
    try:
        for entry in reversed(read_log(log_path)):
            if entry["op"] == "link":
                _undo_link(entry, outcome, warn)
                continue
            source, target = entry["from"], entry["to"]
            if os.path.lexists(source):
                reason = "already back" if not os.path.lexists(target) else f"{source} exists (not overwritten)"
                outcome.skipped.append((target, reason))
                continue
            if not os.path.isfile(target):
                outcome.skipped.append((target, "not found where the log moved it"))
                warn(f"not restored: {target}: not found")
                continue
            if os.path.getsize(target) != entry["size"] or (entry.get("sha256") and _sha256(target) != entry["sha256"]):
                outcome.skipped.append((target, "its bytes differ from the moved file"))
                warn(f"not restored: {target}: its bytes differ from the moved file")
                continue
            _move_file(target, source)
            outcome.restored.append((target, source))
            try:
                os.rmdir(os.path.dirname(target))  # the group folder the moves made, once empty
            except OSError:
                pass  # not empty: other files remain there
            engine = _engine_for(location, entry.get("catalog"), engines, warn)
            if engine is not None:
                _repoint(engine, target, source, warn, moved_out=None)
    finally:
        for engine in engines.values():
            if engine is not None:
                engine.dispose()
    return outcome


def _undo_link(entry: dict, outcome: UndoOutcome, warn) -> None:
    from searcher.links import undo_link

    try:
        reason = undo_link(entry)
    except OSError as e:
        reason = f"cannot restore: {e.strerror or e}"
    if reason is None:
        outcome.restored.append((f"link to {entry['target']}", entry["path"]))
    else:
        outcome.skipped.append((entry["path"], reason))
        if reason != "already gone":
            warn(f"not restored: {entry['path']}: {reason}")


def relink_row(location: CatalogLocation, path: str) -> None:
    """After a link replaced a file with the kept copy's bytes: the row takes the link's size and
    time, so the next ingest sees it unchanged."""
    engine = open_catalog(location, create=False)
    try:
        st = os.stat(path)
        with new_session(engine) as session:
            session.execute(update(ImageRow).where(ImageRow.path == path).values(size=st.st_size, mtime_ns=st.st_mtime_ns))
            session.commit()
    finally:
        engine.dispose()


def _engine_for(location: CatalogLocation | None, logged: str | None, engines: dict, warn):
    directory = str(location.directory) if location is not None else logged
    if directory is None:
        return None
    if directory not in engines:
        try:
            engines[directory] = open_catalog(CatalogLocation(Path(directory)), create=False)
        except CatalogError as e:
            warn(f"files are restored but the catalog is not updated: {e}")
            engines[directory] = None
    return engines[directory]


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_log_path(destination: str | os.PathLike) -> Path:
    """DEST/searcher-moves-<UTC time>.jsonl"""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(os.path.abspath(os.fspath(destination))) / f"searcher-moves-{stamp}.jsonl"
