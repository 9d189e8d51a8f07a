"""Finding image files, decoding them safely, and fingerprinting their bytes."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from searcher.errors import ImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# Every signature is computed from an image whose long side is at most this; JPEGs are decoded
# at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling) whenever that still leaves this many pixels.
WORK_SIZE = 640

DEFAULT_MAX_MEGAPIXELS = 200.0

# Pillow refuses large images on open; we apply our own, configurable limit instead.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class FileStat:
    path: str  # absolute, normalised
    size: int
    mtime_ns: int


@dataclass
class DecodedImage:
    bgr: np.ndarray  # uint8 HxWx3, EXIF orientation applied, long side <= WORK_SIZE
    width: int  # of the full-size image, after EXIF orientation
    height: int


def is_image_path(path: str | os.PathLike) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def scan_files(
    roots: Iterable[str | os.PathLike], skip: Iterable[str] = (), extensions: frozenset[str] = IMAGE_EXTENSIONS
) -> Iterator[FileStat]:
    """Every file with one of the extensions under the roots (files given directly are yielded as they are).

    Directory symlinks are not followed (no loops); hidden directories and the `skip` directories
    (the catalog itself) are left out. Each file is stat()ed once, from the scandir entry.
    """
    skipped = {os.path.abspath(s) for s in skip}
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        if os.path.isfile(root):
            if os.path.splitext(root)[1].lower() in extensions:
                st = os.stat(root)
                yield FileStat(root, st.st_size, st.st_mtime_ns)
            continue
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue  # an unreadable folder holds nothing we can ingest
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith(".") and entry.path not in skipped:
                            stack.append(entry.path)
                    elif os.path.splitext(entry.name)[1].lower() in extensions and entry.is_file():
                        st = entry.stat()
                        yield FileStat(entry.path, st.st_size, st.st_mtime_ns)
                except OSError:
                    continue  # vanished between listing and stat


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise ImageError("permission denied") from None
    except FileNotFoundError:
        raise ImageError("file vanished before it could be read") from None
    except OSError as e:
        raise ImageError(f"cannot read file: {e.strerror or e}") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def probe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, before EXIF rotation; None if Pillow cannot tell."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _reduced_flag(width: int, height: int) -> int:
    """The largest libjpeg down-scale that keeps the long side >= WORK_SIZE."""
    long_side = max(width, height)
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if long_side // factor >= WORK_SIZE:
            return flag
    return cv2.IMREAD_COLOR


def decode(data: bytes, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> DecodedImage:
    """Bytes -> BGR image with EXIF orientation applied, shrunk so the long side <= WORK_SIZE.

    Recipe: refuse empty data -> read the size from the header and refuse images above
    `max_megapixels` before any pixel is decoded -> cv2.imdecode (reduced DCT scaling for big
    JPEGs; OpenCV applies EXIF orientation and returns nothing for truncated or corrupt data)
    -> INTER_AREA resize to WORK_SIZE.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    size = probe_size(data)
    if size is not None:
        megapixels = size[0] * size[1] / 1e6
        if megapixels > max_megapixels:
            raise ImageError(f"image is {size[0]}x{size[1]} ({megapixels:.0f} MP), above --max-megapixels {max_megapixels:g}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    flag = _reduced_flag(*size) if (size and is_jpeg) else cv2.IMREAD_COLOR
    try:
        bgr = cv2.imdecode(buffer, flag)
    except cv2.error as e:
        raise ImageError(f"cannot decode image: {str(e).strip().splitlines()[-1]}") from None
    if bgr is None:
        if size is None:
            raise ImageError("not a recognised image format")
        raise ImageError("corrupt or truncated image data")
    if size is None:
        # Pillow could not read the header but OpenCV decoded it: apply the limit afterwards.
        if bgr.shape[0] * bgr.shape[1] / 1e6 > max_megapixels:
            raise ImageError(f"image above --max-megapixels {max_megapixels:g}")
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    if bgr.dtype != np.uint8:
        bgr = cv2.convertScaleAbs(bgr, alpha=255.0 / max(1.0, float(bgr.max())))
    height, width = _full_size(bgr, size, flag)
    return DecodedImage(bgr=fit_to_work_size(bgr), width=width, height=height)


def _full_size(bgr: np.ndarray, header_size: tuple[int, int] | None, flag: int) -> tuple[int, int]:
    """(height, width) of the full image after EXIF rotation, from the header when it was reduced."""
    if header_size is None or flag == cv2.IMREAD_COLOR:
        return bgr.shape[0], bgr.shape[1]
    w, h = header_size
    rotated = (bgr.shape[0] > bgr.shape[1]) != (h > w) and w != h
    return (w, h) if rotated else (h, w)


def fit_to_work_size(bgr: np.ndarray, work_size: int = WORK_SIZE) -> np.ndarray:
    h, w = bgr.shape[:2]
    scale = work_size / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(bgr)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


def load_image(path: str | os.PathLike, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> DecodedImage:
    """Read and decode one file (unicode paths are fine: bytes are read by Python, not OpenCV)."""
    return decode(read_bytes(os.fspath(path)), max_megapixels)


def expand_image_args(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given, folders expanded recursively to their image files (sorted)."""
    out: list[str] = []
    for p in paths:
        p = os.path.abspath(os.fspath(p))
        if os.path.isdir(p):
            out.extend(sorted(f.path for f in scan_files([p])))
        else:
            out.append(p)
    return out


__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "DecodedImage",
    "FileStat",
    "IMAGE_EXTENSIONS",
    "WORK_SIZE",
    "decode",
    "expand_image_args",
    "fit_to_work_size",
    "is_image_path",
    "load_image",
    "read_bytes",
    "scan_files",
    "sha256_hex",
]
