"""Grey thumbnail compared by mean squared error, the seed's MSE method."""

from __future__ import annotations

import cv2
import numpy as np

from searcher.features.base import Extractor
from searcher.features.work_image import WorkImage, as_work
from searcher.scoring import THUMB_SIDE, mse_similarity, orientations

SIDE = THUMB_SIDE


class ThumbnailExtractor(Extractor):
    """BGR -> INTER_AREA 256x256 (the shared WorkImage.square) -> grey -> INTER_AREA 16x16 (aspect
    ignored, so resized copies align) -> [0, 1]. The two-step reduction equals a direct one to 16x16
    up to one uint8 step (whole-number factor), so version 1 signatures stay valid.

    Stored as uint8 (256 bytes). The index embedding is the thumbnail itself: squared L2 / 256 = MSE.
    """

    name = "mse"
    version = "1"
    dim = SIDE * SIDE
    space = "l2"
    takes_work_image = True

    def extract(self, image: np.ndarray | WorkImage) -> np.ndarray:
        grey = cv2.cvtColor(as_work(image).square, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        return small.astype(np.float32).ravel() / 255.0

    def query_signatures(self, image: np.ndarray) -> list[np.ndarray]:
        """The 8 flips and right-angle rotations of the query thumbnail (exact on a square grid)."""
        unique = {v.tobytes(): v for v in orientations(self.extract(image))}
        return list(unique.values())

    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.clip(np.rint(np.asarray(signature) * 255.0), 0, 255).astype(np.uint8).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.uint8).astype(np.float32) / 255.0

    @staticmethod
    def mse(a: np.ndarray, b: np.ndarray) -> float:
        diff = np.asarray(a, np.float32) - np.asarray(b, np.float32)
        return float(np.mean(diff * diff))

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return mse_similarity(self.mse(a, b))
