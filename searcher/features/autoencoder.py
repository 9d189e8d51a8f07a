"""Autoencoder signature ("ae"): the L2-normalised latent of a small convolutional autoencoder.

Recipe (the whole preprocessing, so that a stored latent can be reproduced):
    BGR uint8 image, any size and aspect ratio (grey or BGRA are converted to BGR)
    -> cv2.resize to INPUT_SIZE x INPUT_SIZE (64 x 64) with INTER_AREA, ignoring the aspect ratio
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

import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar, Sequence

import cv2
import numpy as np

from searcher.errors import SearcherError
from searcher.features.base import Extractor

ARCH = "ae64-v1"  # bump when the architecture or the preprocessing changes
INPUT_SIZE = 64
CHANNELS = (32, 64, 128, 128)
DEFAULT_LATENT_DIM = 128
WEIGHTS_NAME = "ae.pt"
THREADS_ENV = "SEARCHER_TORCH_THREADS"
WEIGHTS_ENV = "SEARCHER_AE_WEIGHTS"  # weights file chosen with --weights
_MEAN = 0.5
_STD = 0.25


def default_weights_path() -> Path:
    """$SEARCHER_AE_WEIGHTS (what `--weights FILE` sets) when set; else the shipped weights: package
    data (searcher/models/ae.pt) first, then the repository's models/ae.pt.

    When neither exists, the repository location is returned (loading it then fails with a clear message).
    """
    chosen = os.environ.get(WEIGHTS_ENV, "").strip()
    if chosen:
        return Path(chosen)
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / "models" / WEIGHTS_NAME, here.parents[2] / "models" / WEIGHTS_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[-1]


def weights_version(path: str | os.PathLike) -> str:
    """'1-' + the first 12 hex digits of the sha256 of the weights file: changes whenever the weights do."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "1-" + digest.hexdigest()[:12]


# ----------------------------------------------------------------------------------------------
# preprocessing (numpy only)


