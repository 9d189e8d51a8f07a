"""Compare two image files with every measure of the seed, and decide whether they are near duplicates.

Both files are decoded exactly as ingest decodes them (EXIF-rotated, long side <= WORK_SIZE), so the
numbers are the ones the catalog's signatures give; neither file needs to be in a catalog.

Measures (A against B):
    hist      HSV H-S histogram (the "hist" signature), cv2.compareHist with CORREL, CHISQR,
              INTERSECT and BHATTACHARYYA (raw values)
    mse       MSE of the 16x16 grey thumbnails (the "mse" signature) as they are, and the best
              of the 8 flips/right-angle rotations of A ("mse_oriented", as a query searches)
    orb       cross-checked Hamming matches (BFMatcher crossCheck, distance <= 64 of 256 bits) and
              their homography inliers (MAGSAC++, as the engine verifies); A is also tried mirrored
              (ORB is not flip-invariant)
    sift      Lowe's ratio test (0.75) on the 2 nearest SIFT neighbours, brute force (L2) and
              FLANN (KD-tree, 5 trees, 50 checks); homography inliers of the brute-force matches
    ae        cosine of the autoencoder latents, when the weights exist: of the images as they are
              (what the verdict uses: dups has only the stored latents), and the best over A's
              flips/rotations (what a query uses)

    cnn       cosine of the cnn descriptors (as they are), when the catalog has them (or, with no
              catalog, when the model is installed)

The verdict: the rule that `searcher dups` links two images with and a query's p_same (PAIR_RULE
below): p = the calibrated probability of "same picture" (searcher.calibration), from the signature
similarities (hist: 1 - Bhattacharyya distance, weightless when either image is grey; mse: 1 - 2*RMSE
of the best orientation of the normalised thumbnails; ae, cnn: cosine) and the ORB inliers. Near
duplicate when p >= threshold (default 0.5). The pair is symmetric: ORB is matched with the two files
in a fixed order (by the sha256 of their bytes), so `compare a b` and `compare b a` give the same score
and verdict. SIFT is shown for comparison with the seed; it takes no part in the verdict (not stored).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from searcher import calibration, images
from searcher.errors import ImageError, SearcherError
from searcher.features.histogram import METHODS, HistogramExtractor
from searcher.features.orb import OrbExtractor
from searcher.features.thumbnail import ThumbnailExtractor
from searcher.scoring import (
    DEFAULT_THRESHOLD,
    FUSED_SIGNATURES,
    HOMOGRAPHY_METHOD,
    ORIENTATIONS,
    PAIR_RULE,
    RANSAC_PIXELS,
    OrbMatches,
    cosine_similarity,
    grey_pairs,
    hist_similarity,
    match_orb,
    mse_similarity,
    orientations,
    pair_probability,
    verification_score,
)

__all__ = ["Comparison", "DEFAULT_THRESHOLD", "PAIR_RULE", "compare_images", "draw", "drawing_size"]

SIFT_RATIO = 0.75
FLANN_INDEX = {"algorithm": 1, "trees": 5}  # FLANN_INDEX_KDTREE, as in the OpenCV tutorial
FLANN_SEARCH = {"checks": 50}


# ---- the comparison ----


@dataclass
class Comparison:
    a: str  # absolute paths
    b: str
    size_a: tuple[int, int]  # full-size (width, height), after EXIF rotation
    size_b: tuple[int, int]
    hist: dict[str, float]  # compareHist method -> raw value
    mse: float
    mse_oriented: float
    orientation: str  # the orientation of A that mse_oriented found
    orb_keypoints: tuple[int, int]
    orb_matches: int
    orb_inliers: int
    orb_mirrored: bool  # the ORB figures are of A mirrored (it verified better)
    sift_keypoints: tuple[int, int]
    sift_bf_matches: int
    sift_flann_matches: int
    sift_inliers: int
    ae_cosine: float | None  # the latents of the images as they are: what the fused score (and dups) uses
    ae_cosine_oriented: float | None  # the best over A's flips/rotations, as a query searches
    cnn_cosine: float | None  # the cnn descriptors as they are (what dups uses)
    grey: bool  # either image is grey: the colour histogram carries no weight
    similarities: dict[str, float]  # the signature similarities the calibrated score combines
    fused: float  # p from the similarities alone (no inliers)
    orb_score: float
    score: float
    threshold: float
    near_duplicate: bool
    rule: str
    _evidence: dict = field(default_factory=dict, repr=False, compare=False)  # working images + ORB matches, for draw()

    def to_dict(self) -> dict:
        """The JSON of `compare --format json`: distances (lower = more similar) are named `_distance`,
        as in every searcher output; every other number is higher for more similar images."""
        data = asdict(self)
        data.pop("_evidence")
        for key in ("size_a", "size_b", "orb_keypoints", "sift_keypoints"):
            data[key] = list(data[key])
        data["hist"] = {f"{k}_distance" if k in ("chisqr", "bhattacharyya") else k: v for k, v in data["hist"].items()}
        data["mse_distance"] = data.pop("mse")
        data["mse_oriented_distance"] = data.pop("mse_oriented")
        return data

    @property
    def explanation(self) -> str:
        """The verdict with the numbers that gave it, in one line."""
        parts = ", ".join(f"{name} {value:.3f}" for name, value in self.similarities.items())
        verdict = "near duplicate" if self.near_duplicate else "not a near duplicate"
        relation = ">=" if self.near_duplicate else "<"
        grey = " (grey: hist weightless)" if self.grey and "hist" in self.similarities else ""
        unconfirmed = (
            f" (not confirmed by ORB: `searcher dups` groups a pair only from {calibration.CHANCE_INLIERS} inliers)"
            if self.near_duplicate and self.orb_inliers < calibration.CHANCE_INLIERS
            else ""
        )
        return (
            f"{verdict}: p(same picture) {self.score:.3f} {relation} threshold {self.threshold:g}; calibrated from "
            f"{parts}{grey} -> {self.fused:.3f} before verification, and {self.orb_inliers} ORB inliers{unconfirmed}"
        )


def _load(path: str | os.PathLike, max_megapixels: float) -> images.DecodedImage:
    try:
        return images.load_image(path, max_megapixels)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def _sift_measures(grey_a: np.ndarray, grey_b: np.ndarray) -> tuple[tuple[int, int], int, int, int]:
    """(keypoints of A and B, ratio-test matches by brute force, by FLANN, RANSAC inliers of the former)."""
    sift = cv2.SIFT_create()
    kp_a, desc_a = sift.detectAndCompute(grey_a, None)
    kp_b, desc_b = sift.detectAndCompute(grey_b, None)
    counts = (len(kp_a), len(kp_b))
    if desc_a is None or desc_b is None or len(desc_a) < 2 or len(desc_b) < 2:
        return counts, 0, 0, 0

    def ratio_test(knn) -> list:
        return [pair[0] for pair in knn if len(pair) == 2 and pair[0].distance < SIFT_RATIO * pair[1].distance]

    brute = ratio_test(cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_a, desc_b, k=2))
    flann = ratio_test(cv2.FlannBasedMatcher(FLANN_INDEX, FLANN_SEARCH).knnMatch(desc_a, desc_b, k=2))
    inliers = 0
    if len(brute) >= 4:
        src = np.float32([kp_a[m.queryIdx].pt for m in brute]).reshape(-1, 1, 2)
        dst = np.float32([kp_b[m.trainIdx].pt for m in brute]).reshape(-1, 1, 2)
        homography, mask = cv2.findHomography(src, dst, HOMOGRAPHY_METHOD, RANSAC_PIXELS)
        inliers = int(mask.sum()) if homography is not None and mask is not None else 0
    return counts, len(brute), len(flann), inliers


def _autoencoder(signatures: tuple[str, ...] | None, warn):
    """The ae extractor when it should be used: asked for (or no catalog says otherwise) and weights exist."""
    if signatures is not None and "ae" not in signatures:
        return None
    from searcher.features import build_extractor

    try:
        return build_extractor("ae")
    except SearcherError as e:
        if signatures is not None and warn:  # the catalog has ae signatures but we cannot compute them
            warn(f"autoencoder left out: {e}")
        return None


def _oriented_mse(bgr_a: np.ndarray, bgr_b: np.ndarray) -> tuple[np.ndarray, int]:
    """MSE of B's thumbnail against each of the 8 orientations of A's, and the best orientation."""
    thumb = ThumbnailExtractor()
    oriented = ((orientations(thumb.extract(bgr_a)) - thumb.extract(bgr_b)[None, :]) ** 2).mean(axis=1)
    return oriented, int(np.argmin(oriented))


def _orb_measures(bgr_a: np.ndarray, bgr_b: np.ndarray) -> tuple[OrbMatches, bool, int, int]:
    """(matches of the better of A and A mirrored against B, mirrored?, keypoints of A, of B)."""
    orb = OrbExtractor()
    orb_b = orb.extract(bgr_b)
    width_a = bgr_a.shape[1]
    candidates = []
    for mirrored, signature in zip((False, True), orb.query_signatures(bgr_a)):
        matches = match_orb(signature, orb_b)
        if mirrored:  # keypoints found in the mirror image, drawn where they are in A
            matches.points_a = np.column_stack([width_a - 1 - matches.points_a[:, 0], matches.points_a[:, 1]])
        v = matches.verification
        candidates.append(((v.inliers, v.matches, not mirrored), mirrored, matches, len(signature)))
    _, mirrored, orb_matches, keypoints_a = max(candidates, key=lambda c: c[0])
    return orb_matches, mirrored, keypoints_a, len(orb_b)


def _ae_cosines(bgr_a: np.ndarray, bgr_b: np.ndarray, signatures, warn) -> tuple[float | None, float | None]:
    """(cosine of the latents as they are, best over A's flips/rotations), or None without the autoencoder."""
    ae = _autoencoder(signatures, warn)
    if ae is None:
        return None, None
    stored_b = ae.embedding(ae.extract(bgr_b))
    cosine = float(np.dot(ae.embedding(ae.extract(bgr_a)), stored_b))
    return cosine, max([cosine, *(float(np.dot(ae.embedding(v), stored_b)) for v in ae.query_signatures(bgr_a))])


def _cnn_cosine(bgr_a: np.ndarray, bgr_b: np.ndarray, signatures, warn) -> float | None:
    """Cosine of the cnn descriptors of the images as they are, or None when not used (as _autoencoder)."""
    if signatures is not None and "cnn" not in signatures:
        return None
    from searcher.features import build_extractor

    try:
        cnn = build_extractor("cnn")
        a, b = cnn.extract_batch([bgr_a, bgr_b])
    except SearcherError as e:
        if signatures is not None and warn:
            warn(f"cnn left out: {e}")
        return None
    return float(np.dot(cnn.embedding(a), cnn.embedding(b)))


def _similarities(
    bhattacharyya: float, mse: float, ae_cosine: float | None, cnn_cosine: float | None, signatures
) -> dict[str, float]:
    """The similarities the calibrated score combines: those of the catalog's signatures (all when None)."""
    wanted = FUSED_SIGNATURES if signatures is None else tuple(s for s in FUSED_SIGNATURES if s in signatures)
    similarities = {
        "hist": hist_similarity("bhattacharyya", bhattacharyya),
        "mse": mse_similarity(mse),
        "ae": None if ae_cosine is None else cosine_similarity(ae_cosine),
        "cnn": None if cnn_cosine is None else cosine_similarity(cnn_cosine),
    }
    return {k: float(v) for k, v in similarities.items() if k in wanted and v is not None}


def _sha256(path: str | os.PathLike) -> str:
    try:
        return images.file_sha256(path)
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror}") from None


