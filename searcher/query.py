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
from typing import TYPE_CHECKING

import numpy as np

from searcher import images, scoring
from searcher.errors import ImageError, UsageError, one_line
from searcher.features.histogram import METHODS, HistogramExtractor

if TYPE_CHECKING:
    from searcher.catalog import Catalog

METRICS = ("fused", "hist", "mse", "ae", "cnn", "orb")
VECTOR_METRICS = ("hist", "mse", "ae", "cnn")
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

    def to_dict(self, rank: int) -> dict:
        """The hit as `searcher query --format json/jsonl` and `searcher serve` print it."""
        entry = {
            "rank": rank,
            "path": self.path,
            "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
        }
        entry["id"] = self.image_id  # the catalog id: what `searcher serve` names images by
        if self.frame is not None:  # a video frame or person crop: path is the video
            entry.update(frame=self.frame, time=round(self.time, 3), box=list(self.box) if self.box else None)
        return entry


@dataclass
class QueryResult:
    query: str
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def to_dict(self) -> dict:
        """One line of `searcher query --format jsonl`: {"query": ..., "results": [hit, ...]}."""
        return {"query": self.query, "results": [hit.to_dict(rank) for rank, hit in enumerate(self.hits, 1)]}


def available_metrics(catalog: Catalog) -> tuple[str, ...]:
    """The rankings this catalog can give: fused, then each signature it holds."""
    available = [m for m in VECTOR_METRICS if m in catalog.indexes]
    if "orb" in catalog.extractors:
        available.append("orb")
    return ("fused", *available) if available else ()


def _check(catalog: Catalog, metric: str, hist_method: str) -> None:
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if hist_method not in METHODS:
        raise UsageError(f"unknown histogram method {hist_method!r}; choose from {', '.join(METHODS)}")
    metrics = available_metrics(catalog)
    if metric not in metrics:
        raise UsageError(f"metric {metric!r} is not in this catalog (it has: {', '.join(metrics) or 'nothing yet'})")


def query(
    catalog: Catalog,
    path: str,
    top: int = 10,
    metric: str = "fused",
    hist_method: str = "bhattacharyya",
    verify: bool = True,
    max_megapixels: float = images.DEFAULT_MAX_MEGAPIXELS,
) -> QueryResult:
    """Nearest catalog images to one image file (which need not be in the catalog)."""
    _check(catalog, metric, hist_method)
    result = QueryResult(query=os.path.abspath(path))
    clock = time.perf_counter()
    try:
        signatures = _query_signatures(catalog, images.load_image(path, max_megapixels).bgr)
    except ImageError as e:
        result.error = str(e)
        return result
    result.timings["extract"] = time.perf_counter() - clock

    clock = time.perf_counter()
    ids = _candidates(catalog, signatures, metric, max(SHORTLIST, 5 * top))
    # Candidates in a stable order (sha256, path), not the ingest order of their ids: every sort
    # below is stable, so equal scores rank the same in any catalog of the same files.
    keys = catalog.store.sort_keys(ids)
    ids.sort(key=lambda i: keys.get(i, ("", "")))
    similarities, raw = _exact_scores(catalog, ids, signatures, hist_method)
    result.timings["search"] = time.perf_counter() - clock

    if metric in VECTOR_METRICS:
        order = sorted(range(len(ids)), key=lambda i: -similarities[metric][i])[:top]
        hits = [_hit(ids[i], similarities[metric][i], similarities, raw, i) for i in order]
    else:
        hits = _rerank(catalog, ids, similarities, raw, signatures if verify else {}, metric, top, result.timings)
    clock = time.perf_counter()
    _fill_paths(catalog, hits)
    result.timings["catalog"] = result.timings.get("catalog", 0.0) + time.perf_counter() - clock
    result.hits = hits
    return result


