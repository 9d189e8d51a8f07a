"""The one home of similarity: per-signature similarities, the calibrated pair score, verification.

Every ranking and verdict of searcher (query, dups, compare) is computed here:

    hist   the chosen cv2.compareHist value turned into [0, 1] (bhattacharyya: 1 - distance)
    mse    1 - 2*RMSE of the contrast-normalised 16x16 grey thumbnails (best of the 8 orientations)
    ae     cosine of the latents, clipped to [0, 1]
    cnn    cosine of the CNN descriptors, clipped to [0, 1]
    v      ORB verification: cross-checked Hamming matches (<= MAX_HAMMING of 256 bits), then
           homography inliers (MAGSAC++)
    score  p = the calibrated probability that two images are the same picture (searcher.calibration:
           a logistic model of the similarities, a grey flag and the inliers, fitted on tuning pairs);
           two images are near duplicates when p >= DEFAULT_THRESHOLD (0.5), in query, compare and dups.
           query and dups verify only pairs whose p without ORB is at least VERIFY_FLOOR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable

import cv2
import numpy as np

from searcher import calibration
from searcher.calibration import INLIER_CAP, SIMILARITY_SIGNATURES, grey_histograms, sigmoid

DEFAULT_THRESHOLD = 0.5  # a probability: "same picture" is more likely than not
# Pairs whose probability without ORB is below this are not verified (query and dups): on the
# calibration's tuning pairs ORB lifted no true copy from below it to the threshold (0 of 4,029;
# 5 from below 0.05), while two thirds of the hardest unrelated pairs lie below it.
VERIFY_FLOOR = 0.02
FUSED_SIGNATURES = SIMILARITY_SIGNATURES  # signatures whose similarities the calibrated score combines
MAX_HAMMING = 64  # cross-checked matches farther apart than this (of 256 bits) are unrelated
RANSAC_PIXELS = 8.0  # homography reprojection threshold, pixels of the working image (long side <= 640)
MIN_INLIERS = calibration.MIN_INLIERS  # random matches reach a handful of inliers by chance
# MAGSAC++ rather than plain RANSAC: as accurate on copies, about 10x faster on unrelated pairs
# (where RANSAC runs to its iteration cap), and fewer chance "verifications".
HOMOGRAPHY_METHOD = cv2.USAC_MAGSAC
THUMB_SIDE = 16  # the mse thumbnail is THUMB_SIDE x THUMB_SIDE
PAIR_RULE = (
    "near duplicate when p = sigmoid(calibrated weights . (hist, mse, ae, cnn, orb, orb_log)) "
    ">= threshold; hist 1 - Bhattacharyya (a constant when either image is grey), mse 1 - 2*RMSE of the best flip/rotation of the normalised "
    f"thumbnails, ae/cnn cosine, orb = clip((inliers - {calibration.CHANCE_INLIERS}) / "
    f"{calibration.FULL_INLIERS - calibration.CHANCE_INLIERS}, 0, 1), orb_log = log(1 + inliers) / log(1 + {INLIER_CAP}) "
    f"(both 0 under {calibration.CHANCE_INLIERS} inliers); weights: searcher/calibration.json"
)

# ---- per-signature similarities ----


def hist_similarity(method: str, value):
    """A cv2.compareHist value turned into a similarity in [0, 1] (1 = identical histograms)."""
    if method == "correl":
        return np.maximum(0.0, value) if isinstance(value, np.ndarray) else max(0.0, value)
    if method == "chisqr":
        return 1.0 / (1.0 + value)
    if method == "intersect":
        return np.clip(value, 0.0, 1.0) if isinstance(value, np.ndarray) else min(1.0, max(0.0, value))
    if method == "bhattacharyya":
        return 1.0 - (np.clip(value, 0.0, 1.0) if isinstance(value, np.ndarray) else min(1.0, max(0.0, value)))
    raise ValueError(f"unknown histogram method {method!r}")


def bhattacharyya_similarity(sqrt_a: np.ndarray, sqrt_b: np.ndarray) -> np.ndarray:
    """1 - Bhattacharyya distance of rows of sqrt-histograms (the hist embeddings), as OpenCV computes
    it: sqrt(1 - BC / sqrt(sum a * sum b)); BC is the dot product of the square roots."""
    norms = np.sqrt(np.einsum("ij,ij->i", sqrt_a, sqrt_a) * np.einsum("ij,ij->i", sqrt_b, sqrt_b))
    bc = np.einsum("ij,ij->i", sqrt_a, sqrt_b) / np.maximum(norms, 1e-12)
    return 1.0 - np.sqrt(np.clip(1.0 - bc, 0.0, 1.0))


def mse_similarity(mse):
    """1 - 2*RMSE, clipped to [0, 1]: identical = 1; unrelated photos usually land near 0.4."""
    if isinstance(mse, np.ndarray):
        return np.clip(1.0 - 2.0 * np.sqrt(np.maximum(mse, 0.0)), 0.0, 1.0)
    return float(min(1.0, max(0.0, 1.0 - 2.0 * np.sqrt(max(mse, 0.0)))))


def cosine_similarity(cosine):
    """A cosine of unit latents, clipped to [0, 1]."""
    if isinstance(cosine, np.ndarray):
        return np.clip(cosine, 0.0, 1.0)
    return float(min(1.0, max(0.0, cosine)))


def oriented_mse(thumbs_a: np.ndarray, thumbs_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest MSE over the 8 orientations of each A, index of that orientation) for rows A, B;
    NaN rows (a missing thumbnail) give NaN and orientation 0."""
    mse = ((orientations(thumbs_a) - np.asarray(thumbs_b, np.float32)[:, None, :]) ** 2).mean(axis=2)  # P x 8
    valid = ~np.isnan(mse).any(axis=1)
    best = np.argmin(np.where(valid[:, None], mse, 0.0), axis=1)
    low = np.where(valid, mse[np.arange(len(mse)), best], np.nan)
    return low, np.where(valid, best, 0)


