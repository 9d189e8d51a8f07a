"""The tools users would pick instead: perceptual hashes searched by a brute-force Hamming scan.

imagehash (pHash, dHash, colorhash) and imagededup's hashing methods (PHash, DHash, AHash, WHash),
each with its default parameters, on the image as Pillow opens it (the way their users call them).
imagededup is imported without its CNN module (it needs torchvision, which would replace the CPU
build of torch): only its hashing methods are benchmarked.
"""

from __future__ import annotations

import sys
import types
from typing import Callable

import numpy as np
from PIL import Image

IMAGEDEDUP_METHODS = ("PHash", "DHash", "AHash", "WHash")


def _import_imagededup_hashing():
    """imagededup.methods.hashing without torchvision: stub the two modules that need it."""
    for name, attrs in {"imagededup.methods.cnn": ("CNN",), "imagededup.utils.models": ("CustomModel",)}.items():
        if name not in sys.modules:
            stub = types.ModuleType(name)
            for attr in attrs:
                setattr(stub, attr, None)
            sys.modules[name] = stub
    from imagededup.methods import hashing

    return hashing


def hashers() -> dict[str, Callable[[Image.Image], np.ndarray]]:
    """name -> function(PIL image) -> bool bit array. Peers that do not import are left out."""
    out: dict[str, Callable] = {}
    try:
        import imagehash

        out["imagehash pHash"] = lambda im: imagehash.phash(im).hash.ravel()
        out["imagehash dHash"] = lambda im: imagehash.dhash(im).hash.ravel()
        out["imagehash colorhash"] = lambda im: imagehash.colorhash(im).hash.ravel()
    except ImportError:
        pass
    try:
        hashing = _import_imagededup_hashing()
        for method in IMAGEDEDUP_METHODS:
            encoder = getattr(hashing, method)(verbose=False)
            out[f"imagededup {method}"] = _imagededup_fn(encoder)
    except Exception:
        pass
    return out


def _imagededup_fn(encoder):
    def fn(im: Image.Image) -> np.ndarray:
        # encode_image(image_array=...) is imagededup's own path for decoded images (RGB uint8).
        arr = np.asarray(im.convert("RGB"))
        hex_hash = encoder.encode_image(image_array=arr)
        return np.unpackbits(np.frombuffer(bytes.fromhex(hex_hash), dtype=np.uint8)).astype(bool)

    return fn


def peer_status() -> dict[str, str]:
    status = {}
    try:
        import imagehash  # noqa: F401

        status["imagehash"] = "ok"
    except ImportError as e:
        status["imagehash"] = f"missing ({e})"
    try:
        _import_imagededup_hashing()
        status["imagededup"] = "ok (hashing methods; CNN not installed: it needs torchvision)"
    except Exception as e:
        status["imagededup"] = f"missing ({type(e).__name__}: {e})"
    return status


def open_image(path) -> Image.Image:
    im = Image.open(path)
    im.load()
    return im


def hash_files(paths, fns: dict[str, Callable]) -> dict[str, np.ndarray]:
    """name -> N x bits bool matrix; each file is opened once and given to every hasher."""
    out = {name: [] for name in fns}
    for path in paths:
        im = open_image(path)
        for name, fn in fns.items():
            out[name].append(fn(im))
    return {name: np.stack(rows) for name, rows in out.items()}


def hamming_rank(query_bits: np.ndarray, catalog_bits: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Catalog indices by Hamming distance (brute force); equal distances in a fixed random order."""
    distances = np.count_nonzero(catalog_bits != query_bits[None, :], axis=1)
    return np.lexsort((tiebreak, distances))


# ---- throughput workers (module level so that process pools can pickle them)


def phash_file(path: str) -> str:
    import imagehash

    with Image.open(path) as im:
        return str(imagehash.phash(im))
