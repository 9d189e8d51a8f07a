"""Query: shortlist per metric -> exact re-scoring -> fusion -> ORB/RANSAC re-ranking.

Fusion rule. Every candidate found by any index is scored by every signature, each turned into
a similarity in [0, 1] (hist: the chosen compareHist method; mse: 1 - 2*RMSE; ae: cosine), and
the fused score is their plain mean. A mean of calibrated similarities, rather than reciprocal
rank fusion, keeps the score meaningful on its own (it can be thresholded, and a lone
neighbour that is far away in every metric scores low), and every candidate gets every metric
because exact scores come from the stored vectors.

Re-ranking. The best RERANK_DEPTH fused candidates are verified with ORB: cross-checked Hamming
matches, then homography inliers (MAGSAC++), mapped to v in [0, 1] (0 under MIN_INLIERS inliers).
The final score is (fused + v) / 2, so a geometrically verified copy outranks every unverified
candidate, and unverified candidates keep their fused order.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from searcher import images
from searcher.catalog import CatalogLocation, ImageRow, SignatureRow, get_generation, new_session, open_catalog
from searcher.errors import ImageError, UsageError, one_line
from searcher.features import build_extractor
from searcher.features.histogram import METHODS, HistogramExtractor, method_similarity
from searcher.features.orb import OrbExtractor, Verification
from searcher.features.thumbnail import mse_similarity
from searcher.index import open_index

METRICS = ("fused", "hist", "mse", "ae", "orb")
VECTOR_METRICS = ("hist", "mse", "ae")
SHORTLIST = 100  # neighbours asked of each index (at least 5x --top)
RERANK_DEPTH = 30  # fused candidates verified with ORB (at least 2x --top; 3x that for --metric orb)


@dataclass
class Hit:
    image_id: int
    path: str
    score: float  # higher = more similar, whatever the metric
    scores: dict[str, float] = field(default_factory=dict)
    # for a video frame or person crop, `path` is the video's and these say where in it
    frame: int | None = None
    time: float | None = None
    box: tuple[int, ...] | None = None


@dataclass
class QueryResult:
    query: str
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


class Searcher:
    """An open catalog ready to answer queries: extractors built and indexes loaded once."""

    def __init__(self, location: CatalogLocation, warn=None, max_megapixels: float = images.DEFAULT_MAX_MEGAPIXELS):
        self.warn = warn or (lambda message: None)
        self.max_megapixels = max_megapixels
        self.engine = open_catalog(location, create=False)
        with new_session(self.engine) as session:
            generation = get_generation(session)
            stored = session.execute(
                select(SignatureRow.extractor, SignatureRow.version, func.count()).group_by(SignatureRow.extractor, SignatureRow.version)
            ).all()
        self.extractors = {}
        for name in dict.fromkeys(name for name, _, _ in stored):
            extractor = build_extractor(name)
            stale = sum(n for sig, version, n in stored if sig == name and version != extractor.version)
            if stale:
                self.warn(f"{stale} {name} signature(s) are from another extractor version; run `searcher ingest` to refresh them")
            self.extractors[name] = extractor
        self.indexes = {
            name: open_index(self.engine, location, extractor, generation, self.warn)
            for name, extractor in self.extractors.items()
            if extractor.indexed
        }

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def metrics(self) -> tuple[str, ...]:
        available = [m for m in VECTOR_METRICS if m in self.indexes]
        if "orb" in self.extractors:
            available.append("orb")
        return ("fused", *available) if available else ()

    def _query_signatures(self, bgr: np.ndarray) -> dict[str, list[np.ndarray]]:
        """Each signature as a list of query variants (e.g. flips); a candidate's best variant counts."""
        try:
            return {name: extractor.query_signatures(bgr) for name, extractor in self.extractors.items()}
        except Exception as e:  # one image a feature library chokes on must not abort a folder of queries
            raise ImageError(one_line(f"signature failed: {type(e).__name__}: {e}")) from None

    def query(self, path: str, top: int = 10, metric: str = "fused", hist_method: str = "bhattacharyya") -> QueryResult:
        """Nearest catalog images to one image file (which need not be in the catalog)."""
        if metric not in METRICS:
            raise UsageError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        if hist_method not in METHODS:
            raise UsageError(f"unknown histogram method {hist_method!r}; choose from {', '.join(METHODS)}")
        if metric not in self.metrics:
            raise UsageError(f"metric {metric!r} is not in this catalog (it has: {', '.join(self.metrics) or 'nothing yet'})")
        result = QueryResult(query=os.path.abspath(path))
        clock = time.perf_counter()
        try:
            signatures = self._query_signatures(images.load_image(path, self.max_megapixels).bgr)
        except ImageError as e:
            result.error = str(e)
            return result
        result.timings["extract"] = time.perf_counter() - clock

        clock = time.perf_counter()
        shortlist = max(SHORTLIST, 5 * top)
        searched = [metric] if metric in VECTOR_METRICS else [m for m in VECTOR_METRICS if m in self.indexes]
        candidates: dict[int, None] = {}
        for name in searched:
            variants = signatures[name] if (metric == name or self.extractors[name].search_variants) else signatures[name][:1]
            for variant in variants:
                ids, _ = self.indexes[name].search(self.extractors[name].embedding(variant), shortlist)
                candidates.update(dict.fromkeys(int(i) for i in ids))
        ids = list(candidates)
        similarities, raw = self._exact_scores(ids, signatures, hist_method)
        result.timings["search"] = time.perf_counter() - clock

        if metric in VECTOR_METRICS:
            order = sorted(range(len(ids)), key=lambda i: -similarities[metric][i])[:top]
            hits = [self._hit(ids[i], similarities[metric][i], similarities, raw, i) for i in order]
        else:
            fused = _fuse(similarities, len(ids))
            order = sorted(range(len(ids)), key=lambda i: -fused[i])
            # The ORB metric ranks a deeper fused shortlist by inliers alone.
            depth = max(RERANK_DEPTH, 2 * top) * (3 if metric == "orb" else 1)
            order = order[:depth]
            clock = time.perf_counter()
            stored_orb = self._load_orb([ids[i] for i in order]) if "orb" in signatures else {}
            result.timings["catalog"] = time.perf_counter() - clock
            clock = time.perf_counter()
            hits = []
            for i in order:
                hit = self._hit(ids[i], fused[i], similarities, raw, i)
                hit.scores["fused"] = float(fused[i])
                if "orb" in signatures:  # a candidate without an ORB signature counts as unverified
                    stored = stored_orb.get(ids[i])
                    v = self._best_verification(signatures["orb"], stored) if stored is not None else Verification(0, 0)
                    hit.scores.update(orb_matches=float(v.matches), orb_inliers=float(v.inliers))
                    # --metric orb ranks by inliers alone; its score stays a similarity (the verification in [0, 1])
                    hit.score = v.score if metric == "orb" else (fused[i] + v.score) / 2.0
                hits.append(hit)
            result.timings["rerank"] = time.perf_counter() - clock
            if metric == "orb":
                hits.sort(key=lambda h: (-h.scores.get("orb_inliers", 0.0), -h.scores.get("orb_matches", 0.0), -h.scores["fused"]))
            else:
                hits.sort(key=lambda h: (-h.score, -h.scores.get("orb_matches", 0.0), -h.scores["fused"]))
            hits = hits[:top]
        clock = time.perf_counter()
        self._fill_paths(hits)
        result.timings["catalog"] = result.timings.get("catalog", 0.0) + time.perf_counter() - clock
        result.hits = hits
        return result

    def _exact_scores(self, ids: list[int], signatures: dict, hist_method: str):
        """Per metric, the similarity of every candidate (NaN where it lacks that signature) and raw values."""
        similarities: dict[str, np.ndarray] = {}
        raw: dict[str, np.ndarray] = {}
        for name, index in self.indexes.items():
            present = [i for i in ids if i in index]
            sims = np.full(len(ids), np.nan, dtype=np.float64)
            values = np.full(len(ids), np.nan, dtype=np.float64)
            if present:
                vectors = index.vectors(present)
                where = [k for k, i in enumerate(ids) if i in index]
                variants = signatures[name]
                if name == "hist":
                    hist = self.extractors["hist"]
                    for k, vector in zip(where, vectors):
                        stored = HistogramExtractor.from_embedding(vector)
                        values[k] = hist.compare(variants[0], stored, hist_method)
                        sims[k] = method_similarity(hist_method, values[k])
                elif name == "mse":
                    queries = np.stack(variants).astype(np.float32)  # V x D
                    mse = ((vectors[:, None, :] - queries[None, :, :]) ** 2).mean(axis=2).min(axis=1)
                    values[where] = mse
                    sims[where] = [mse_similarity(m) for m in mse]
                else:  # cosine spaces store unit vectors
                    queries = np.stack([self.extractors[name].embedding(v) for v in variants]).astype(np.float32)
                    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
                    cosine = (vectors @ queries.T).max(axis=1)
                    values[where] = cosine
                    sims[where] = np.clip(cosine, 0.0, 1.0)
            similarities[name] = sims
            raw[_raw_name(name, hist_method)] = values
        return similarities, raw

    def _hit(self, image_id: int, score: float, similarities, raw, k: int) -> Hit:
        """Scores: every similarity (higher = more similar) under its signature's name, and the
        raw values that are distances (lower = more similar) under a `_distance` name."""
        scores = {name: float(values[k]) for name, values in raw.items() if not np.isnan(values[k]) and name.endswith("_distance")}
        for name, sims in similarities.items():
            if not np.isnan(sims[k]):
                scores[name] = float(sims[k])
        for name, values in raw.items():  # a histogram method that is a similarity keeps its own value too
            if name.startswith("hist_") and not name.endswith("_distance") and not np.isnan(values[k]):
                scores[name] = float(values[k])
        return Hit(image_id=image_id, path="", score=float(score), scores=scores)

    def _best_verification(self, variants: list[np.ndarray], stored: np.ndarray) -> Verification:
        orb: OrbExtractor = self.extractors["orb"]
        return max((orb.verify(variant, stored) for variant in variants), key=lambda v: (v.inliers, v.matches))

    def _load_orb(self, ids: list[int]) -> dict[int, np.ndarray]:
        """Stored ORB signatures of these images (one catalog read)."""
        orb: OrbExtractor = self.extractors["orb"]
        with new_session(self.engine) as session:
            rows = session.execute(
                select(SignatureRow.image_id, SignatureRow.data).where(
                    SignatureRow.image_id.in_(ids), SignatureRow.extractor == "orb", SignatureRow.version == orb.version
                )
            ).all()
        return {row.image_id: orb.from_blob(row.data) for row in rows}

    def _fill_paths(self, hits: list[Hit]) -> None:
        if not hits:
            return
        parent = aliased(ImageRow)
        with new_session(self.engine) as session:
            rows = session.execute(
                select(ImageRow.id, ImageRow.path, parent.path, ImageRow.frame_index, ImageRow.time_s, ImageRow.box)
                .outerjoin(parent, ImageRow.parent_id == parent.id)
                .where(ImageRow.id.in_([h.image_id for h in hits]))
            ).all()
        found = {row[0]: row for row in rows}
        for hit in hits:
            _, path, video_path, frame, time_s, box = found.get(hit.image_id, (None, "", None, None, None, None))
            hit.path = video_path or path
            if video_path:
                hit.frame, hit.time = frame, time_s
                hit.box = tuple(int(v) for v in box.split(",")) if box else None


DISTANCES = ("chisqr", "bhattacharyya")  # compareHist methods where lower = more similar


def _raw_name(signature: str, hist_method: str) -> str:
    """Name of a signature's raw value in Hit.scores: distances carry a `_distance` suffix."""
    if signature == "hist":
        return f"hist_{hist_method}" + ("_distance" if hist_method in DISTANCES else "")
    if signature == "mse":
        return "mse_distance"
    return signature  # ae: the cosine, a similarity already


def _fuse(similarities: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Mean of the available per-metric similarities of each candidate."""
    if not similarities:
        return np.zeros(n)
    stacked = np.vstack(list(similarities.values()))
    counts = np.sum(~np.isnan(stacked), axis=0)
    return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), 0.0)


def query_paths(
    paths: list[str],
    location: CatalogLocation,
    top: int = 10,
    metric: str = "fused",
    hist_method: str = "bhattacharyya",
    warn=None,
) -> list[QueryResult]:
    """Query every image given (folders expand to the images inside them)."""
    files = images.expand_image_args(paths)
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}")
    if not files:
        raise UsageError("no image files among the query paths")
    with Searcher(location, warn=warn) as searcher:
        return [searcher.query(f, top=top, metric=metric, hist_method=hist_method) for f in files]
