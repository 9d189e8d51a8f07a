"""Finding image files, decoding them safely, and fingerprinting their bytes."""

from __future__ import annotations

import hashlib
import io
import os
import stat as stat_module
import sys
import tempfile
import warnings
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


@dataclass(frozen=True)
class PathIdentity:
    """What a path names on disk: every symlink to a file and every hard link of it share one.

    Two catalog paths with the same identity are one file under two names, never two copies."""

    device: int
    inode: int
    real_path: str  # the path with every symlink resolved


def path_identity(path: str | os.PathLike) -> PathIdentity | None:
    """The identity of the file `path` resolves to; None when it cannot be stat()ed (gone, unreadable)."""
    try:
        st = os.stat(path)  # follows symlinks: a link and its target get the same identity
    except (OSError, ValueError):
        return None
    return PathIdentity(st.st_dev, st.st_ino, os.path.realpath(path))


@dataclass(frozen=True)
class Unreadable:
    """A folder that could not be listed, or a file that could not be stat()ed: not the same as gone."""

    path: str
    reason: str
    folder: bool


def _reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied"
    return (error.strerror or str(error)).lower()


@dataclass
class DecodedImage:
    bgr: np.ndarray  # uint8 HxWx3, EXIF orientation applied, long side <= WORK_SIZE
    width: int  # of the full-size image, after EXIF orientation
    height: int


def is_image_path(path: str | os.PathLike) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def scan_files(
    roots: Iterable[str | os.PathLike],
    skip: Iterable[str] = (),
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    unreadable: list[Unreadable] | None = None,
) -> Iterator[FileStat]:
    """Every regular file with one of the extensions under the roots (files given directly are yielded as they are).

    Directory symlinks are not followed (no loops); hidden directories and the `skip` directories
    (the catalog itself) are left out; FIFOs, devices and sockets are never yielded. Each file is
    stat()ed once, from the scandir entry. A folder that cannot be listed, or a file that exists but
    cannot be stat()ed, is appended to `unreadable` (when given): it is not gone, and the caller
    must not treat what it held as deleted. Something that vanished meanwhile is simply left out.
    """
    skipped = {os.path.abspath(s) for s in skip}
    problems = unreadable if unreadable is not None else []
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            if os.path.splitext(root)[1].lower() in extensions:
                yield from _stat_regular(root, problems)
            continue
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone (or replaced by a file) since it was listed
            except OSError as e:
                problems.append(Unreadable(directory, _reason(e), folder=True))
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith(".") and entry.path not in skipped:
                            stack.append(entry.path)
                    elif os.path.splitext(entry.name)[1].lower() in extensions and entry.is_file():
                        st = entry.stat()
                        yield FileStat(entry.path, st.st_size, st.st_mtime_ns)
                except FileNotFoundError:
                    continue  # vanished between listing and stat
                except OSError as e:
                    problems.append(Unreadable(entry.path, _reason(e), folder=False))


def _stat_regular(path: str, problems: list[Unreadable]) -> Iterator[FileStat]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        problems.append(Unreadable(path, _reason(e), folder=False))
        return
    if stat_module.S_ISREG(st.st_mode):
        yield FileStat(path, st.st_size, st.st_mtime_ns)
    else:
        problems.append(Unreadable(path, "not a regular file (a FIFO, device or socket)", folder=False))


def open_regular(path: str):
    """A binary file object on `path`, refusing anything but a regular file before it can block.

    A FIFO named x.jpg would block open() until a writer came; O_NONBLOCK makes open() return at
    once, and fstat on the open descriptor (no race with a swapped path) refuses it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError("not a regular file (a FIFO, device or folder)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a regular file read in 1 MB pieces (videos can be far larger than memory allows).
    OSError and the not-a-regular-file ImageError reach the caller, who words them for its context."""
    digest = hashlib.sha256()
    with open_regular(os.fspath(path)) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Failures of read_bytes that say nothing about the bytes: a chmod or a remount fixes them without
