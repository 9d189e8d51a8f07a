"""The one home of similarity: per-signature similarities, fusion, verification, the pair score.

Every ranking and verdict of searcher (query, dups, compare) is computed here:

    hist   the chosen cv2.compareHist value turned into [0, 1] (bhattacharyya: 1 - distance)
    mse    1 - 2*RMSE of the 16x16 grey thumbnails (best of the 8 orientations), clipped to [0, 1]
    ae     cosine of the latents, clipped to [0, 1]
    fused  the plain mean of the similarities a candidate has (a calibrated score that can be
           thresholded, unlike reciprocal rank fusion)
    v      ORB verification: cross-checked Hamming matches (<= MAX_HAMMING of 256 bits), then
           homography inliers (MAGSAC++), mapped to clip((inliers - 8) / 24, 0, 1)
    score  (fused + v) / 2: a geometrically verified copy outranks every unverified candidate;
           two images are near duplicates when it reaches DEFAULT_THRESHOLD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

DEFAULT_THRESHOLD = 0.5
FUSED_SIGNATURES = ("hist", "mse", "ae")  # signatures whose similarities the fused score averages
MAX_HAMMING = 64  # cross-checked matches farther apart than this (of 256 bits) are unrelated
RANSAC_PIXELS = 8.0  # homography reprojection threshold, pixels of the working image (long side <= 640)
MIN_INLIERS = 8  # random matches reach a handful of inliers by chance; below this: no match
# MAGSAC++ rather than plain RANSAC: as accurate on copies, about 10x faster on unrelated pairs
# (where RANSAC runs to its iteration cap), and fewer chance "verifications".
HOMOGRAPHY_METHOD = cv2.USAC_MAGSAC
THUMB_SIDE = 16  # the mse thumbnail is THUMB_SIDE x THUMB_SIDE
PAIR_RULE = (
    "near duplicate when score = (fused + orb) / 2 >= threshold; fused = mean of the signature "
    "similarities (hist 1 - Bhattacharyya, mse 1 - 2*RMSE of the best flip/rotation, ae cosine), "
    f"orb = clip((RANSAC inliers - {MIN_INLIERS}) / {3 * MIN_INLIERS}, 0, 1)"
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


# ---- fusion, verification, the pair score ----


def fuse_rows(similarities: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Mean of the available (non-NaN) similarities of each of n candidates; 0 when none."""
    if not len(similarities):
        return np.zeros(n)
    stacked = np.vstack(list(similarities))
    counts = np.sum(~np.isnan(stacked), axis=0)
    return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), 0.0)


def fuse(similarities: dict[str, float | None]) -> float:
    """The fused score of one candidate from its similarities by signature (None: absent)."""
    values = [np.array([np.nan if v is None else v], dtype=np.float64) for v in similarities.values()]
    return float(fuse_rows(values, 1)[0])


def verification_score(inliers):
    """ORB verification in [0, 1]: 0 below MIN_INLIERS inliers, 1 from 4 * MIN_INLIERS."""
    value = np.clip((np.asarray(inliers, dtype=np.float64) - MIN_INLIERS) / (3.0 * MIN_INLIERS), 0.0, 1.0)
    return float(value) if value.ndim == 0 else value


def pair_score(fused, inliers):
    """The final score of a fused, ORB re-ranked candidate, and the score the pair rule thresholds."""
    score = (np.asarray(fused, dtype=np.float64) + verification_score(inliers)) / 2.0
    return float(score) if np.ndim(score) == 0 else score


def required_inliers(fused: float, threshold: float) -> int | None:
    """Fewest RANSAC inliers that lift a pair of this fused score to `threshold`:
    0 when it passes without any, None when no number of inliers can make it pass."""
    needed = int(required_inliers_many(np.array([fused], dtype=np.float64), threshold)[0])
    return None if needed < 0 else needed


def required_inliers_many(fused: np.ndarray, threshold: float) -> np.ndarray:
    """required_inliers of every fused score at once, -1 where no number of inliers can make it pass."""
    needed = 2.0 * threshold - np.asarray(fused, dtype=np.float64)  # verification score needed
    # verification_score(n) >= needed  <=>  n >= MIN_INLIERS + 3 * MIN_INLIERS * needed (n integer)
    count = np.maximum(MIN_INLIERS + 1, np.ceil(MIN_INLIERS + 3 * MIN_INLIERS * needed - 1e-9))
    return np.where(needed <= 0, 0, np.where(needed > 1.0 + 1e-12, -1, count)).astype(np.int64)


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


def best_verification(variants: Sequence[np.ndarray], stored: np.ndarray) -> Verification:
    """The best verification of any query variant (e.g. the query and its mirror image) against `stored`."""
    return max((verify(variant, stored) for variant in variants), key=lambda v: (v.inliers, v.matches))
