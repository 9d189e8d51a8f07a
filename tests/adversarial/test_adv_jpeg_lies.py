"""A JPEG whose picture is partly missing is corrupt, however well OpenCV says it decoded."""

from __future__ import annotations

import cv2
import pytest

from searcher import images
from searcher.catalog import CatalogLocation
from searcher.errors import ImageError

from helpers import PHOTOS, run_ingest


def jpeg_640x360() -> bytes:
    image = cv2.resize(cv2.imread(str(PHOTOS[0])), (640, 360))
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def claim_size(data: bytes, width: int, height: int) -> bytes:
    """The same bytes with the frame header (SOF) saying width x height."""
    out = bytearray(data)
    i = 2
    while i < len(out):
        marker, length = out[i + 1], int.from_bytes(out[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            out[i + 5 : i + 7] = height.to_bytes(2, "big")
            out[i + 7 : i + 9] = width.to_bytes(2, "big")
            return bytes(out)
        i += 2 + length
    raise AssertionError("no SOF marker")


def test_a_header_claiming_8000x8000_over_640x360_of_data_fails(tmp_path):
    """D9: stored as ok (uniform grey); libjpeg's "premature end of data segment" must fail it."""
    liar = claim_size(jpeg_640x360(), 8000, 8000)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        images.decode(liar)
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "liar.jpg").write_bytes(liar)
    summary = run_ingest([folder], CatalogLocation(tmp_path / "catalog"))
    assert summary.added == 0 and summary.failed == 1
    assert "premature end" in summary.failures[0][1]


def test_harmless_libjpeg_warnings_do_not_fail_a_sound_jpeg(capfd):
    """D9 (the other half): "extraneous bytes before marker" is common in sound camera files."""
    data = jpeg_640x360()
    assert data.endswith(b"\xff\xd9")
    padded = data[:-2] + b"\x00\x00\x00" + data[-2:]
    image = images.decode(padded)
    assert image.bgr.shape == (360, 640, 3)
    assert images.decode(data).bgr.shape == (360, 640, 3)