def _query_signatures(catalog: Catalog, bgr: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Each signature as a list of query variants (e.g. flips); a candidate's best variant counts."""
    try:
        return {name: extractor.query_signatures(bgr) for name, extractor in catalog.extractors.items()}
    except Exception as e:  # one image a feature library chokes on must not abort a folder of queries
        raise ImageError(one_line(f"signature failed: {type(e).__name__}: {e}")) from None


def _candidates(catalog: Catalog, signatures: dict, metric: str, shortlist: int) -> list[int]:
    """Union of the shortlists of the searched indexes, in the order found."""
    searched = [metric] if metric in VECTOR_METRICS else [m for m in VECTOR_METRICS if m in catalog.indexes]
    candidates: dict[int, None] = {}
    for name in searched:
        extractor = catalog.extractors[name]
        variants = signatures[name] if (metric == name or extractor.search_variants) else signatures[name][:1]
        for variant in variants:
            ids, _ = catalog.indexes[name].search(extractor.embedding(variant), shortlist)
            candidates.update(dict.fromkeys(int(i) for i in ids))
    return list(candidates)


def _rerank(catalog: Catalog, ids, similarities, raw, signatures: dict, metric: str, top: int, timings: dict) -> list[Hit]:
    """Fused order, the best `depth` verified with ORB: score (fused + v) / 2. --metric orb ranks by inliers
    alone, and its score stays a similarity: the verification v in [0, 1] (counts in scores.orb_inliers)."""
    fused = scoring.fuse_rows([similarities[name] for name in similarities], len(ids))
    # The ORB metric ranks a deeper fused shortlist by inliers alone.
    depth = max(RERANK_DEPTH, 2 * top) * (3 if metric == "orb" else 1)
    order = sorted(range(len(ids)), key=lambda i: -fused[i])[:depth]
    clock = time.perf_counter()
    stored_orb = catalog.stored_signatures([ids[i] for i in order], "orb") if "orb" in signatures else {}
    timings["catalog"] = time.perf_counter() - clock
    clock = time.perf_counter()
    hits = []
    for i in order:
        hit = _hit(ids[i], fused[i], similarities, raw, i)
        hit.scores["fused"] = float(fused[i])
        if "orb" in signatures:  # a candidate without an ORB signature counts as unverified
            stored = stored_orb.get(ids[i])
            v = scoring.best_verification(signatures["orb"], stored) if stored is not None else scoring.Verification(0, 0)
            hit.scores.update(orb_matches=float(v.matches), orb_inliers=float(v.inliers))
            hit.score = scoring.verification_score(v.inliers) if metric == "orb" else scoring.pair_score(fused[i], v.inliers)
        hits.append(hit)
    timings["rerank"] = time.perf_counter() - clock
    first = "orb_inliers" if metric == "orb" else None
    hits.sort(
        key=lambda h: (-(h.scores.get(first, 0.0) if first else h.score), -h.scores.get("orb_matches", 0.0), -h.scores["fused"])
    )
    return hits[:top]


def _exact_scores(catalog: Catalog, ids: list[int], signatures: dict, hist_method: str):
    """Per metric, the similarity of every candidate (NaN where it lacks that signature) and raw values."""
    similarities: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    for name, index in catalog.indexes.items():
        sims = np.full(len(ids), np.nan, dtype=np.float64)
        values = np.full(len(ids), np.nan, dtype=np.float64)
        where = [k for k, i in enumerate(ids) if i in index]
        if where:
            vectors = index.vectors([ids[k] for k in where])
            values[where] = _raw_values(catalog, name, vectors, signatures[name], hist_method)
            sims[where] = _similarity(name, values[where], hist_method)
        similarities[name] = sims
        raw[_raw_name(name, hist_method)] = values
    return similarities, raw


def _raw_values(catalog: Catalog, name: str, vectors: np.ndarray, variants: list, hist_method: str) -> np.ndarray:
    """hist: the compareHist value against the query; mse: the lowest MSE over the query's variants;
    cosine spaces (unit vectors stored): the highest cosine over the query's variants."""
    if name == "hist":
        hist = catalog.extractors["hist"]
        return np.array([hist.compare(variants[0], HistogramExtractor.from_embedding(v), hist_method) for v in vectors])
    if name == "mse":
        queries = np.stack(variants).astype(np.float32)  # V x D
        return ((vectors[:, None, :] - queries[None, :, :]) ** 2).mean(axis=2).min(axis=1)
    queries = np.stack([catalog.extractors[name].embedding(v) for v in variants]).astype(np.float32)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return (vectors @ queries.T).max(axis=1)


def _similarity(name: str, values: np.ndarray, hist_method: str) -> np.ndarray:
    if name == "hist":
        return np.array([scoring.hist_similarity(hist_method, float(v)) for v in values])
    if name == "mse":
        return scoring.mse_similarity(values)
    return scoring.cosine_similarity(values)


DISTANCES = ("chisqr", "bhattacharyya")  # compareHist methods where lower = more similar


def _raw_name(signature: str, hist_method: str) -> str:
    """Name of a signature's raw value in Hit.scores: distances (lower = more similar) carry `_distance`."""
    if signature == "hist":
        return f"hist_{hist_method}" + ("_distance" if hist_method in DISTANCES else "")
    if signature == "mse":
        return "mse_distance"
    return signature  # a cosine: a similarity already, the same number as the similarity


def _hit(image_id: int, score: float, similarities, raw, k: int) -> Hit:
    """Scores: every similarity (higher = more similar) under its signature's name, plus the raw
    values: distances under a `_distance` name, the compareHist similarities (correl, intersect) as they are."""
    scores = {name: float(values[k]) for name, values in raw.items() if not np.isnan(values[k])}
    for name, sims in similarities.items():
        if not np.isnan(sims[k]):
            scores[name] = float(sims[k])
    return Hit(image_id=image_id, path="", score=float(score), scores=scores)


def _fill_paths(catalog: Catalog, hits: list[Hit]) -> None:
    if not hits:
        return
    found = catalog.store.hit_rows([h.image_id for h in hits])
    for hit in hits:
        path, video_path, frame, time_s, box = found.get(hit.image_id, ("", None, None, None, None))
        hit.path = video_path or path
        if video_path:
            hit.frame, hit.time = frame, time_s
            hit.box = tuple(int(v) for v in box.split(",")) if box else None


def query_paths(
    catalog: Catalog, paths: list[str], top: int = 10, metric: str = "fused", hist_method: str = "bhattacharyya"
) -> list[QueryResult]:
    """Query every image given (folders expand to the images inside them)."""
    files = images.expand_image_args(paths)
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}")
    if not files:
        raise UsageError("no image files among the query paths")
    return [query(catalog, f, top=top, metric=metric, hist_method=hist_method) for f in files]
