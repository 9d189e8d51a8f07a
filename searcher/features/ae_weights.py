"""The autoencoder's weights file: where the shipped one is, its version, writing and reading it.

A weights file is a torch.save zip of {"arch", "input_size", "latent_dim", "channels", "meta" (JSON
text), "state_dict"}. It can be read without torch (read_weights_numpy), which is what inference does.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from searcher.errors import SearcherError

ARCH = "ae64-v1"  # bump when the architecture or the preprocessing changes
INPUT_SIZE = 64
CHANNELS = (32, 64, 128, 128)
DEFAULT_LATENT_DIM = 128
WEIGHTS_NAME = "ae.pt"
WEIGHTS_ENV = "SEARCHER_AE_WEIGHTS"  # a weights file chosen with --weights (ingest, query, compare)


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


def _rebuild_tensor(storage, offset, size, stride, *rest):
    """torch._utils._rebuild_tensor_v2 for numpy storages (None when storages are not read)."""
    if storage is None:
        return None
    size = tuple(int(v) for v in size)
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(int(v) * storage.itemsize for v in stride))
    return np.ascontiguousarray(view)


class _WeightsUnpickler(pickle.Unpickler):
    """Knows only OrderedDict, the storage types and torch's tensor-rebuild function; storages are
    read from the zip as little-endian numpy arrays (or skipped: tensors=False)."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, tensors: bool):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.tensors = archive, prefix, tensors

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        kind, storage_type, key = pid[0], pid[1], pid[2]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        if not self.tensors:
            return None
        dtype = _STORAGE_DTYPES.get(storage_type)
        if dtype is None:
            raise pickle.UnpicklingError(f"unsupported storage {storage_type}")
        return np.frombuffer(self.archive.read(f"{self.prefix}data/{key}"), dtype=np.dtype(dtype).newbyteorder("<"))


def read_weights_numpy(path: str | os.PathLike, tensors: bool = True) -> dict[str, Any]:
    """The payload of a weights file with every tensor as a numpy array, without importing torch.

    A torch.save file is a zip holding data.pkl (the pickled payload) and one raw little-endian file
    per tensor storage. data.pkl is read by a restricted unpickler that knows only OrderedDict, the
    storage types and torch's tensor-rebuild function (so, like torch.load(weights_only=True), it runs
    no foreign code). With tensors=False the storages are not read (tensors come back as None).
    """
    path = Path(path)
    if not path.is_file():
        raise SearcherError(f"autoencoder weights not found: {path} (train them with `searcher train`)")
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                raise ValueError("no data.pkl inside")
            payload = _WeightsUnpickler(z.read(pkl), z, pkl[: -len("data.pkl")], tensors).load()
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
