"""What the server tests share: a writable library of sample photos and copies, ingested."""

from __future__ import annotations

import shutil
from pathlib import Path

from searcher.catalog import CatalogLocation
from searcher.ingest import IngestOptions, ingest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def make_library(root: Path, signatures=("hist", "mse", "orb")) -> tuple[Path, CatalogLocation]:
    """sample_data's photos and copies copied under root/library (moves may touch them), ingested."""
    library = root / "library"
    for part in ("photos", "copies"):
        shutil.copytree(SAMPLE / part, library / part)
    location = CatalogLocation(root / "catalog")
    ingest([library], location, IngestOptions(workers=1, signatures=tuple(signatures)))
    return library, location
