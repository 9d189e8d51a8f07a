"""Query: candidates from every index -> exact similarities -> calibrated score -> adaptive ORB verification.

Candidates. Every vector index (hist, mse, ae, cnn) is searched for its SHORTLIST nearest neighbours
(with each query variant, flips/rotations, where the extractor asks for it); the union of the
shortlists is scored exactly from the stored vectors. The candidates do not depend on --top.

Score. searcher.scoring.calibrate turns the similarities (and a grey flag) into the logit of a
logistic model of "same picture"; ORB inliers add to it (searcher/calibration.json). The score shown
is the probability p = sigmoid(logit); p >= 0.5 is the verdict "same picture".

Adaptive verification. Candidates whose score without ORB is below scoring.VERIFY_FLOOR are not
verified (ORB lifts no copy from there, measured on the calibration's tuning pairs). The others are
verified in order of the best logit verification could give them; it stops when no unverified
candidate could still beat the k-th best verified score (k = --top) or still reach the verdict
threshold (p = 0.5: it cannot become a near duplicate, whatever ORB finds), or after
`verify_budget` verifications. So the first hit and every verdict are exact (the
same for --top 1, 10 or 100) unless the budget runs out, and an easy query (a strong copy among
weak neighbours) stops early. Unverified candidates rank by their score without inliers.

Orientation. ORB is not flip-invariant. A candidate is verified against the query's mirror image
when the mirrored thumbnails (mse, else ae) match it clearly better, against the query as it is when
they clearly do not, and both ways when they cannot tell and the candidate is already plausible
(_orb_variants); the mirrored ORB signature is only computed when asked for. (Both ways for every
candidate doubled the cost of verification, mostly on unrelated pictures.)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from searcher import calibration, images, scoring
from searcher.errors import ImageError, UsageError, one_line
from searcher.features.histogram import METHODS, HistogramExtractor
from searcher.features.work_image import WorkImage, mirrored_work

if TYPE_CHECKING:
    from searcher.catalog import Catalog

METRICS = ("fused", "hist", "mse", "ae", "cnn", "orb")
VECTOR_METRICS = ("hist", "mse", "ae", "cnn")
SHORTLIST = 100  # neighbours asked of each index (more when --top asks for more)
VERIFY_BUDGET = 100  # most ORB verifications of one query (adaptive: fewer when the top is settled)
ORB_CHUNK = 32  # stored ORB signatures read from the catalog at a time


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
    verify_budget: int = VERIFY_BUDGET,
) -> QueryResult:
    """Nearest catalog images to one image file (which need not be in the catalog)."""
    _check(catalog, metric, hist_method)
    if verify_budget < 0:
        raise UsageError(f"--verify-budget must be at least 0, not {verify_budget}")
    result = QueryResult(query=os.path.abspath(path))
    clock = time.perf_counter()
    try:
        signatures = _query_signatures(catalog, images.load_image(path, max_megapixels).bgr, metric)
    except ImageError as e:
        result.error = str(e)
        return result
    result.timings["extract"] = time.perf_counter() - clock

    clock = time.perf_counter()
    ids = _candidates(catalog, signatures, metric, max(SHORTLIST, top))
    # Candidates in a stable order (sha256, path), not the ingest order of their ids: every sort
    # below breaks ties by this position, so equal scores rank the same in any catalog of the same files.
    keys = catalog.store.sort_keys(ids)
    ids.sort(key=lambda i: keys.get(i, ("", "")))
    similarities, raw, grey, mirror_gain = _exact_scores(catalog, ids, signatures, hist_method)
    result.timings["search"] = time.perf_counter() - clock

    if metric in VECTOR_METRICS:
        ranked = similarities["hist_raw" if metric == "hist" else metric]
        order = sorted(range(len(ids)), key=lambda i: -np.nan_to_num(ranked[i], nan=-1.0))[:top]
        hits = [_hit(ids[i], ranked[i], similarities, raw, i) for i in order]
    else:
        has_orb = verify and "orb" in catalog.extractors
        scored = scoring.calibrate({k: v for k, v in similarities.items() if k != "hist_raw"}, grey, has_orb)
        budget = verify_budget if has_orb else 0
        candidates = _Candidates(ids, scored, mirror_gain)
        hits = _rerank(catalog, candidates, similarities, raw, signatures.get("orb"), metric, top, budget, result.timings)
    clock = time.perf_counter()
    _fill_paths(catalog, hits)
    result.timings["catalog"] = result.timings.get("catalog", 0.0) + time.perf_counter() - clock
    result.hits = hits
    return result


def _query_signatures(catalog: Catalog, bgr: np.ndarray, metric: str = "fused") -> dict:
    """Each vector signature as a list of query variants (e.g. flips; a candidate's best variant
    counts), and "orb" as an OrbQuery. The extractors share one WorkImage of the query."""
    work = WorkImage(bgr)
    try:
        signatures: dict = {
            name: extractor.query_signatures(work if extractor.takes_work_image else bgr, alone=metric == name)
            for name, extractor in catalog.extractors.items()
            if name != "orb"
        }
        if "orb" in catalog.extractors:
            signatures["orb"] = OrbQuery(catalog.extractors["orb"], work)
    except Exception as e:  # one image a feature library chokes on must not abort a folder of queries
        raise ImageError(one_line(f"signature failed: {type(e).__name__}: {e}")) from None
    return signatures


class OrbQuery:
    """The query's ORB signature as it is, and of its mirror image on first use."""

    def __init__(self, extractor, work: WorkImage) -> None:
        self.extractor, self.work = extractor, work
        self.plain = extractor.extract(work)
        self._mirrored: np.ndarray | None = None

    @property
    def mirrored(self) -> np.ndarray:
        if self._mirrored is None:
            try:
                self._mirrored = self.extractor.extract(mirrored_work(self.work))
            except Exception:  # the plain image went through; should its mirror not, it verifies nothing
                self._mirrored = self.plain[:0]
        return self._mirrored

    def variants(self, mirrored: bool | None) -> Iterator[np.ndarray]:
        """The signatures to verify a candidate with: the mirrored or the plain one, or both (None),
        the mirrored one computed only when it is reached."""
        if mirrored is not True:
            yield self.plain
        if mirrored is not False:
            yield self.mirrored


