"""Rebuilding the vector indexes from the catalog, on request (`searcher reindex`)."""

from __future__ import annotations

from sqlalchemy import select

from searcher.catalog import CatalogLocation, SignatureRow, get_generation, new_session, open_catalog
from searcher.features import build_extractor
from searcher.index import build_from_catalog


def rebuild_indexes(location: CatalogLocation) -> dict[str, int]:
    """Rebuild and save the index of every indexed signature present; returns vectors per index."""
    engine = open_catalog(location, create=False)
    try:
        with new_session(engine) as session:
            generation = get_generation(session)
            names = session.scalars(select(SignatureRow.extractor).distinct()).all()
        counts = {}
        for name in sorted(names):
            extractor = build_extractor(name)
            if extractor.indexed:
                index = build_from_catalog(engine, extractor, location.index_path(name))
                index.save(generation)
                counts[name] = len(index)
        return counts
    finally:
        engine.dispose()
