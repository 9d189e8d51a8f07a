"""Grey thumbnail compared by mean squared error, the seed's MSE method."""

from __future__ import annotations

import cv2
import numpy as np

from searcher.features.base import Extractor
from searcher.features.work_image import WorkImage, as_work
from searcher.scoring import THUMB_SIDE, mse_similarity, orientations

SIDE = THUMB_SIDE


SPREAD = 0.2  # the standard deviation a normalised thumbnail is given (about +-2.5 of them fit in [0, 1])


def contrast_normalised(thumbnail: np.ndarray) -> np.ndarray:
    """0.5 + SPREAD * (t - mean) / std, clipped to [0, 1]; a flat thumbnail gives 0.5 everywhere."""
    spread = float(thumbnail.std())
    if spread < 0.5 / 255.0:  # flat: no contrast to normalise
        return np.full_like(thumbnail, 0.5)
    return np.clip(0.5 + SPREAD * (thumbnail - float(thumbnail.mean())) / spread, 0.0, 1.0)


class ThumbnailExtractor(Extractor):
    """BGR -> INTER_AREA 256x256 (the shared WorkImage.square) -> grey -> INTER_AREA 16x16 (aspect
    ignored, so resized copies align) -> [0, 1] -> contrast-normalised: 0.5 + SPREAD * (t - mean) / std,
    clipped to [0, 1], so that a near-black, dimmed or washed-out copy gives the thumbnail of its original
    (a flat image gives 0.5 everywhere).

    Stored as uint8 (256 bytes). The index embedding is the thumbnail itself: squared L2 / 256 = MSE.
    """

    name = "mse"
    version = "3"  # 3: from the bilinear + box square (work_image.py); 2: contrast-normalised
    dim = SIDE * SIDE
    space = "l2"
    takes_work_image = True
    mirrored_variants = (4, 5, 6, 7)

    def extract(self, image: np.ndarray | WorkImage) -> np.ndarray:
        grey = cv2.cvtColor(as_work(image).square, cv2.COLOR_BGR2GRAY)
        return contrast_normalised(
            cv2.resize(grey, (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255.0
        )

    def query_signatures(self, image: np.ndarray, alone: bool = False) -> list[np.ndarray]:
        """The 8 flips and right-angle rotations of the query thumbnail (exact on a square grid), in
        scoring.orientations' order: the last four are mirrored."""
        return list(orientations(self.extract(image)))

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