def _swapped(path_a, path_b) -> bool:
    """Whether B comes first in the fixed order of a pair (sha256 of the bytes, then the path): the
    measures that decide the verdict are taken in that order, so (a, b) and (b, a) agree exactly."""
    return (_sha256(path_a), os.fspath(path_a)) > (_sha256(path_b), os.fspath(path_b))


def _symmetric_orb(swapped: bool, bgr_a: np.ndarray, bgr_b: np.ndarray) -> tuple[OrbMatches, bool, int, int]:
    """_orb_measures in the pair's fixed order, reported as A against B."""
    if not swapped:
        return _orb_measures(bgr_a, bgr_b)
    matches, mirrored, keypoints_b, keypoints_a = _orb_measures(bgr_b, bgr_a)
    matches.points_a, matches.points_b = matches.points_b, matches.points_a
    matches.pairs = [(j, i, d) for i, j, d in matches.pairs]
    return matches, mirrored, keypoints_a, keypoints_b


def compare_images(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    signatures: tuple[str, ...] | None = None,
    max_megapixels: float = images.DEFAULT_MAX_MEGAPIXELS,
    warn=None,
) -> Comparison:
    """Every measure of A against B and the verdict of the pair rule. `signatures`: those a catalog
    holds (Catalog.compare passes them), so the score combines what `searcher dups` on it combines;
    None = all of them whose model files exist."""
    image_a, image_b = _load(path_a, max_megapixels), _load(path_b, max_megapixels)
    bgr_a, bgr_b = image_a.bgr, image_b.bgr
    hist = HistogramExtractor()
    hist_a, hist_b = hist.extract(bgr_a), hist.extract(bgr_b)
    hist_values = {method: hist.compare(hist_a, hist_b, method) for method in METHODS}
    swapped = _swapped(path_a, path_b)
    oriented, best = _oriented_mse(bgr_a, bgr_b)  # the fixed order's below (sums differ in the last bits)
    fixed_mse = float(np.min(_oriented_mse(*((bgr_b, bgr_a) if swapped else (bgr_a, bgr_b)))[0]))
    orb_matches, mirrored, keypoints_a, keypoints_b = _symmetric_orb(swapped, bgr_a, bgr_b)
    verification = orb_matches.verification
    sift = _sift_measures(*(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) for x in (bgr_a, bgr_b)))
    ae_cosine, ae_cosine_oriented = _ae_cosines(bgr_a, bgr_b, signatures, warn)
    cnn_cosine = _cnn_cosine(bgr_a, bgr_b, signatures, warn)

    similarities = _similarities(hist_values["bhattacharyya"], fixed_mse, ae_cosine, cnn_cosine, signatures)
    grey = bool(grey_pairs(hist_a, hist_b)[0])
    has_orb = signatures is None or "orb" in signatures
    fused = pair_probability(similarities, grey, 0 if has_orb else None)
    score = pair_probability(similarities, grey, verification.inliers if has_orb else None)
    return Comparison(
        a=os.path.abspath(path_a),
        b=os.path.abspath(path_b),
        size_a=(image_a.width, image_a.height),
        size_b=(image_b.width, image_b.height),
        hist=hist_values,
        mse=float(oriented[0]),
        mse_oriented=float(oriented[best]),
        orientation=ORIENTATIONS[best],
        orb_keypoints=(keypoints_a, keypoints_b),
        orb_matches=verification.matches,
        orb_inliers=verification.inliers,
        orb_mirrored=mirrored,
        sift_keypoints=sift[0],
        sift_bf_matches=sift[1],
        sift_flann_matches=sift[2],
        sift_inliers=sift[3],
        ae_cosine=ae_cosine,
        ae_cosine_oriented=ae_cosine_oriented,
        cnn_cosine=cnn_cosine,
        grey=grey,
        similarities=similarities,
        fused=fused,
        orb_score=verification_score(verification.inliers),
        score=score,
        threshold=threshold,
        near_duplicate=score >= threshold,
        rule=PAIR_RULE,
        _evidence={"a": bgr_a, "b": bgr_b, "orb": orb_matches},
    )


