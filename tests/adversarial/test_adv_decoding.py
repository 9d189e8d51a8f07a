"""Images that decode unusually: float TIFFs are images, and failure reasons stay on one line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from searcher import images
from searcher.catalog import CatalogLocation

from helpers import run_ingest


@pytest.mark.parametrize("channels", [1, 3])
def test_a_float_tiff_is_decoded_not_reported_corrupt(tmp_path, channels):
    """D29: a 32-bit float TIFF was "corrupt or truncated image data" (OpenCV's colour path refuses it)."""
    rng = np.random.default_rng(0)
    values = rng.random((90, 120) if channels == 1 else (90, 120, 3)).astype(np.float32)
    path = tmp_path / "float.tif"
    assert cv2.imwrite(str(path), values)
    image = images.load_image(path)
    assert image.bgr.dtype == np.uint8 and image.bgr.shape == (90, 120, 3)
    assert (image.width, image.height) == (120, 90)
    expected = cv2.convertScaleAbs(values, alpha=255.0 / max(1.0, float(values.max())))
    grey = expected if channels == 1 else expected[:, :, 0]
    assert np.abs(image.bgr[:, :, 0].astype(int) - grey.astype(int)).max() <= 1


def test_failure_reasons_are_stored_on_one_line(tmp_path, monkeypatch):
    """D29: OpenCV's multi-line assertion texts were stored (and printed) as failure reasons."""
    import searcher.features.histogram as histogram

    folder = tmp_path / "pics"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((40, 40, 3), 100, np.uint8))

    def broken(self, image):
        raise cv2.error("OpenCV(5.0.0) /io/x.cpp:1: error: (-215:Assertion failed)\n in function 'f'\n")

    monkeypatch.setattr(histogram.HistogramExtractor, "extract", broken)
    monkeypatch.setattr(histogram.HistogramExtractor, "extract_batch", lambda self, imgs: [broken(self, i) for i in imgs])
    summary = run_ingest([folder], CatalogLocation(tmp_path / "catalog"))
    [(_, reason)] = summary.failures
    assert "\n" not in reason and "Assertion failed" in reason


def test_one_line_joins_lines_and_whitespace():
    from searcher.errors import one_line

    assert one_line("a\n  b\r\n\tc \n") == "a b c"
