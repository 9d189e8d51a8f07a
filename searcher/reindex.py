"""Rebuilding the vector indexes from the catalog, on request (`searcher reindex`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from searcher.features import build_extractor

if TYPE_CHECKING:
    from searcher.catalog import Catalog


def rebuild_indexes(catalog: Catalog) -> dict[str, int]:
    """Rebuild and save the index of every indexed signature present; returns vectors per index."""
    generation = catalog.generation
    counts = {}
    for name in catalog.store.signature_names():
        extractor = build_extractor(name)
        if extractor.indexed:
            index = catalog.rebuild_index(extractor)
            index.save(generation)
            counts[name] = len(index)
    catalog.changed()
    return counts