# ---- drawing ----

BAND = 28  # height of the caption band above the two images
GAP = 8  # white columns between the two images
INLIER_COLOUR = (60, 200, 60)  # BGR green
OUTLIER_COLOUR = (40, 40, 230)  # BGR red
MAX_DRAWN = 120  # the best matches by Hamming distance; more lines hide the images


def drawing_size(comparison: Comparison) -> tuple[int, int]:
    """(width, height) of the image draw() writes: both working images side by side under the caption band."""
    a, b = comparison._evidence["a"], comparison._evidence["b"]
    return a.shape[1] + GAP + b.shape[1], max(a.shape[0], b.shape[0]) + BAND


def draw(comparison: Comparison, path: str | os.PathLike) -> tuple[int, int]:
    """Write A and B side by side (working size, long side <= 640, GAP apart) with the best ORB matches:
    RANSAC inliers in green, outliers in red, and the verdict in the band above. Returns (width, height)."""
    a, b = comparison._evidence["a"], comparison._evidence["b"]
    matches: OrbMatches = comparison._evidence["orb"]
    width, height = drawing_size(comparison)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    canvas[BAND : BAND + a.shape[0], : a.shape[1]] = a
    offset = a.shape[1] + GAP  # x of B's left edge
    canvas[BAND : BAND + b.shape[0], offset:] = b
    order = sorted(range(len(matches.pairs)), key=lambda k: matches.pairs[k][2])[:MAX_DRAWN]
    # Outliers first, so that the inliers are drawn over them.
    for k in sorted(order, key=lambda k: bool(matches.inlier[k]) if len(matches.inlier) else False):
        i, j, _ = matches.pairs[k]
        inlier = bool(matches.inlier[k]) if len(matches.inlier) else False
        colour = INLIER_COLOUR if inlier else OUTLIER_COLOUR
        pa = (int(round(matches.points_a[i][0])), int(round(matches.points_a[i][1])) + BAND)
        pb = (int(round(matches.points_b[j][0])) + offset, int(round(matches.points_b[j][1])) + BAND)
        cv2.line(canvas, pa, pb, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, pa, 3, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, pb, 3, colour, 1, cv2.LINE_AA)
    verdict = "NEAR DUPLICATE" if comparison.near_duplicate else "not a near duplicate"
    caption = (
        f"{verdict}  score {comparison.score:.2f}  fused {comparison.fused:.2f}  "
        f"ORB {comparison.orb_inliers} inliers (green) of {comparison.orb_matches} matches (red: outliers)"
        + ("  [A mirrored]" if comparison.orb_mirrored else "")
    )
    scale = min(0.5, 0.95 * width / max(1, cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][0]))
    cv2.putText(canvas, caption, (6, BAND - 9), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".png", canvas)
    if not ok:
        raise SearcherError(f"cannot encode the drawing for {path}")
    try:
        with open(path, "wb") as f:
            f.write(data.tobytes())
    except OSError as e:
        raise SearcherError(f"cannot write {path}: {e.strerror}") from None
    return width, height
