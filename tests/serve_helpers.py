"""What the server tests share: a writable library of sample photos and copies, ingested."""

from __future__ import annotations

import shutil
from pathlib import Path

import searcher

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def make_library(root: Path, signatures=("hist", "mse", "orb")):
    """sample_data's photos and copies copied under root/library (moves may touch them), ingested:
    (library folder, catalog location)."""
    library = root / "library"
    for part in ("photos", "copies"):
        shutil.copytree(SAMPLE / part, library / part)
    with searcher.Catalog.open(root / "catalog") as catalog:
        catalog.ingest([library], searcher.IngestOptions(workers=1, signatures=tuple(signatures)))
        return library, catalog.location