def preprocess(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """BGR uint8 image -> float32 CHW RGB array, size x size, normalised as the recipe says."""
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
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    rgb = small[:, :, ::-1].astype(np.float32) * (1.0 / 255.0)
    return ((rgb - _MEAN) / _STD).transpose(2, 0, 1).copy()


def preprocess_batch(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """N BGR images -> float32 array N x 3 x size x size."""
    if not images:
        return np.zeros((0, 3, size, size), dtype=np.float32)
    return np.stack([preprocess(image, size) for image in images])


# ----------------------------------------------------------------------------------------------
# the model (torch, built on demand)


def build_model(latent_dim: int = DEFAULT_LATENT_DIM, input_size: int = INPUT_SIZE, channels: Sequence[int] = CHANNELS):
    """A ConvAutoencoder (torch.nn.Module) with `encode`, `decode` and `forward` -> (latent, reconstruction).

    The decoder: linear to the encoder's last grid, then 4x4 stride-2 transposed convs halving the
    channels (128-64-32-16-3), and a sigmoid: it reconstructs the
    image in [0, 1] (RGB, input_size x input_size), not in the normalised input space.
    """
    import torch
    from torch import nn

    channels = tuple(int(c) for c in channels)
    n = len(channels)
    if input_size % (2**n):
        raise ValueError(f"input size {input_size} is not divisible by 2**{n}")
    grid = input_size // (2**n)

    class ConvAutoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.latent_dim = int(latent_dim)
            self.input_size = int(input_size)
            self.channels = channels
            layers: list[nn.Module] = []
            c_in = 3
            for c_out in channels:
                layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
            self.features = nn.Sequential(*layers)
            self.to_latent = nn.Linear(c_in * grid * grid, self.latent_dim)
            self.from_latent = nn.Sequential(nn.Linear(self.latent_dim, c_in * grid * grid), nn.ReLU(inplace=True))
            up: list[nn.Module] = []
            c = c_in
            for i in range(n):  # halve the channels at each doubling of the resolution
                if i + 1 < n:
                    c_next = max(16, c // 2)
                    up += [nn.ConvTranspose2d(c, c_next, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_next), nn.ReLU(inplace=True)]
                    c = c_next
                else:
                    up += [nn.ConvTranspose2d(c, 3, 4, stride=2, padding=1), nn.Sigmoid()]
            self.upsample = nn.Sequential(*up)
            self._grid = grid
            self._top = c_in

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.to_latent(torch.flatten(self.features(x), 1))

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            h = self.from_latent(z).view(-1, self._top, self._grid, self._grid)
            return self.upsample(h)

        def forward(self, x: torch.Tensor):
            z = self.encode(x)
            return z, self.decode(z)

    return ConvAutoencoder()


def save_weights(model, path: str | os.PathLike, meta: dict[str, Any] | None = None, half: bool = True) -> Path:
    """Write the weights file: {"arch", "input_size", "latent_dim", "channels", "meta" (JSON text), "state_dict"}.

    Floating tensors are stored as float16 when `half` (the file is then about half the size; they are
    loaded back as float32). The write is atomic (temporary file + rename).
    """
    import torch

    path = Path(path)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value.clone()
    payload = {
        "arch": ARCH,
        "input_size": int(model.input_size),
        "latent_dim": int(model.latent_dim),
        "channels": [int(c) for c in model.channels],
        # JSON text, not nested objects: the pickle (and so the file hash, the extractor's version)
        # then depends only on the values, not on which Python objects happen to be shared
        "meta": json.dumps(meta or {}, sort_keys=True),
        "state_dict": state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path


def read_weights_file(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a weights file (torch.load with weights_only=True); raises SearcherError if unusable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SearcherError(f"autoencoder weights not found: {path} (train them with `searcher train`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise SearcherError(f"cannot read autoencoder weights {path}: {e}") from None
    return _checked_payload(payload, path)


def _checked_payload(payload: Any, path: Path) -> dict[str, Any]:
    """The loaded weights file, if it is one of ours for this architecture."""
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise SearcherError(f"{path} is not a searcher autoencoder weights file")
    if payload.get("arch") != ARCH:
        raise SearcherError(f"{path}: architecture {payload.get('arch')!r}, this searcher reads {ARCH!r}")
    return payload


def weights_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The training record stored in a weights file (config, final loss, history...), without torch."""
    meta = _weights_meta(Path(path)).get("meta", "{}")
    try:
        return json.loads(meta) if isinstance(meta, str) else dict(meta)
    except ValueError:
        return {}


def load_model(path: str | os.PathLike):
    """Build the model described by a weights file and load its weights (float32, eval mode)."""
    payload = read_weights_file(path)
    model = build_model(int(payload["latent_dim"]), int(payload["input_size"]), payload.get("channels", CHANNELS))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, payload


def apply_thread_setting() -> None:
    """torch.set_num_threads($SEARCHER_TORCH_THREADS) when that variable holds a positive integer.

    Imports torch: call it only where torch is used (training, backend="torch").
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        return
    if n > 0:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


_STORAGE_DTYPES = {
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BFloat16Storage": None,  # not produced by save_weights
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def read_weights_numpy(path: str | os.PathLike, tensors: bool = True) -> dict[str, Any]:
    """The payload of a weights file with every tensor as a numpy array, without importing torch.

    A torch.save file is a zip holding data.pkl (the pickled payload) and one raw little-endian file
    per tensor storage. data.pkl is read by a restricted unpickler that knows only OrderedDict, the
    storage types and torch's tensor-rebuild function (so, like torch.load(weights_only=True), it runs
    no foreign code). With tensors=False the storages are not read (tensors come back as None).
    """
    import collections
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise SearcherError(f"autoencoder weights not found: {path} (train them with `searcher train`)")

    def rebuild(storage, offset, size, stride, *rest):
        if storage is None:
            return None
        size = tuple(int(v) for v in size)
        if not size:
            return storage[offset : offset + 1].reshape(()).copy()
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=tuple(int(v) * storage.itemsize for v in stride)
        )
        return np.ascontiguousarray(view)

    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                raise ValueError("no data.pkl inside")
            prefix = pkl[: -len("data.pkl")]

            class Reader(pickle.Unpickler):
                def find_class(self, module: str, name: str) -> Any:
                    if module == "collections" and name == "OrderedDict":
                        return collections.OrderedDict
                    if module == "torch._utils" and name == "_rebuild_tensor_v2":
                        return rebuild
                    if module == "torch" and name in _STORAGE_DTYPES:
                        return name
                    raise pickle.UnpicklingError(f"unexpected object {module}.{name}")

                def persistent_load(self, pid: Any) -> Any:
                    kind, storage_type, key = pid[0], pid[1], pid[2]
                    if kind != "storage":
                        raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
                    if not tensors:
                        return None
                    dtype = _STORAGE_DTYPES.get(storage_type)
                    if dtype is None:
                        raise pickle.UnpicklingError(f"unsupported storage {storage_type}")
                    return np.frombuffer(z.read(f"{prefix}data/{key}"), dtype=np.dtype(dtype).newbyteorder("<"))

            payload = Reader(io.BytesIO(z.read(pkl))).load()
    except SearcherError:
        raise
    except Exception as e:  # not a zip, a foreign pickle, a truncated file
        raise SearcherError(f"cannot read autoencoder weights {path}: {e}") from None
    return _checked_payload(payload, path)


def _weights_meta(path: Path) -> dict[str, Any]:
    """arch, input_size, latent_dim, channels and meta of a weights file; {} when it cannot be read."""
    try:
        payload = read_weights_numpy(path, tensors=False)
    except SearcherError:
        return {}
    return {k: v for k, v in payload.items() if k in ("arch", "input_size", "latent_dim", "channels", "meta")}


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
            self.layers.append((np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]), np.float32), bias.astype(np.float32)))
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


# ----------------------------------------------------------------------------------------------
# the extractor


class AutoencoderExtractor(Extractor):
    """Signature "ae": L2-normalised latent of the convolutional autoencoder (see the module recipe).

    dim is the latent size of the weights file and version is "1-" + sha256(weights file)[:12], so a
    new weights file makes every stored latent stale; both are read at construction without loading
    the weights. The weights are loaded by the first extract. backend "numpy" (the default) runs the
    encoder in numpy and never imports torch; backend "torch" runs the torch module (same latents to
    ~1e-6). Signatures are stored as float16 (the cosine moves by < 1e-3; retrieval is unchanged).
    """

    name: ClassVar[str] = "ae"
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
        self.version = weights_version(self.weights_path)  # instance attribute shadows the ClassVar
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

    def query_signatures(self, image: np.ndarray) -> list[np.ndarray]:
        """The query, its right-angle rotations and its mirror image, in one batch: training covers
        small rotations and flips, but a copy turned by 90 or 180 degrees is another picture to it."""
        variants = [image, *(cv2.rotate(image, code) for code in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE))]
        return self.extract_batch([*variants, np.ascontiguousarray(image[:, ::-1])])

    # -- storage and comparison ----------------------------------------------------------------
    def to_blob(self, signature: np.ndarray) -> bytes:
        return np.ascontiguousarray(signature, dtype=np.float16).tobytes()

    def from_blob(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype=np.float16).astype(np.float32)

    def embedding(self, signature: np.ndarray) -> np.ndarray:
        v = np.asarray(signature, dtype=np.float32)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        a = np.asarray(a, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        if denom == 0.0:
            return 0.0
        return float(min(1.0, max(0.0, float(np.dot(a, b)) / denom)))


__all__ = [
    "ARCH",
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
