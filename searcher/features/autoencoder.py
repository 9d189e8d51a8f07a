"""Autoencoder signature ("ae"): the L2-normalised latent of a small convolutional autoencoder.

Recipe (the whole preprocessing, so that a stored latent can be reproduced):
    BGR uint8 image, any size and aspect ratio (grey or BGRA are converted to BGR)
    -> the 256 x 256 square of work_image.WorkImage (bilinear to 512, 2x box), ignoring the aspect
       ratio, then cv2.resize to INPUT_SIZE x INPUT_SIZE (64 x 64) with INTER_AREA
    -> auto-level: the 1st..99th percentile of the values stretched to 0..255 (work_image.auto_level)
    -> BGR to RGB -> float32 / 255 -> (x - 0.5) / 0.25 -> CHW
    -> encoder (4 strided 3x3 convs 32-64-128-128, BatchNorm, ReLU; flatten; linear to latent_dim)
    -> L2 normalisation.
The signature is searched with an hnswlib cosine index; two signatures compare as max(0, cosine).

The network was trained (searcher.training) as a denoising autoencoder, reconstructing the clean
image from an augmented copy (recompression, resize, crop, small rotation, flip, colour jitter,
blur, noise, text overlay, frame), with a contrastive term that pulls the latents of two copies of
the same image together; see models/README.md for the data, the figures and the command that
reproduces the shipped weights.

torch is needed only to train, and imported only when asked for: importing this module or
constructing the extractor reads no weights; the first extract loads them. Inference runs by default
on a numpy copy of the encoder (NumpyEncoder: same latents to ~1e-6), because importing torch costs
seconds in every ingest worker, more than the whole encoder for thousands of images; backend="torch"
runs the torch module instead. SEARCHER_TORCH_THREADS sets the threads of either backend (torch
threads, or numpy's OpenBLAS threads for the calling thread; 1 when unset for numpy). Ingest workers
set it to 1.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import ClassVar, Sequence

import cv2
import numpy as np

from searcher.errors import SearcherError
from searcher.features.ae_model import THREADS_ENV, apply_thread_setting, build_model, load_model
from searcher.features.ae_numpy import NumpyEncoder, preprocess, preprocess_batch
from searcher.features.ae_weights import (
    ARCH,
    CHANNELS,
    DEFAULT_LATENT_DIM,
    INPUT_SIZE,
    WEIGHTS_NAME,
    _weights_meta,
    default_weights_path,
    read_weights_file,
    read_weights_numpy,
    save_weights,
    weights_meta,
    weights_version,
)
from searcher.features.base import UnitVectorExtractor
from searcher.features.work_image import WorkImage, as_work, mirror

PREPROCESSING = "3"  # bump when the recipe's preprocessing changes (3: the bilinear + box square; 2: auto-level after the resize)


class AutoencoderExtractor(UnitVectorExtractor):
    """Signature "ae": L2-normalised latent of the convolutional autoencoder (see the module recipe).

    dim is the latent size of the weights file and version is "1-" + sha256(weights file)[:12], so a
    new weights file makes every stored latent stale; both are read at construction without loading
    the weights. The weights are loaded by the first extract. backend "numpy" (the default) runs the
    encoder in numpy and never imports torch; backend "torch" runs the torch module (same latents to
    ~1e-6). Signatures are stored as float16 (the cosine moves by < 1e-3; retrieval is unchanged).
    """

    name: ClassVar[str] = "ae"
    takes_work_image: ClassVar[bool] = True
    space: ClassVar[str] = "cosine"
    dim: int = DEFAULT_LATENT_DIM
    batch_size: int = 32

    def __init__(self, weights: str | os.PathLike | None = None, backend: str = "numpy") -> None:
        if backend not in ("numpy", "torch"):
            raise ValueError(f"backend must be 'numpy' or 'torch', not {backend!r}")
        self.backend = backend
        self.weights_path = Path(weights) if weights is not None else default_weights_path()
        if not self.weights_path.is_file():
            raise SearcherError(f"autoencoder weights not found: {self.weights_path} (train them with `searcher train`)")
        # instance attribute shadows the ClassVar: the preprocessing and the weights file
        self.version = f"{PREPROCESSING}-{weights_version(self.weights_path).split('-', 1)[1]}"
        config = _weights_meta(self.weights_path)
        if not config:
            read_weights_numpy(self.weights_path, tensors=False)  # raises the reason as a SearcherError
        self.dim = int(config.get("latent_dim", DEFAULT_LATENT_DIM))
        self.input_size = int(config.get("input_size", INPUT_SIZE))
        self._encoder = None
        self._model = None
        self._lock = threading.Lock()

    # -- model ---------------------------------------------------------------------------------
    def _ensure_encoder(self):
        if self.backend == "torch":
            return self.model
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = NumpyEncoder(read_weights_numpy(self.weights_path))
        return self._encoder

    @property
    def model(self):
        """The torch module (imports torch and loads it on first use, whatever the backend)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    apply_thread_setting()
                    model, payload = load_model(self.weights_path)
                    self._model = model
        else:
            apply_thread_setting()
        return self._model

    # -- extraction ----------------------------------------------------------------------------
    def encode_array(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed float32 N x 3 x S x S -> L2-normalised float32 latents N x dim, in batches."""
        encoder = self._ensure_encoder()
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        if self.backend == "torch":
            import torch

            with torch.inference_mode():
                for start in range(0, len(batch), self.batch_size):
                    chunk = torch.from_numpy(np.ascontiguousarray(batch[start : start + self.batch_size]))
                    out[start : start + len(chunk)] = encoder.encode(chunk).numpy()
        else:
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                out[start : start + len(chunk)] = encoder(chunk)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def extract(self, image: np.ndarray) -> np.ndarray:
        return self.extract_batch([image])[0]

    def extract_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(images) == 0:
            return []
        latents = self.encode_array(preprocess_batch(images, self.input_size))
        return [row.copy() for row in latents]

    # In the fused query, hist and mse already bring rotated copies into the shortlist; searching
    # the ae index 5 times added ~20 ms at 100k images for no gain in the fused ranking (bench).
    search_variants = False
    mirrored_variants = (4,)  # of query_signatures: the mirror image

    def query_signatures(self, image: np.ndarray | WorkImage, alone: bool = False) -> list[np.ndarray]:
        """The query, its right-angle rotations and its mirror image, in one batch: training covers
        small rotations and flips, but a copy turned by 90 or 180 degrees is another picture to it.
        The variants are turned from the shared square (the squashing resize commutes with them),
        not resized again from the whole image each."""
        square = as_work(image).square
        turned = (cv2.rotate(square, code) for code in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE))
        return self.extract_batch([square, *turned, mirror(square)])


__all__ = [
    "ARCH",
    "CHANNELS",
    "THREADS_ENV",
    "WEIGHTS_NAME",
    "AutoencoderExtractor",
    "DEFAULT_LATENT_DIM",
    "INPUT_SIZE",
    "apply_thread_setting",
    "build_model",
    "default_weights_path",
    "NumpyEncoder",
    "load_model",
    "preprocess",
    "preprocess_batch",
    "read_weights_file",
    "read_weights_numpy",
    "save_weights",
    "weights_meta",
    "weights_version",
]
