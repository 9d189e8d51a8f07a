"""Autoencoder inference without torch: the preprocessing recipe and the encoder in numpy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from searcher.features.ae_model import THREADS_ENV
from searcher.features.ae_weights import CHANNELS, INPUT_SIZE
from searcher.features.work_image import SQUARE, WorkImage, auto_level

MEAN = 0.5  # the input normalisation: (x - MEAN) / STD, x in [0, 1]
STD = 0.25


def preprocess(image: np.ndarray | WorkImage, size: int = INPUT_SIZE) -> np.ndarray:
    """BGR uint8 image -> float32 CHW RGB array, size x size, normalised as the recipe says. The
    reduction goes through the shared 256 x 256 WorkImage.square, then a whole-number INTER_AREA factor."""
    if isinstance(image, WorkImage) and size <= SQUARE:
        image = image.square
    image = np.asarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a BGR image, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if size <= SQUARE and image.shape[:2] != (SQUARE, SQUARE):
        image = WorkImage(image).square
    small = auto_level(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    rgb = small[:, :, ::-1].astype(np.float32) * (1.0 / 255.0)
    return ((rgb - MEAN) / STD).transpose(2, 0, 1).copy()


def preprocess_batch(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """N BGR images -> float32 array N x 3 x size x size."""
    if not images:
        return np.zeros((0, 3, size, size), dtype=np.float32)
    return np.stack([preprocess(image, size) for image in images])


_BLAS_SETTER: Any = False  # False: not looked up yet; None: none found


def _blas_thread_setter():
    """OpenBLAS's openblas_set_num_threads_local (numpy's bundled BLAS), or None when not available."""
    global _BLAS_SETTER
    if _BLAS_SETTER is False:
        _BLAS_SETTER = None
        try:
            import ctypes

            libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
            for lib in sorted(libs.glob("libscipy_openblas*.so*")) + sorted(libs.glob("libopenblas*.so*")):
                fn = getattr(ctypes.CDLL(str(lib)), "openblas_set_num_threads_local", None)
                if fn is not None:
                    fn.argtypes = [ctypes.c_int]
                    fn.restype = ctypes.c_int
                    _BLAS_SETTER = fn
                    break
        except (OSError, AttributeError):
            _BLAS_SETTER = None
    return _BLAS_SETTER


def _encoder_threads() -> int:
    """$SEARCHER_TORCH_THREADS when it holds a positive integer, else 1."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "1")))
    except ValueError:
        return 1


class NumpyEncoder:
    """The encoder in plain numpy (float32): 3x3 stride-2 convs as im2col matmuls, BatchNorm folded in.

    Gives the torch encoder's latents to float32 rounding (about 1e-6) without importing torch, whose
    import alone costs seconds in every ingest worker.
    """

    BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default

    def __init__(self, payload: dict[str, Any]) -> None:
        state = {k: np.asarray(v) for k, v in payload["state_dict"].items()}
        channels = [int(c) for c in payload.get("channels", CHANNELS)]
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(len(channels)):
            w = state[f"features.{3 * i}.weight"].astype(np.float64)
            bn = f"features.{3 * i + 1}."
            scale = state[bn + "weight"].astype(np.float64) / np.sqrt(state[bn + "running_var"].astype(np.float64) + self.BN_EPS)
            bias = state[bn + "bias"].astype(np.float64) - state[bn + "running_mean"].astype(np.float64) * scale
            w = w * scale[:, None, None, None]
            # (O, C, 3, 3) -> (3 * 3 * C, O) matching the (ky, kx, c) order of the im2col columns
            self.layers.append(
                (np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]), np.float32), bias.astype(np.float32))
            )
        self.fc_w = np.ascontiguousarray(state["to_latent.weight"].astype(np.float32).T)
        self.fc_b = state["to_latent.bias"].astype(np.float32)

    @staticmethod
    def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """NHWC x, 3x3 kernel, stride 2, padding 1, + bias, ReLU."""
        n, h, wd, c = x.shape
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        ho, wo = (h + 1) // 2, (wd + 1) // 2
        cols = np.empty((n, ho, wo, 3, 3, c), dtype=np.float32)
        for ky in range(3):
            for kx in range(3):
                cols[:, :, :, ky, kx, :] = xp[:, ky : ky + 2 * ho : 2, kx : kx + 2 * wo : 2, :]
        y = cols.reshape(n * ho * wo, 9 * c) @ w
        y += b
        np.maximum(y, 0.0, out=y)
        return y.reshape(n, ho, wo, -1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 N x 3 x S x S (preprocessed) -> N x latent_dim (not normalised).

        The matrix products run on $SEARCHER_TORCH_THREADS BLAS threads (1 when unset; set only for
        the calling thread, when numpy's BLAS is OpenBLAS): these products are small, and extra
        threads on a busy machine cost far more than they give.
        """
        setter = _blas_thread_setter()
        previous = setter(_encoder_threads()) if setter is not None else None
        try:
            x = np.ascontiguousarray(np.asarray(batch, dtype=np.float32).transpose(0, 2, 3, 1))
            for w, b in self.layers:
                x = self._conv(x, w, b)
            flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # torch flattens C, H, W
            return flat @ self.fc_w + self.fc_b
        finally:
            if setter is not None and previous is not None and previous > 0:
                setter(previous)
