"""ORB keypoints and binary descriptors: the seed's feature matching, used to verify candidates."""

from __future__ import annotations

import cv2
import numpy as np

from searcher.features.base import Extractor
from searcher.features.work_image import WorkImage, as_work, auto_level, mirrored_work
from searcher.scoring import ROW_BYTES, Verification, split_orb, verify

MAX_FEATURES = 256
# ORB runs on the grey working image shrunk (or, when smaller, enlarged) to this long side (INTER_LINEAR, as ORB's own pyramid),
# its keypoints scaled back to working-image pixels (bench/orb_study.py). None: the working image itself.
ORB_SIDE: int | None = 400
ORB_LEVELS = 8
ORB_SCALE = 1.2
ORB_FAST = 20  # FAST threshold (OpenCV's default); low-texture images are retried at 5
MIN_SIDE = 2  # ORB's pyramid resize asserts on a one-pixel side (such an image has no keypoints anyway)

split = split_orb  # the packed row layout is scoring's (x, y as float16, 32-byte descriptor)


class OrbExtractor(Extractor):
    """Grey working image -> scaled to a long side of ORB_SIDE (shrunk; a small image, e.g. a 176x144
    video frame, enlarged: ORB ignores 31 pixels at each border and needs texture at its patch size) ->
    levels stretched (work_image.auto_level) ->
    ORB (256 strongest keypoints; a lower FAST threshold is retried on low-texture images) -> rows of
    (x, y in working-image pixels as float16, 32-byte descriptor), about 9 KB per image.

    Not indexed: it verifies and re-ranks a shortlist by cross-checked Hamming matches and RANSAC
    homography inliers.
    """

    name = "orb"
    # 4: levels stretched; 3: small images enlarged to ORB_SIDE; 2: on an ORB_SIDE image (1: on the 640 px working image)
    version = "4"
    dim = 0
    takes_work_image = True

    def __init__(
        self,
        max_features: int = MAX_FEATURES,
        side: int | None = ORB_SIDE,
        levels: int = ORB_LEVELS,
        scale: float = ORB_SCALE,
        fast: int = ORB_FAST,
    ):
        self.max_features = max_features
        self.side, self.levels, self.scale, self.fast = side, levels, scale, fast

    def extract(self, image: np.ndarray | WorkImage) -> np.ndarray:
        grey = as_work(image).grey
        if min(grey.shape[:2]) < MIN_SIDE:
            # ORB finds nothing within 31 pixels of a border anyway, and its pyramid resize
            # asserts on a one-pixel side: such an image simply has no keypoints.
            return np.zeros((0, ROW_BYTES), dtype=np.uint8)
        factor = 1.0
        if self.side is not None and max(grey.shape[:2]) != self.side:
            factor = max(grey.shape[:2]) / self.side
            size = (max(1, round(grey.shape[1] / factor)), max(1, round(grey.shape[0] / factor)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_CUBIC)
        # Levels stretched (1st..99th percentile to 0..255): FAST's threshold is an absolute grey
        # difference, so a near-black or washed-out copy had almost no keypoints (4 instead of 256).
        grey = auto_level(grey)
        keypoints, descriptors = self._orb(self.fast).detectAndCompute(grey, None)
        if len(keypoints) < self.max_features // 4:
            keypoints, descriptors = self._orb(5).detectAndCompute(grey, None)
        if descriptors is None or not keypoints:
            return np.zeros((0, ROW_BYTES), dtype=np.uint8)
        xy = np.array([kp.pt for kp in keypoints], dtype=np.float32) * factor
        points = xy.astype(np.float16).view(np.uint8).reshape(-1, 4)
        return np.hstack([points, descriptors]).astype(np.uint8)

    def _orb(self, fast_threshold: int):
        return cv2.ORB_create(
            nfeatures=self.max_features, scaleFactor=self.scale, nlevels=self.levels, fastThreshold=fast_threshold
        )

    def query_signatures(self, image: np.ndarray | WorkImage, alone: bool = False) -> list[np.ndarray]:
        """The query and its mirror image: ORB is rotation- but not flip-invariant."""
        work = as_work(image)
        return [self.extract(work), self.extract(mirrored_work(work))]

    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.asarray(signature, dtype=np.uint8).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.uint8).reshape(-1, ROW_BYTES)

    def verify(self, a: np.ndarray, b: np.ndarray) -> Verification:
        """Cross-checked Hamming matches, then homography inliers (searcher.scoring.verify)."""
        return verify(a, b)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return verify(a, b).score