# ---- the calibrated pair score ----


def verification_score(inliers):
    """ORB verification in [0, 1]: 0 below MIN_INLIERS inliers, 1 from 4 * MIN_INLIERS (shown by compare)."""
    value = np.clip((np.asarray(inliers, dtype=np.float64) - MIN_INLIERS) / (3.0 * MIN_INLIERS), 0.0, 1.0)
    return float(value) if value.ndim == 0 else value


def grey_pairs(hists_a: np.ndarray, hists_b: np.ndarray) -> np.ndarray:
    """True per pair of histogram rows where either side is grey."""
    return grey_histograms(hists_a) | grey_histograms(hists_b)


@dataclass
class Calibrated:
    """Per candidate pair: the logit of "same picture" without verification (`base`), and what
    0..INLIER_CAP inliers add to it: row `model[i]` of `terms` (zeros when there is no ORB).
    Those terms depend only on the calibrated model, i.e. on which signatures a pair has: N pairs
    share a few rows instead of holding N x (INLIER_CAP + 1) numbers (1.25 GB at dups' 2.4 M pairs).
    Rankings compare logits; p = sigmoid(logit)."""

    base: np.ndarray  # N
    model: np.ndarray  # N: the row of `terms` of each pair
    terms: np.ndarray  # models x (INLIER_CAP + 1)

    NEEDED_BLOCK: ClassVar[int] = 65536  # pairs per block in needed(): bounds its N x 65 temporaries

    def orb_terms(self, rows=slice(None)) -> np.ndarray:
        """What 0..INLIER_CAP inliers add to the logit of the pairs at `rows` (one row each)."""
        return self.terms[self.model[rows]]

    def logits(self, inliers, rows=None) -> np.ndarray:
        """The logits with these inliers, of every pair or of the pairs at `rows` (one inlier count each)."""
        n = np.clip(np.asarray(inliers, dtype=np.int64), 0, INLIER_CAP)
        if rows is None:
            return self.base + self.terms[self.model, n]
        return self.base[rows] + self.terms[self.model[rows], n]

    def unverified(self) -> np.ndarray:
        """The logit with no inliers: an unverified candidate's score."""
        return self.base + self.terms[self.model, 0]

    def upper(self) -> np.ndarray:
        """The best logit any verification could give."""
        return self.base + self.terms.max(axis=1)[self.model]

    def needed(self, target: float | np.ndarray, rows=None) -> np.ndarray:
        """Fewest inliers that bring each logit (of every pair, or of the pairs at `rows`) to `target`
        (one value, or one per pair): 0 without any, -1 when none can."""
        rows = np.arange(len(self.base)) if rows is None else np.atleast_1d(np.asarray(rows))
        target = np.asarray(target, dtype=np.float64)
        out = np.empty(len(rows), dtype=np.int64)
        for start in range(0, len(rows), self.NEEDED_BLOCK):
            block = rows[start : start + self.NEEDED_BLOCK]
            goal = target if target.ndim == 0 else target[start : start + len(block)]
            reach = (self.base[block, None] + self.orb_terms(block)) >= goal.reshape(-1, 1)
            out[start : start + len(block)] = np.where(reach.any(axis=1), np.argmax(reach, axis=1), -1)
        return out


