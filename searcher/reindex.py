"""Rebuilding the vector indexes from the catalog, on request (`searcher reindex`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from searcher.features import build_extractor

if TYPE_CHECKING:
    from searcher.catalog import Catalog


def rebuild_indexes(catalog: Catalog) -> dict[str, int]:
    """Rebuild and save the index of every indexed signature present; returns vectors per index.
    Holds the catalog's writer lock (waiting for a running ingest), so what it saves is current."""
    counts = {}
    with catalog.writing("reindex"):
        for name in catalog.store.signature_names():
            extractor = build_extractor(name)
            if extractor.indexed:
                index = catalog.rebuild_index(extractor)
                catalog.save_index(index, extractor)
                counts[name] = len(index)
    catalog.changed()
    return counts
