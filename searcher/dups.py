"""Near-duplicate groups of a whole catalog, the copy to keep in each, and safe, logged moves.

Grouping recipe (no n x n matrix; the work grows with n * neighbours):
1. Candidates: each image's `neighbours` nearest images in every vector index of the catalog
   (hist, mse, ae, cnn: each searched with the image's own stored vector), plus every pair of files with
   the same bytes (sha256), which are linked with score 1 without further work. The indexes are
   searched one at a time and the stored vectors read in blocks from each index's saved copy, so
   memory holds one graph and the candidate pairs, not every signature's vectors and graph.
2. Exact similarities of each candidate pair from the stored vectors, as a query computes them
   (hist 1 - Bhattacharyya, mse 1 - 2*RMSE over the best of the 8 flips/rotations, ae and cnn
   cosine), and the calibrated logit of "same picture" (searcher.scoring.calibrate).
3. Verification with the stored ORB signatures, as a query verifies: cross-checked matches, then
   homography inliers; pairs below scoring.VERIFY_FLOOR without ORB are not verified (nor linked).
   The pair rule is searcher.scoring's, p(same picture) >= threshold, and because dups acts on
   files, ORB must confirm the pair too (`linked`: CHANCE_INLIERS inliers or more), unless its
   files have the same bytes; a catalog without ORB signatures links pairs that pass without
   inliers, with a warning. From its similarities each pair needs a number of inliers; the
   homography is skipped when there are fewer matches than that (exact). Pairs go best possible
   score first, in chunks (at most `verify_budget` per image, its most promising); a pair whose
   images are already linked through verified pairs is skipped (it cannot change a group), which is
   decided with the links of the chunks WINDOW before it, so the same pairs are verified whatever
   the worker count. ORB is not flip-invariant, so a pair whose thumbnails match best with one
   mirrored, and closely (mse similarity >= MIRROR_SIMILARITY), and that did not pass, is verified
   once more with one image decoded again and mirrored.
4. Groups: connected components of the linked pairs (union-find); single images are left out.
   A member's score is the best score of its linked pairs. Pairs and groups a reviewer marked
   "not duplicates" (`dups --ignore`, `--ignore-pair`, `searcher serve`) are left out: such pairs
   are not linked, such groups not returned. Files set aside for review by `--move-to` take no part.
5. One file, one member: paths that name the same file (a symlink and its target, hard links of
   one inode: images.path_identity) are collapsed into one member, the path that is not a symlink
   first. Moving one of them would free nothing (or leave a link dangling); a group left with one
   file is no group.

The copy to keep and the group id: searcher.keep. Moves and their undo: searcher.moves.
"""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from searcher import images, scoring
from searcher.calibration import CHANCE_INLIERS, logit, sigmoid
from searcher.errors import SearcherError, UsageError
from searcher.features.work_image import WorkImage, mirrored_work
from searcher.group_review import ReviewCounts, ReviewOptions, in_scope, prepare_groups
from searcher.keep import Group, Member, choose_keep, group_id, keep_key, make_group, sorted_groups
from searcher.scoring import DEFAULT_THRESHOLD, FUSED_SIGNATURES
from searcher.workers import process_pool

if TYPE_CHECKING:
    from searcher.catalog import Catalog

__all__ = ["DupsResult", "Group", "Member", "choose_keep", "find_duplicates", "group_id", "keep_key", "pair_scores"]

DEFAULT_NEIGHBOURS = 10
DEFAULT_VERIFY_BUDGET = 100  # most ORB verifications per image (its most promising pairs first)
MIRROR_SIMILARITY = 0.9  # mse similarity, mirrored, from which a pair gets the mirror check
CHUNK = 1024  # candidate pairs per verification task
WINDOW = 8  # verification tasks in flight (fixed: the pairs skipped must not depend on the worker count)
SCORE_BLOCK = 8192  # candidate pairs scored at once (bounded memory)


@dataclass
class DupsResult:
    groups: list[Group]
    images: int = 0  # catalog rows that are files (video frames and crops are not)
    candidate_pairs: int = 0
    verified_pairs: int = 0  # pairs whose ORB matches were computed
    linked_pairs: int = 0
    ignored_groups: int = 0  # groups found but marked "not duplicates" by a reviewer, left out
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

    def linked(self, a, b) -> bool:
        return self.find(int(a)) == self.find(int(b))