def calibrate(similarities: dict[str, np.ndarray], grey, has_orb: bool) -> Calibrated:
    """The calibrated logits of N pairs from their similarities by signature (NaN where a pair lacks
    that signature: the model of the signatures it has is used) and their grey flags."""
    model_set = calibration.load()
    names = [s for s in SIMILARITY_SIGNATURES if s in similarities]
    n = len(np.atleast_1d(grey))
    columns = calibration.feature_columns(
        {s: similarities[s] for s in names}, np.broadcast_to(grey, (n,)), grey_hist=model_set.grey_hist
    )
    present = np.array([~np.isnan(np.asarray(similarities[s], dtype=np.float64)) for s in names]).reshape(len(names), n)
    base = np.full(n, -50.0)
    model_of = np.zeros(n, dtype=np.int16)
    terms = [np.zeros(INLIER_CAP + 1)]  # row 0: pairs with nothing to compare (p ~ 0)
    for pattern in sorted({tuple(col) for col in present.T}):
        rows = np.flatnonzero((present.T == pattern).all(axis=1))
        signatures = [s for s, here in zip(names, pattern) if here] + (["orb"] if has_orb else [])
        if not signatures:
            continue
        model = model_set.model(signatures)
        base[rows] = model.base_logit({k: v[rows] for k, v in columns.items()})
        model_of[rows] = len(terms)
        terms.append(np.asarray(model.orb_terms(), dtype=np.float64))
    return Calibrated(base, model_of, np.array(terms))


def pair_probability(similarities: dict[str, float | None], grey: bool, inliers: int | None) -> float:
    """p of one pair from its similarities (None: absent) and inliers (None: no ORB)."""
    sims = {k: np.array([np.nan if v is None else v], dtype=np.float64) for k, v in similarities.items()}
    scored = calibrate(sims, np.array([bool(grey)]), inliers is not None)
    return float(sigmoid(scored.logits([inliers or 0])[0]))


def threshold_logit(threshold: float) -> float:
    return calibration.logit(threshold)


# ---- the 8 orientations of a thumbnail ----

_TURNS = ("", "rotated 90 ccw", "rotated 180", "rotated 90 cw")
ORIENTATIONS = tuple(
    ", ".join(filter(None, ("mirrored" if mirrored else "", turn))) or "as is" for mirrored in (False, True) for turn in _TURNS
)


def orientations(thumbnails: np.ndarray) -> np.ndarray:
    """8 x D for one thumbnail (P x 8 x D for P of them): as is and rotated 90/180/270 degrees
    counter-clockwise, then the same of its mirror image (left-right flip). Indices 4..7 are mirrored."""
    thumbnails = np.asarray(thumbnails, dtype=np.float32)
    squares = thumbnails.reshape(-1, THUMB_SIDE, THUMB_SIDE)
    turned = [
        np.rot90(base, k, axes=(1, 2)).reshape(len(squares), THUMB_SIDE * THUMB_SIDE)
        for base in (squares, squares[:, :, ::-1])
        for k in range(4)
    ]
    stacked = np.stack(turned, axis=1)
    return stacked[0] if thumbnails.ndim == 1 else stacked


# ---- the ORB match step ----