@dataclass
class _Candidates:
    ids: list[int]
    scored: scoring.Calibrated
    mirror_gain: np.ndarray  # per candidate: how much better the thumbnails match mirrored (NaN: unknown)


def _candidates(catalog: Catalog, signatures: dict, metric: str, shortlist: int) -> list[int]:
    """Union of the shortlists of the searched indexes, in the order found. An index's shortlist is
    its `shortlist` nearest images to the query's best variant (searched with each variant its
    extractor asks for; a metric alone with all of them): the mse index with its 8 orientations
    once brought 800 candidates, and reading their stored vectors cost a query more than the rest
    of its search at 100k images (hnswlib get_items: ~20 us an image and index)."""
    searched = [metric] if metric in VECTOR_METRICS else [m for m in VECTOR_METRICS if m in catalog.indexes]
    candidates: dict[int, None] = {}
    for name in searched:
        extractor = catalog.extractors[name]
        variants = signatures[name] if (metric == name or extractor.search_variants) else signatures[name][:1]
        index = catalog.indexes[name]
        nearest: dict[int, float] = {}
        ids, distances = index.search_many(np.stack([extractor.embedding(v) for v in variants]), shortlist)
        for i, d in zip(np.ravel(ids).tolist(), np.ravel(distances).tolist()):
            if i >= 0:  # -1 pads a row when the index holds fewer than `shortlist`
                nearest[i] = min(d, nearest.get(i, np.inf))
        best = sorted(nearest, key=lambda i: (nearest[i], i))[:shortlist]
        candidates.update(dict.fromkeys(best))
    return list(candidates)


def _rerank(
    catalog: Catalog, candidates: _Candidates, similarities, raw, orb, metric: str, top: int, budget: int, timings
) -> list[Hit]:
    """Calibrated order, adaptively verified with ORB (see the module docstring); --metric orb ranks the
    `budget` best candidates by inliers alone."""
    clock = time.perf_counter()
    inliers, matches, verified = _verify_adaptively(catalog, candidates, orb, top, budget, metric == "orb")
    timings["rerank"] = time.perf_counter() - clock
    ids, scored = candidates.ids, candidates.scored
    logits = np.where(verified, scored.logits(inliers), scored.unverified())
    key = (lambda k: (-inliers[k], -logits[k])) if metric == "orb" else (lambda k: (-logits[k], -matches[k]))
    hits = []
    for i in sorted(range(len(ids)), key=key)[:top]:
        hit = _hit(ids[i], float(calibration.sigmoid(logits[i])), similarities, raw, i)
        hit.scores["fused"] = float(calibration.sigmoid(scored.unverified()[i]))
        hit.scores["p_same"] = hit.score
        if verified[i]:
            hit.scores.update(orb_matches=float(matches[i]), orb_inliers=float(inliers[i]))
        if metric == "orb":  # the score stays a similarity: the verification in [0, 1] (counts in orb_inliers)
            hit.score = scoring.verification_score(inliers[i])
        hits.append(hit)
    return hits