def _file_rows(catalog: Catalog) -> list[Member]:
    """Catalog rows that are image files (status ok, an absolute path: not a video frame key), in a
    canonical order, by (sha256, path): positions, pair directions and tie-breaks follow it, never
    the image ids (which follow the order files were ingested in)."""
    rows = [
        Member(r.id, r.path, r.sha256 or "", r.width or 0, r.height or 0, r.size or 0, r.mtime_ns or 0)
        for r in catalog.store.ok_rows()
        if os.path.isabs(r.path)
    ]
    return sorted(rows, key=lambda m: (m.sha256, m.path))


class _StoredVectors:
    """One signature's stored vectors of the dups members, by member position (NaN rows where a
    member has none). Read in blocks from the index's saved vector copy when it has a current one
    (catalog/vector_copy.py: the same float32 values), else taken from the index and held: dups at
    100k images held every signature's vectors (0.8 GB) besides the graphs."""

    def __init__(self, index, ids: np.ndarray) -> None:
        self.dim = index.dim
        self.present = np.array([int(i) in index for i in ids], dtype=bool)
        opener = getattr(index, "open_saved_vectors", None)  # hnswlib indexes; a Milvus collection has none
        self._copy = opener() if opener is not None else None
        self._matrix: np.ndarray | None = None
        if self._copy is not None:
            rows, found = self._copy.rows(ids)
            self._rows = np.where(self.present & found, rows, -1)
        else:
            self._matrix = np.full((len(ids), index.dim), np.nan, dtype=np.float32)
            if self.present.any():
                self._matrix[self.present] = index.vectors([int(i) for i in ids[self.present]])

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors of the members at these positions, one row each (NaN where absent)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self._matrix is not None:
            return self._matrix[positions]
        out = np.full((len(positions), self.dim), np.nan, dtype=np.float32)
        rows = self._rows[positions]
        here = rows >= 0
        unique, inverse = np.unique(rows[here], return_inverse=True)  # each row read once
        out[here] = self._copy.read(unique)[inverse.ravel()]
        return out

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()


def _candidate_pairs(
    catalog: Catalog,
    names: list[str],
    ids: np.ndarray,
    neighbours: int,
    reporter: Reporter,
    timings: dict,
    vectors: dict[str, _StoredVectors],
) -> np.ndarray:
    """Unique (i, j) positions, i < j, of each image and its nearest neighbours in every index. The
    indexes are visited one at a time (Catalog.each_index); each one's stored vectors are put in
    `vectors` (the caller closes them)."""
    position = {int(image_id): k for k, image_id in enumerate(ids)}
    found: list[np.ndarray] = []
    clock = time.perf_counter()
    for name, index in catalog.each_index(names):
        vectors[name] = stored = _StoredVectors(index, ids)
        timings["load"] = timings.get("load", 0.0) + time.perf_counter() - clock
        clock = time.perf_counter()
        rows = np.flatnonzero(stored.present)
        reporter.start(len(rows), f"{name} neighbours")
        for start in range(0, len(rows), 1024):
            block_rows = rows[start : start + 1024]
            labels, _ = index.search_many(stored.rows(block_rows), neighbours + 1)  # +1: the image itself comes back
            block = [
                (k, position[int(j)])
                for k, row in zip(block_rows, labels)
                for j in row
                if int(j) in position and position[int(j)] != k
            ]
            if block:
                found.append(np.array(block, dtype=np.int64))
            reporter.advance(len(block_rows))
        del index  # before the next one is loaded: one graph in memory at a time
        timings["neighbours"] = timings.get("neighbours", 0.0) + time.perf_counter() - clock
        clock = time.perf_counter()
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def _calibrated(pairs: np.ndarray, vectors: dict[str, _StoredVectors], has_orb: bool) -> tuple[scoring.Calibrated, np.ndarray]:
    """(calibrated logits of each pair, mirror similarity), computed in blocks with searcher.scoring's
    similarities (hist from the stored sqrt-histograms, mse over the 8 orientations, ae and cnn cosine
    of unit vectors) and grey flags (from the histograms). The mirror similarity is the mse similarity
    when the thumbnails match best with one of them mirrored, else 0."""
    sims = {name: np.full(len(pairs), np.nan) for name in vectors}
    grey = np.zeros(len(pairs), dtype=bool)
    mirror = np.zeros(len(pairs))
    for start in range(0, len(pairs), SCORE_BLOCK):
        a, b = pairs[start : start + SCORE_BLOCK, 0], pairs[start : start + SCORE_BLOCK, 1]
        block = slice(start, start + len(a))
        for name, stored in vectors.items():
            va, vb = stored.rows(a), stored.rows(b)
            if name == "hist":
                sims[name][block] = scoring.bhattacharyya_similarity(va, vb)
                grey[block] = scoring.grey_pairs(np.square(va), np.square(vb))
            elif name == "mse":
                low, best = scoring.oriented_mse(va, vb)
                sims[name][block] = np.where(np.isnan(low), np.nan, scoring.mse_similarity(np.nan_to_num(low)))
                mirror[block] = np.where(~np.isnan(low) & (best >= 4), sims[name][block], 0.0)  # 4..7: mirrored
            else:
                sims[name][block] = scoring.cosine_similarity(np.einsum("ij,ij->i", va, vb))
    return scoring.calibrate(sims, grey, has_orb), mirror


