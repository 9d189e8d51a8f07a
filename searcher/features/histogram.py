"""HSV hue-saturation colour histogram, as in the seed, compared with cv2.compareHist."""

from __future__ import annotations

import cv2
import numpy as np

from searcher.features.base import Extractor
from searcher.features.work_image import WorkImage, as_work
from searcher.scoring import hist_similarity

H_BINS = 16
S_BINS = 16

# compareHist methods by the names users type; each maps its raw value to a similarity in [0, 1].
METHODS = {
    "correl": cv2.HISTCMP_CORREL,  # Pearson correlation, 1 = identical
    "chisqr": cv2.HISTCMP_CHISQR,  # chi-square distance, 0 = identical
    "intersect": cv2.HISTCMP_INTERSECT,  # sum of minima of L1-normalised histograms, 1 = identical
    "bhattacharyya": cv2.HISTCMP_BHATTACHARYYA,  # Hellinger distance in [0, 1], 0 = identical
}
HIGHER_IS_SIMILAR = {"correl": True, "chisqr": False, "intersect": True, "bhattacharyya": False}


class HistogramExtractor(Extractor):
    """Shared 256 x 256 thumbnail (WorkImage.square) -> HSV -> 2-D histogram H:16 x S:16 -> L1
    normalise (stored as float16). Version 2: counted on the thumbnail rather than the working image
    (the same colour proportions, a quarter of the pixels or fewer).

    Index embedding: the element-wise square root of the histogram. Its squared L2 distance is
    2 - 2*BC (BC = Bhattacharyya coefficient), so HNSW neighbours are exactly the nearest
    histograms by OpenCV's BHATTACHARYYA (Hellinger) distance, sqrt(1 - BC).
    """

    name = "hist"
    version = "3"  # 3: from the bilinear + box square (work_image.py)
    dim = H_BINS * S_BINS
    space = "l2"
    takes_work_image = True

    def extract(self, image: np.ndarray | WorkImage) -> np.ndarray:
        hsv = cv2.cvtColor(as_work(image).square, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [H_BINS, S_BINS], [0, 180, 0, 256]).ravel()
        total = float(hist.sum())
        return (hist / total).astype(np.float32) if total > 0 else hist.astype(np.float32)

    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.asarray(signature, dtype=np.float16).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.float16).astype(np.float32)

    def embedding(self, signature: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(signature, 0)).astype(np.float32)

    @staticmethod
    def from_embedding(vector: np.ndarray) -> np.ndarray:
        return np.square(vector, dtype=np.float32)

    def compare(self, a: np.ndarray, b: np.ndarray, method: str = "bhattacharyya") -> float:
        """The raw cv2.compareHist value of one of METHODS."""
        return float(cv2.compareHist(np.asarray(a, np.float32), np.asarray(b, np.float32), METHODS[method]))

    def similarity(self, a: np.ndarray, b: np.ndarray, method: str = "bhattacharyya") -> float:
        return hist_similarity(method, self.compare(a, b, method))