# touching size or mtime, so ingest retries such files on every run (see is_access_error).
ACCESS_ERRORS = ("permission denied", "cannot read file", "file vanished")


def is_access_error(reason: str | None) -> bool:
    """True for a stored failure reason that came from reading the file, not from its content."""
    return bool(reason) and reason.startswith(ACCESS_ERRORS)


def read_bytes(path: str) -> bytes:
    try:
        with open_regular(path) as f:
            return f.read()
    except IsADirectoryError:
        raise ImageError("not a regular file (a folder)") from None
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
        with warnings.catch_warnings():  # Pillow's "Corrupt EXIF data" and the like: not the user's concern here
            warnings.simplefilter("ignore")
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
    bgr = _decode_quietly(buffer, flag, MISSING_DATA_WARNINGS if is_jpeg else ())
    if bgr is None and data[:4] in (b"II*\0", b"MM\0*"):
        # OpenCV's colour path refuses TIFFs with 32-bit (float) samples; the unchanged path reads them.
        bgr = _decode_quietly(buffer, cv2.IMREAD_UNCHANGED, ())
    if bgr is None:
        if size is None:
            raise ImageError("not a recognised image format")
        raise ImageError("corrupt or truncated image data")
    if size is None:
        # Pillow could not read the header but OpenCV decoded it: apply the limit afterwards.
        if bgr.shape[0] * bgr.shape[1] / 1e6 > max_megapixels:
            raise ImageError(f"image above --max-megapixels {max_megapixels:g}")
    bgr = _to_bgr8(bgr)
    height, width = _full_size(bgr, size, flag)
    return DecodedImage(bgr=fit_to_work_size(bgr), width=width, height=height)


def _imdecode(buffer: np.ndarray, flag: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(buffer, flag)
    except cv2.error as e:
        raise ImageError(f"cannot decode image: {' '.join(str(e).split())}") from None


# libjpeg warnings that mean part of the picture was never in the file: libjpeg fills it with
# grey and OpenCV reports success (a header claiming 8000x8000 over 640x360 of data decodes "fine").
# Other warnings ("N extraneous bytes before marker") are common in sound camera files.
MISSING_DATA_WARNINGS = ("premature end of data segment", "premature end of jpeg file")


def _decode_quietly(buffer: np.ndarray, flag: int, fatal: tuple[str, ...]) -> np.ndarray | None:
    """cv2.imdecode with the codec libraries' stderr chatter caught: a warning ending with one of
    `fatal` fails the file (ImageError); the others ("N extraneous bytes before marker", libpng's
    "known incorrect sRGB profile") are dropped, as the file decoded whole.

    The libraries print straight to stderr (fd 2), so fd 2 is pointed at a temporary file for
    the call. Decoding runs in one thread per process (ingest workers, the CLI), which this
    relies on."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: decode unchecked rather than not at all
        return _imdecode(buffer, flag)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            bgr = _imdecode(buffer, flag)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        lines = capture.read().decode("utf-8", "replace").splitlines()
    missing = [line for line in lines if fatal and line.strip().lower().endswith(fatal)]
    if missing:
        raise ImageError(f"corrupt or truncated image data ({missing[0].strip()})")
    return bgr


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (grey, BGRA, 16-bit, float) -> 3-channel uint8 BGR.

    Deeper samples are scaled so the largest value becomes 255 (floats in [0, 1] stay in [0, 1])."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.shape[2] != 3:
        image = np.repeat(image[:, :, :1], 3, axis=2)
    if image.dtype != np.uint8:
        values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        image = cv2.convertScaleAbs(values, alpha=255.0 / max(1.0, float(np.abs(values).max())))
    return np.ascontiguousarray(image)


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
    "PathIdentity",
    "Unreadable",
    "IMAGE_EXTENSIONS",
    "WORK_SIZE",
    "decode",
    "expand_image_args",
    "fit_to_work_size",
    "is_access_error",
    "is_image_path",
    "load_image",
    "open_regular",
    "path_identity",
    "read_bytes",
    "scan_files",
    "sha256_hex",
]
