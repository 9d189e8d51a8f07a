"""ORB keypoints and binary descriptors: the seed's feature matching, used to verify candidates."""

from __future__ import annotations

import cv2
import numpy as np

from searcher.features.base import Extractor
from searcher.scoring import ROW_BYTES, Verification, split_orb, verify

MAX_FEATURES = 256
MIN_SIDE = 2  # ORB's pyramid resize asserts on a one-pixel side (such an image has no keypoints anyway)
split = split_orb  # the packed row layout is scoring's (x, y as float16, 32-byte descriptor)


class OrbExtractor(Extractor):
    """Grey working image -> ORB (256 strongest keypoints; a lower FAST threshold is retried on
    low-texture images) -> rows of (x, y as float16, 32-byte descriptor), about 9 KB per image.

    Not indexed: it verifies and re-ranks a shortlist by cross-checked Hamming matches and RANSAC
    homography inliers.
    """

    name = "orb"
    version = "1"
    dim = 0

    def __init__(self, max_features: int = MAX_FEATURES):
        self.max_features = max_features

    def extract(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        if min(grey.shape[:2]) < MIN_SIDE:
            # ORB finds nothing within 31 pixels of a border anyway, and its pyramid resize
            # asserts on a one-pixel side: such an image simply has no keypoints.
            return np.zeros((0, ROW_BYTES), dtype=np.uint8)
        keypoints, descriptors = cv2.ORB_create(nfeatures=self.max_features).detectAndCompute(grey, None)
        if len(keypoints) < self.max_features // 4:
            orb = cv2.ORB_create(nfeatures=self.max_features, fastThreshold=5)
            keypoints, descriptors = orb.detectAndCompute(grey, None)
        if descriptors is None or not keypoints:
            return np.zeros((0, ROW_BYTES), dtype=np.uint8)
        points = np.array([kp.pt for kp in keypoints], dtype=np.float16).view(np.uint8).reshape(-1, 4)
        return np.hstack([points, descriptors]).astype(np.uint8)

    def query_signatures(self, image: np.ndarray) -> list[np.ndarray]:
        """The query and its mirror image: ORB is rotation- but not flip-invariant."""
        return [self.extract(image), self.extract(np.ascontiguousarray(image[:, ::-1]))]

    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.asarray(signature, dtype=np.uint8).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.uint8).reshape(-1, ROW_BYTES)

    def verify(self, a: np.ndarray, b: np.ndarray) -> Verification:
        """Cross-checked Hamming matches, then homography inliers (searcher.scoring.verify)."""
        return verify(a, b)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return verify(a, b).score
