"""Shared fixtures: real sample photos, transformed copies of them, and a catalog per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from searcher.api import ingest
from searcher.catalog import CatalogLocation
from searcher.ingest import IngestOptions

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
PHOTOS = sorted((SAMPLE / "photos").glob("*.jpg"))


def transform(image: np.ndarray, kind: str) -> np.ndarray:
    """The near-duplicate edits the engine must see through."""
    h, w = image.shape[:2]
    if kind == "resized":
        return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if kind == "recompressed":
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 25])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    if kind == "cropped":
        dy, dx = h // 10, w // 10
        return image[dy : h - dy, dx : w - dx]
    if kind == "rotated":
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if kind == "brightened":
        return cv2.convertScaleAbs(image, alpha=1.15, beta=30)
    raise ValueError(kind)


TRANSFORMS = ("resized", "recompressed", "cropped", "rotated", "brightened")


@pytest.fixture
def location(tmp_path) -> CatalogLocation:
    return CatalogLocation(tmp_path / "catalog")


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    """A writable folder with six distinct sample photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS[:6]:
        shutil.copy(photo, folder / photo.name)
    return folder


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory) -> CatalogLocation:
    """All sample_data photos ingested once, for read-only query tests."""
    location = CatalogLocation(tmp_path_factory.mktemp("sample") / "catalog")
    ingest([SAMPLE / "photos"], location, IngestOptions(workers=1))
    return location


def ingest_quiet(paths, location, **options):
    return ingest(paths, location, IngestOptions(**options))