def _verify_adaptively(catalog: Catalog, candidates: _Candidates, orb: OrbQuery | None, top: int, budget: int, every: bool):
    """(inliers, matches, verified) per candidate. Candidates go in order of their upper bound; the loop
    stops when the next bound cannot beat the top-th best verified logit or reach the verdict
    threshold (`every`: only at the budget). A candidate that needs more inliers than its matches to
    get there skips the homography."""
    ids, scored = candidates.ids, candidates.scored
    n = len(ids)
    inliers, matches = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    verified = np.zeros(n, dtype=bool)
    if orb is None or budget <= 0 or not n:
        return inliers, matches, verified
    upper = scored.upper()
    threshold = scoring.threshold_logit(scoring.DEFAULT_THRESHOLD)
    # Below the floor ORB lifts no copy to the threshold (scoring.VERIFY_FLOOR): such candidates
    # rank by their score without inliers (--metric orb ranks by inliers, so it verifies them).
    hopeless = (scored.unverified() < calibration.logit(scoring.VERIFY_FLOOR)) & (not every)
    order = sorted((i for i in range(n) if not hopeless[i]), key=lambda i: -upper[i])[:budget]
    best: list[float] = []  # verified logits, best first (at most `top`)
    stored: dict[int, np.ndarray] = {}
    for position, i in enumerate(order):
        kth = best[top - 1] if len(best) >= top else -np.inf
        if not every and (upper[i] <= kth or upper[i] < threshold):
            break
        if position % ORB_CHUNK == 0:
            stored = catalog.stored_signatures([ids[j] for j in order[position : position + ORB_CHUNK]], "orb")
        signature = stored.get(ids[i])
        # Fewer inliers than CHANCE_INLIERS score as none, so a pair with fewer matches skips the homography.
        need = int(scored.needed(np.nextafter(kth, np.inf), rows=[i])[0]) if np.isfinite(kth) and not every else 0
        need = max(need, calibration.CHANCE_INLIERS)
        if signature is None:
            v = scoring.Verification(0, 0)
        else:
            variants = _orb_variants(orb, candidates.mirror_gain[i], scored.unverified()[i])
            v = scoring.best_verification(variants, signature, need)
        inliers[i], matches[i], verified[i] = v.inliers, v.matches, True
        best = sorted([*best, _logit_at(scored, i, v.inliers)], reverse=True)[:top]
    return inliers, matches, verified


def _logit_at(scored, i: int, inliers: int) -> float:
    return float(scored.logits([inliers], rows=[i])[0])


def _exact_scores(catalog: Catalog, ids: list[int], signatures: dict, hist_method: str):
    """Per metric, the similarity of every candidate (NaN where it lacks that signature), the raw
    values, whether each pair has a grey side, and each candidate's mirror gain (_mirror_gain; NaN:
    unknown). hist's similarity for the calibrated score is always Bhattacharyya's;
    `hist_method` only changes the raw value shown and --metric hist."""
    similarities: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    grey = np.zeros(len(ids), dtype=bool)
    mirror_gains: dict[str, dict[int, float]] = {}  # judge -> {candidate: how much better the mirrored query matches}
    for name, index in catalog.indexes.items():
        extractor = catalog.extractors[name]
        sims = np.full(len(ids), np.nan, dtype=np.float64)
        values = np.full(len(ids), np.nan, dtype=np.float64)
        where = [k for k, i in enumerate(ids) if i in index]
        if where:
            vectors = index.vectors([ids[k] for k in where])
            values[where], per_variant = _raw_values(catalog, name, vectors, signatures[name], hist_method)
            if name in ORIENTATION_JUDGES:
                gain = _mirror_gain(_similarity(name, per_variant, hist_method), extractor.mirrored_variants)
                mirror_gains[name] = dict(zip(where, gain.tolist()))
            if name == "hist":
                query = extractor.embedding(signatures["hist"][0])[None, :]
                sims[where] = scoring.bhattacharyya_similarity(np.repeat(query, len(where), axis=0), vectors)
                grey[where] = scoring.grey_pairs(np.square(query), np.square(vectors))
                similarities["hist_raw"] = np.full(len(ids), np.nan)
                similarities["hist_raw"][where] = _similarity(name, values[where], hist_method)
            else:
                sims[where] = _similarity(name, values[where], hist_method)
        similarities[name] = sims
        raw[_raw_name(name, hist_method)] = values
    return similarities, raw, grey, _mirror_gains(len(ids), mirror_gains)