def _within_budget(pairs: np.ndarray, upper: np.ndarray, n: int, budget: int) -> np.ndarray:
    """True for the pairs among the `budget` most promising (highest upper bound) of either image."""
    if not len(pairs) or np.bincount(pairs.ravel(), minlength=n).max() <= budget:
        return np.ones(len(pairs), dtype=bool)  # the usual case: no image has more pairs than that
    keep = np.zeros(len(pairs), dtype=bool)
    seen = np.zeros(n, dtype=np.int64)
    for k in np.lexsort((pairs[:, 1], pairs[:, 0], -upper)):
        a, b = pairs[k]
        keep[k] = seen[a] < budget or seen[b] < budget
        seen[a] += 1
        seen[b] += 1
    return keep


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


def _same_bytes(members: list[Member], pairs: np.ndarray) -> np.ndarray:
    """True for the pairs whose two files have the same (known) sha256. Compared as small integer
    codes: indexing the 64-character strings themselves by 2.4 M pairs took 1.2 GB at once."""
    _, codes = np.unique([m.sha256 for m in members], return_inverse=True)
    codes = codes.ravel()
    known = np.array([m.sha256 != "" for m in members], dtype=bool)
    a, b = pairs[:, 0], pairs[:, 1]
    return (codes[a] == codes[b]) & known[a]


# Verification runs in worker processes for big catalogs; each task carries its pairs and their signatures.
_verifier: dict = {}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes


def _verify_task(task: tuple[np.ndarray, np.ndarray, dict[int, bytes]]) -> np.ndarray:
    """Inliers of each pair (a, b as image ids) given the inliers it needs; 0 when RANSAC was skipped."""
    pairs, needed, blobs = task
    from searcher.features.orb import OrbExtractor

    orb = _verifier.setdefault("orb", OrbExtractor())
    out = np.zeros(len(pairs), dtype=np.int64)
    signatures = {image_id: orb.from_blob(blob) for image_id, blob in blobs.items()}
    for k, ((a, b), need) in enumerate(zip(pairs, needed)):
        sa, sb = signatures.get(int(a)), signatures.get(int(b))
        if sa is not None and sb is not None:
            out[k] = scoring.verify(sa, sb, needed=int(need)).inliers
    return out


def _mirror_check(
    catalog: Catalog, members: list[Member], pairs: np.ndarray, reporter: Reporter, needed: np.ndarray
) -> np.ndarray:
    """Inliers of the pairs with the first image decoded again and mirrored (ORB is not flip-invariant)."""
    orb = catalog.extractors["orb"]
    stored = catalog.stored_signatures(sorted({members[int(b)].image_id for _, b in pairs}), "orb")
    mirrored: dict[int, np.ndarray | None] = {}
    out = np.zeros(len(pairs), dtype=np.int64)
    unreadable = 0
    for k, ((a, b), need) in enumerate(zip(pairs, needed)):
        a, b = int(a), int(b)
        if a not in mirrored:
            try:
                bgr = images.load_image(members[a].path).bgr
                mirrored[a] = orb.extract(mirrored_work(WorkImage(bgr)))
            except SearcherError:
                mirrored[a] = None
                unreadable += 1
        signature_b = stored.get(members[b].image_id)
        if mirrored[a] is not None and signature_b is not None:
            out[k] = scoring.verify(mirrored[a], signature_b, needed=int(need)).inliers
    if unreadable:
        reporter.warn(f"{unreadable} file(s) could not be read again for the mirror check (moved or changed since ingest?)")
    return out


