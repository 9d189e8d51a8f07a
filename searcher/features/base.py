"""The contract every signature extractor follows.

An extractor turns a decoded image into a signature (a numpy array), packs it into a compact
BLOB for the catalog, and, when it is searched through an HNSW index, gives the embedding
whose distance in ``space`` agrees with its own comparison.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from searcher.scoring import cosine_similarity


class Extractor:
    """Base class: subclasses set the class attributes and implement ``extract``.

    name      stable key in the catalog and in index file names ("hist", "mse", "orb", "ae")
    version   bump whenever the output for the same image changes: stored rows of an older
              version are stale and are recomputed by the next ingest
    dim       length of the index embedding; 0 when the signature is not indexed (ORB)
    space     hnswlib space of the index embedding: "l2" or "cosine"
    """

    name: ClassVar[str]
    version: ClassVar[str]
    dim: ClassVar[int] = 0
    space: ClassVar[str] = "l2"
    # Whether the fused query searches the index with every query variant, or with the first
    # only and uses the others just to re-score candidates (when extra searches cost more than
    # they find). A query by this metric alone always searches with every variant.
    search_variants: ClassVar[bool] = True
    # Which of query_signatures' variants are mirror images of the query: a candidate that matches
    # them clearly better than the others is verified by ORB against the mirrored query.
    mirrored_variants: ClassVar[tuple[int, ...]] = ()
    # Whether extract/extract_batch accept a searcher.features.work_image.WorkImage (and then share
    # its derived images with the other extractors) as well as a BGR array.
    takes_work_image: ClassVar[bool] = False

    @property
    def indexed(self) -> bool:
        return self.dim > 0

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Signature of one BGR uint8 image (already EXIF-rotated, long side <= WORK_SIZE)."""
        raise NotImplementedError

    def extract_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Signatures of several images; extractors that gain from batching override this."""
        return [self.extract(image) for image in images]

    def query_signatures(self, image: np.ndarray, alone: bool = False) -> list[np.ndarray]:
        """Signatures a query is searched with; the best match over them counts. Extractors that
        are not invariant to flips or right-angle rotations add those variants of the query
        (`alone`: the query ranks by this signature alone, and may try more of them)."""
        return [self.extract(image)]

    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.ascontiguousarray(signature, dtype=np.float32).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.float32)

    def embedding(self, signature: np.ndarray) -> np.ndarray:
        """The float32 vector put in the HNSW index (only for indexed extractors)."""
        return np.asarray(signature, dtype=np.float32)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Similarity of two signatures in [0, 1], 1 = identical; the fused ranking averages these."""
        raise NotImplementedError


class UnitVectorExtractor(Extractor):
    """A learned descriptor compared by cosine (ae, cnn): stored as float16, indexed L2-normalised."""

    space: ClassVar[str] = "cosine"

    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.ascontiguousarray(signature, dtype=np.float16).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.float16).astype(np.float32)

    def embedding(self, signature: np.ndarray) -> np.ndarray:
        v = np.asarray(signature, dtype=np.float32)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = self.embedding(a), self.embedding(b)
        return cosine_similarity(float(np.dot(a, b)))
