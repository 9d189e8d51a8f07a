"""The crc32 recorded for index files and their vector copies (corruption, not tampering, is what it
guards against), as the text "crc32:xxxxxxxx" that sidecars store."""

from __future__ import annotations

import zlib
from pathlib import Path


def as_text(crc: int) -> str:
    return f"crc32:{crc:08x}"


def file_checksum(path: Path) -> str:
    """crc32 of the whole file. Read in chunks, not mapped: a mapped file of 500 MB counted in the
    process's peak memory."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return as_text(crc)