def find_duplicates(
    catalog: Catalog,
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: int = DEFAULT_NEIGHBOURS,
    workers: int = 0,
    reporter: Reporter | None = None,
    verify_budget: int = DEFAULT_VERIFY_BUDGET,
    review: ReviewOptions | None = None,
) -> DupsResult:
    """Near-duplicate groups of the catalog's image files (see the module docstring), ready for
    review: keep rule, reference folders, scope, missing files (searcher.group_review)."""
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"--threshold must be in (0, 1], not {threshold:g}")
    if neighbours < 1:
        raise UsageError("--neighbours must be at least 1")
    if verify_budget < 0:
        raise UsageError(f"--verify-budget must be at least 0, not {verify_budget}")
    reporter = reporter or Reporter()
    result = DupsResult(groups=[], threshold=threshold, neighbours=neighbours)
    clock = time.perf_counter()
    review = review or ReviewOptions()
    set_aside = catalog.store.moved_out_ids()  # moved out for review: not offered again
    members = [m for m in _file_rows(catalog) if m.image_id not in set_aside and in_scope(m.path, review)]
    result.images = len(members)
    ids = np.array([m.image_id for m in members], dtype=np.int64)
    names = [name for name, extractor in catalog.extractors.items() if extractor.indexed and name in FUSED_SIGNATURES]
    result.timings["load"] = time.perf_counter() - clock
    vectors: dict[str, _StoredVectors] = {}
    try:
        neighbour_pairs = _candidate_pairs(catalog, names, ids, neighbours, reporter, result.timings, vectors)
        clock = time.perf_counter()
        pairs = np.unique(np.concatenate([neighbour_pairs, _same_bytes_pairs(members)]), axis=0)
        scored, mirror = _calibrated(pairs, vectors, "orb" in catalog.extractors)
    finally:
        for stored in vectors.values():
            stored.close()
    same_bytes = _same_bytes(members, pairs)
    need = scored.needed(scoring.threshold_logit(threshold)).astype(np.int64)  # -1: cannot pass
    need[scored.unverified() < logit(scoring.VERIFY_FLOOR)] = -1  # ORB lifts no copy from below the floor
    if "orb" in catalog.extractors:  # only pairs ORB confirms are linked (step 3)
        need[need >= 0] = np.maximum(need[need >= 0], CHANCE_INLIERS)
    need[~_within_budget(pairs, scored.upper(), len(members), verify_budget) & (need > 0)] = -1
    result.timings["score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    scores = _verified_scores(catalog, members, pairs, scored, mirror, need, same_bytes, threshold, workers, reporter, result)
    result.timings["verify"] = time.perf_counter() - clock

    result.candidate_pairs = len(pairs)
    _review_groups(catalog, members, pairs, scores, review, reporter, result)
    return result


def _review_groups(catalog: Catalog, members, pairs, scores, review, reporter, result) -> None:
    """Linked pairs (minus the ignored ones) -> groups ready to act on (searcher.group_review), minus the ignored groups."""
    linked = np.flatnonzero(scores >= result.threshold)
    ignored = catalog.store.ignored_pairs()
    if ignored:
        linked = linked[[_sha_pair(members, a, b) not in ignored for a, b in pairs[linked]]]
    result.linked_pairs = len(linked)
    groups, result.review = prepare_groups(_groups(members, pairs[linked], scores[linked]), review, group_id)
    if result.review.missing:
        reporter.warn(
            f"{result.review.missing} file(s) in the catalog are gone from disk (e.g. {result.review.missing_paths[0]}) "
            "and were left out; `searcher prune` removes them"
        )
    ignored_groups = catalog.store.ignored_group_ids()
    result.groups = [g for g in groups if g.id not in ignored_groups]
    result.ignored_groups = len(groups) - len(result.groups)


def _sha_pair(members: list[Member], a: int, b: int) -> tuple[str, str]:
    return tuple(sorted((members[a].sha256, members[b].sha256)))


def _verified_scores(
    catalog: Catalog, members, pairs, scored, mirror, need, same_bytes, threshold, workers, reporter, result
) -> np.ndarray:
    """Pair scores after ORB verification and the mirror re-check (see the module docstring, step 3).

    Pairs are verified best possible score first; a pair whose two images are already linked through
    other pairs is skipped (its link would not change any group). Same bytes link first, without ORB.
    """
    has_orb = "orb" in catalog.extractors
    if not has_orb and len(pairs):
        reporter.warn("the catalog has no ORB signatures: pairs cannot be verified, only near-identical ones are linked")
    union = _UnionFind(len(members))
    for a, b in pairs[same_bytes | ((need == 0) & (not has_orb))]:
        union.union(int(a), int(b))
    # Pairs that pass without inliers are verified too (unless already linked): ORB must confirm them
    # (`linked`); they go first, being the most promising.
    todo = np.flatnonzero((need >= 0) & ~same_bytes) if has_orb else np.empty(0, dtype=np.int64)
    todo = todo[np.lexsort((pairs[todo, 1], pairs[todo, 0], -scored.upper()[todo]))]
    inliers = np.zeros(len(pairs), dtype=np.int64)
    ids = np.array([m.image_id for m in members], dtype=np.int64)
    verifier = _Verifier(catalog, ids, pairs, need, scored, threshold, union, inliers)
    result.verified_pairs = verifier.run(todo, workers, reporter)

    def verified_scores() -> np.ndarray:
        scores = pair_scores(scored, inliers)
        scores[verifier.done & ~linked(scores, inliers, threshold)] = 0.0  # verified, not confirmed: not linked
        return scores

    scores = verified_scores()
    retry = [
        k
        for k in np.flatnonzero(verifier.done & (scores < threshold) & (mirror >= MIRROR_SIMILARITY))
        if not union.linked(*pairs[k])
    ]
    if retry:
        retry = np.array(retry, dtype=np.int64)
        mirrored = _mirror_check(catalog, members, pairs[retry], reporter, need[retry])
        better = mirrored > inliers[retry]
        inliers[retry[better]] = mirrored[better]
        scores = verified_scores()  # only the retried pairs' inliers changed
    scores[same_bytes] = 1.0
    return scores


class _Verifier:
    """ORB verification of candidate pairs in chunks, in order, in this process or a pool.

    Chunk c is filtered (pairs already linked are dropped) with the links of chunks c - WINDOW and
    before, whatever the number of workers: the same pairs are verified on every run. Each chunk's
    ORB signatures are read from the catalog when it is sent (memory bounded by WINDOW chunks).
    """

    def __init__(self, catalog: Catalog, ids, pairs, need, scored, threshold, union: _UnionFind, inliers):
        self.catalog, self.ids, self.pairs, self.need, self.scored = catalog, ids, pairs, need, scored
        self.threshold, self.union, self.inliers = threshold, union, inliers
        self.done = np.zeros(len(pairs), dtype=bool)

    def run(self, order: np.ndarray, workers: int, reporter: Reporter) -> int:
        """Verify the pairs at these positions (in this order); returns how many were verified."""
        chunks = [order[start : start + CHUNK] for start in range(0, len(order), CHUNK)]
        reporter.start(len(order), "ORB verification")
        workers = workers or os.cpu_count() or 1
        pool = process_pool(workers, ["searcher.dups"], _init_worker) if workers > 1 and len(chunks) > 2 else None
        pending: dict[int, tuple[np.ndarray, object]] = {}
        try:
            for c in range(len(chunks) + WINDOW):
                if c - WINDOW in pending:
                    self._apply(*pending.pop(c - WINDOW))
                if c < len(chunks):
                    keep = np.array([k for k in chunks[c] if not self.union.linked(*self.pairs[k])], dtype=np.int64)
                    reporter.advance(len(chunks[c]))
                    if len(keep):
                        task = self._task(keep)
                        pending[c] = (keep, pool.submit(_verify_task, task) if pool else _verify_task(task))
        except BrokenProcessPool:
            raise SearcherError("a verification worker died (out of memory?); try --workers 1") from None
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return int(self.done.sum())

    def _task(self, keep: np.ndarray):
        pair_ids = self.ids[self.pairs[keep]]
        orb = self.catalog.extractors["orb"]
        blobs = self.catalog.store.signatures_by_ids("orb", orb.version, sorted({int(i) for i in np.unique(pair_ids)}))
        return pair_ids, self.need[keep], blobs

    def _apply(self, keep: np.ndarray, outcome) -> None:
        inliers = outcome.result() if hasattr(outcome, "result") else outcome
        self.inliers[keep] = inliers
        self.done[keep] = True
        for k in keep[linked(pair_scores(self.scored, inliers, keep), inliers, self.threshold)]:
            self.union.union(int(self.pairs[k, 0]), int(self.pairs[k, 1]))


def linked(scores: np.ndarray, inliers: np.ndarray, threshold: float) -> np.ndarray:
    """The dups rule for verified pairs: the calibrated score reaches the threshold AND ORB confirms
    the pair (CHANCE_INLIERS or more). Without the second half, pictures that global signatures
    cannot tell apart but ORB finds no match between (smooth skies, tiles of one photo) were
    chained into groups of hundreds (bench.whole_run: pair precision 0.02)."""
    return (np.asarray(scores) >= threshold) & (np.asarray(inliers) >= CHANCE_INLIERS)


def pair_scores(scored: scoring.Calibrated, inliers: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """The calibrated probability of every pair (or of the pairs at `rows`, with their inliers) at once."""
    return np.asarray(sigmoid(scored.logits(inliers, rows)), dtype=np.float64)


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
            groups.append(make_group(group_members))
    return sorted_groups(groups)


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
