"""Pretrained CNN signature ("cnn"): a GeM-pooled ImageNet feature map, L2-normalised, compared by cosine.

Recipe (the whole preprocessing, so that a stored descriptor can be reproduced):
    BGR uint8 image, any size and aspect ratio (grey or BGRA are converted to BGR)
    -> cv2.resize of the WHOLE image to 224 x 224 with INTER_AREA, ignoring the aspect ratio
       (no centre crop: a copy with a border or a large crop keeps the same framing as its original)
    -> BGR to RGB -> float32 -> (x - mean) / std, the normalisation the weights were trained with
       (stored in the model file's metadata) -> NCHW
    -> models/cnn.onnx: the convolutional trunk of an ImageNet classifier and GeM pooling (p = 3)
       of its last feature map (see models/build_cnn.py and models/README.md)
    -> L2 normalisation -> stored as float16.
Two images compare as max(0, cosine); the HNSW index is a cosine index of the same vectors.

Inference runs on ONNX Runtime (no torch). The session is created on the first extract and runs
each image on one thread; several images (a query and its mirror, a batch) run at once on
$SEARCHER_TORCH_THREADS threads when set (ingest workers set it to 1: parallelism comes from the
processes), else on one thread per CPU this process may use. On this network ONNX Runtime's
intra-op threads do not pay: one pass took 20 ms on one thread and 22 ms on two, while two passes
on two threads at once took 23 ms (bench/README.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Sequence

import cv2
import numpy as np

from searcher.errors import SearcherError
from searcher.features.base import UnitVectorExtractor
from searcher.features.work_image import mirror

PREPROCESSING = "1"  # bump when the preprocessing above changes: it is part of the version
MODEL_NAME = "cnn.onnx"
INPUT_SIZE = 224
DIM = 1280
# Images per ONNX Runtime call. One is fastest per image on this CPU (bench/cnn_probe.py speed: batch 16
# costs 1.3-2x more per image, its early activations, 25 MB, no longer fit in the cache).
BATCH = 1
THREADS_ENV = "SEARCHER_TORCH_THREADS"


def default_model_path() -> Path:
    """The shipped model: package data (searcher/models/cnn.onnx) first, then the repository's models/cnn.onnx."""
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / "models" / MODEL_NAME, here.parents[2] / "models" / MODEL_NAME]
    return next((c for c in candidates if c.is_file()), candidates[-1])


def model_version(path: str | os.PathLike) -> str:
    """PREPROCESSING + '-' + the first 12 hex digits of the model file's sha256."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        raise SearcherError(f"cnn model not found: {path} ({e.strerror}; rebuild it with models/build_cnn.py)") from None
    return f"{PREPROCESSING}-{digest.hexdigest()[:12]}"


def _threads() -> int:
    """$SEARCHER_TORCH_THREADS when it holds a positive integer, else the CPUs this process may use."""
    try:
        setting = int(os.environ.get(THREADS_ENV, "0"))
    except ValueError:
        setting = 0
    if setting > 0:
        return setting
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 BGR view of a grey, BGR or BGRA image; ValueError for anything else."""
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a BGR image, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


class CnnModel:
    """An ONNX Runtime session of models/cnn.onnx and the normalisation written in its metadata."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - a dependency of the package
            raise SearcherError("the cnn signature needs onnxruntime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # images run side by side instead (see the module docstring)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: spinning doubled the CPU of a query (143 vs 74 ms)
        # and its wall time on a busy machine (479 vs 248 ms at load 11), for no gain on a free one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a missing, truncated or foreign file
            raise SearcherError(f"cannot load cnn model {path}: {e}") from None
        meta = self._meta(self.session)
        self.input_size = int(meta.get("input", INPUT_SIZE))
        self.mean = np.asarray(meta.get("mean", [123.675, 116.28, 103.53]), np.float32)
        self.std = np.asarray(meta.get("std", [58.395, 57.12, 57.375]), np.float32)
        self.input_name = self.session.get_inputs()[0].name
        self.threads = _threads()
        # Session.run releases the GIL and may be called from several threads at once.
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cnn") if self.threads > 1 else None
        dim = self.session.get_outputs()[0].shape[-1]
        if dim != DIM:
            raise SearcherError(f"cnn model {path} gives {dim} values, expected {DIM}")

    @staticmethod
    def _meta(session) -> dict[str, Any]:
        text = session.get_modelmeta().custom_metadata_map.get("searcher", "{}")
        try:
            return json.loads(text)
        except ValueError:
            return {}

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """BGR image -> float32 HWC RGB, input_size x input_size, normalised."""
        size = self.input_size
        small = cv2.resize(as_bgr(image), (size, size), interpolation=cv2.INTER_AREA)
        return (small[:, :, ::-1].astype(np.float32) - self.mean) / self.std

    def __call__(self, batch_hwc: np.ndarray) -> np.ndarray:
        """N x S x S x 3 normalised images -> N x DIM L2-normalised descriptors."""
        out = np.empty((len(batch_hwc), DIM), dtype=np.float32)

        def run(start: int) -> None:
            chunk = np.ascontiguousarray(batch_hwc[start : start + BATCH].transpose(0, 3, 1, 2))
            out[start : start + len(chunk)] = self.session.run(None, {self.input_name: chunk})[0]

        starts = range(0, len(batch_hwc), BATCH)
        if self._pool is None or len(starts) == 1:
            for start in starts:
                run(start)
        else:
            list(self._pool.map(run, starts))  # list(): re-raises a pass's exception here
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The 8 flips and right-angle rotations of an H x W (x C) array, the identity first."""
    turns = [np.rot90(image, k) for k in range(4)]
    return [np.ascontiguousarray(a) for a in turns + [t[:, ::-1] for t in turns]]


class CnnExtractor(UnitVectorExtractor):
    """GeM descriptor of a pretrained ImageNet CNN, run with ONNX Runtime; see the module docstring."""

    name: ClassVar[str] = "cnn"
    version: ClassVar[str]  # set per instance from the model file's hash
    dim: ClassVar[int] = DIM
    space: ClassVar[str] = "cosine"
    search_variants: ClassVar[bool] = True

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.version = model_version(self.model_path)  # type: ignore[misc]
        self._model: CnnModel | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> CnnModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = CnnModel(self.model_path)
        return self._model

    def extract(self, image: np.ndarray) -> np.ndarray:
        return self.extract_batch([image])[0]

    def extract_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(images) == 0:
            return []
        model = self.model
        batch = np.stack([model.preprocess(image) for image in images])
        return [row.copy() for row in model(batch)]

    def query_signatures(self, image: np.ndarray, alone: bool = False) -> list[np.ndarray]:
        """The query and its mirror image, in one batch: ImageNet features are not
        flip-invariant, and a mirrored copy is a common edit. Right-angle rotations are left to the
        mse thumbnails, which try all 8, and to ORB, which is rotation-invariant: 6 more forward
        passes cost a fused query ~100 ms (bench/README.md). `alone` (--metric cnn): all 8 flips and
        rotations. The whole-image resize commutes with them, so the resized input is turned."""
        model = self.model
        resized = model.preprocess(image)
        variants = dihedral(resized) if alone else [resized, mirror(resized)]
        return [row.copy() for row in model(np.stack(variants))]


__all__ = ["CnnExtractor", "CnnModel", "DIM", "INPUT_SIZE", "default_model_path", "dihedral", "model_version"]