# Signatures whose query variants say whether a candidate is a mirrored copy, most trusted first:
# the thumbnail keeps the picture's layout; the cnn descriptor (GeM-pooled) is nearly flip-invariant
# and cannot tell (a mirrored copy gains 0.02-0.06 cosine from the mirrored query).
ORIENTATION_JUDGES = ("mse", "ae")
# A candidate is verified against the mirrored query when the mirrored variants' best similarity beats
# the others' by this much. A weak, unrelated-looking match prefers either side by chance (a photo
# turned 30 degrees on a page did, and lost its ORB check); a mirrored copy wins by far more.
MIRROR_MARGIN = 0.1
MIRROR_BOTH_P = 0.05  # a candidate this likely without ORB is verified both ways when the thumbnails cannot tell


def _mirror_gain(per_variant: np.ndarray, mirrored: tuple[int, ...]) -> np.ndarray:
    """Per row of similarities (vectors x query variants): the best mirrored variant's minus the best other's."""
    others = np.delete(per_variant, mirrored, axis=1)
    return per_variant[:, list(mirrored)].max(axis=1) - others.max(axis=1)


def _mirror_gains(n: int, mirror_gains: dict[str, dict[int, float]]) -> np.ndarray:
    """Per candidate, the mirror gain of the first ORIENTATION_JUDGES signature it has (NaN: none)."""
    gains = np.full(n, np.nan)
    for name in reversed(ORIENTATION_JUDGES):  # the most trusted has the last word
        for k, gain in mirror_gains.get(name, {}).items():
            gains[k] = gain
    return gains


def _orb_variants(orb: OrbQuery, gain: float, unverified_logit: float) -> Iterator[np.ndarray]:
    """The query's ORB signatures to verify one candidate with: the mirrored one when the thumbnails
    say it is a mirrored copy, the plain one when they say it is not; when they cannot tell (a crop
    of a mirrored copy, or an unrelated picture), the plain one, and the mirrored one too if the
    candidate is already a plausible match (p >= MIRROR_BOTH_P without ORB)."""
    if np.isnan(gain):
        return orb.variants(None)
    if gain > MIRROR_MARGIN:
        return orb.variants(True)
    if gain >= -MIRROR_MARGIN and unverified_logit >= calibration.logit(MIRROR_BOTH_P):
        return orb.variants(None)
    return orb.variants(False)


def _raw_values(catalog: Catalog, name: str, vectors: np.ndarray, variants: list, hist_method: str):
    """(values, the value per query variant: vectors x variants). hist: the compareHist value against
    the query; mse: the lowest MSE over the query's variants; cosine spaces (unit vectors stored):
    the highest cosine over the query's variants."""
    if name == "hist":
        hist = catalog.extractors["hist"]
        values = np.array([hist.compare(variants[0], HistogramExtractor.from_embedding(v), hist_method) for v in vectors])
        return values, values[:, None]
    if name == "mse":
        queries = np.stack(variants).astype(np.float32)  # V x D
        mse = ((vectors[:, None, :] - queries[None, :, :]) ** 2).mean(axis=2)
        return mse.min(axis=1), mse
    queries = np.stack([catalog.extractors[name].embedding(v) for v in variants]).astype(np.float32)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    cosines = vectors @ queries.T
    return cosines.max(axis=1), cosines


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
        if name != "hist" and not np.isnan(sims[k]):
            scores["hist" if name == "hist_raw" else name] = float(sims[k])
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
    catalog: Catalog,
    paths: list[str],
    top: int = 10,
    metric: str = "fused",
    hist_method: str = "bhattacharyya",
    verify_budget: int = VERIFY_BUDGET,
) -> list[QueryResult]:
    """Query every image given (folders expand to the images inside them)."""
    files = images.expand_image_args(paths)
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}")
    if not files:
        raise UsageError("no image files among the query paths")
    return [query(catalog, f, top=top, metric=metric, hist_method=hist_method, verify_budget=verify_budget) for f in files]