ROW_BYTES = 4 + 32  # a stored ORB row: x, y as float16, then the 32-byte descriptor
_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)


@dataclass(frozen=True)
class Verification:
    matches: int  # cross-checked matches within MAX_HAMMING
    inliers: int  # of those, consistent with one homography

    @property
    def score(self) -> float:
        return verification_score(self.inliers)


def split_orb(signature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points N x 2 float32, descriptors N x 32 uint8) from the packed N x 36 rows."""
    rows = np.asarray(signature, dtype=np.uint8).reshape(-1, ROW_BYTES)
    points = np.ascontiguousarray(rows[:, :4]).view(np.float16).reshape(-1, 2).astype(np.float32)
    return points, np.ascontiguousarray(rows[:, 4:])


@dataclass
class OrbMatches:
    points_a: np.ndarray  # N x 2 keypoint positions in A's working image
    points_b: np.ndarray
    pairs: list[tuple[int, int, float]]  # (index in A, index in B, Hamming distance), cross-checked, <= MAX_HAMMING
    inlier: np.ndarray  # bool per pair: consistent with the homography

    @property
    def verification(self) -> Verification:
        return Verification(len(self.pairs), int(self.inlier.sum()))


def _good_matches(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """(points of A, points of B, cross-checked matches within MAX_HAMMING)."""
    points_a, desc_a = split_orb(a)
    points_b, desc_b = split_orb(b)
    if len(desc_a) < 2 or len(desc_b) < 2:
        return points_a, points_b, []
    return points_a, points_b, [m for m in _MATCHER.match(desc_a, desc_b) if m.distance <= MAX_HAMMING]


def _inlier_mask(points_a: np.ndarray, points_b: np.ndarray, good: list, needed: int) -> np.ndarray | None:
    """Inlier mask of the MAGSAC++ homography of the matches; None when it is not fitted (fewer than
    max(4, needed) matches: with `needed`, a pair that cannot reach it skips the fit) or not found."""
    if len(good) < max(4, needed):
        return None
    src = points_a[[m.queryIdx for m in good]].reshape(-1, 1, 2)
    dst = points_b[[m.trainIdx for m in good]].reshape(-1, 1, 2)
    homography, mask = cv2.findHomography(src, dst, HOMOGRAPHY_METHOD, RANSAC_PIXELS)
    return mask.ravel().astype(bool) if homography is not None and mask is not None else None


def match_orb(a: np.ndarray, b: np.ndarray, needed: int = 0) -> OrbMatches:
    """The ORB match step with its evidence (for drawing): cross-checked Hamming matches (<= MAX_HAMMING)
    of two signatures and the inlier mask of a MAGSAC++ homography. `needed` > 0: the caller only needs
    to know whether the pair reaches that many inliers, so a pair with fewer matches than that skips
    the homography (exact: inliers <= matches)."""
    points_a, points_b, good = _good_matches(a, b)
    mask = _inlier_mask(points_a, points_b, good, needed)
    pairs = [(m.queryIdx, m.trainIdx, float(m.distance)) for m in good]
    return OrbMatches(points_a, points_b, pairs, mask if mask is not None else np.zeros(len(good), dtype=bool))


def verify(a: np.ndarray, b: np.ndarray, needed: int = 0) -> Verification:
    """Matches and inliers of two ORB signatures: match_orb's counts, without keeping the evidence."""
    points_a, points_b, good = _good_matches(a, b)
    mask = _inlier_mask(points_a, points_b, good, needed)
    return Verification(len(good), int(mask.sum()) if mask is not None else 0)


def best_verification(variants: Iterable[np.ndarray], stored: np.ndarray, needed: int = 0) -> Verification:
    """The best verification of any query variant (e.g. the query and its mirror image) against `stored`;
    `needed` as in verify (a variant with fewer matches skips the homography). Stops at a variant that
    reaches INLIER_CAP inliers (more add nothing to the score), so a lazy iterable computes the next
    variant only when it can still matter."""
    best = Verification(0, 0)
    for variant in variants:
        best = max(best, verify(variant, stored, needed), key=lambda v: (v.inliers, v.matches))
        if best.inliers >= INLIER_CAP:
            break
    return best
