"""searcher: near-duplicate image search with a persistent index.

    import searcher
    with searcher.Catalog.open("catalog-folder") as cat:
        cat.ingest(["photos/"])
        hits = cat.query("photo.jpg", top=3)
        groups = cat.find_duplicates()

Names are imported on first use, so `import searcher` loads neither OpenCV, hnswlib nor torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Catalog": "searcher.catalog",
    "CatalogLocation": "searcher.catalog.location",
    "IngestOptions": "searcher.ingest",
    "IngestSummary": "searcher.ingest",
    "Sampling": "searcher.video",
    "Hit": "searcher.query",
    "QueryResult": "searcher.query",
    "Group": "searcher.keep",
    "Member": "searcher.keep",
    "DupsResult": "searcher.dups",
    "ReviewOptions": "searcher.group_review",
    "Comparison": "searcher.comparison",
    "CatalogInfo": "searcher.info",
    "compare": "searcher.api",
    "undo": "searcher.api",
    "DEFAULT_THRESHOLD": "searcher.scoring",
    "SearcherError": "searcher.errors",
    "CatalogError": "searcher.errors",
    "ImageError": "searcher.errors",
    "UsageError": "searcher.errors",
}

__all__ = [
    "__version__",
    "Catalog",
    "CatalogLocation",
    "IngestOptions",
    "IngestSummary",
    "Sampling",
    "Hit",
    "QueryResult",
    "Group",
    "Member",
    "DupsResult",
    "ReviewOptions",
    "Comparison",
    "CatalogInfo",
    "compare",
    "undo",
    "DEFAULT_THRESHOLD",
    "SearcherError",
    "CatalogError",
    "ImageError",
    "UsageError",
]

if TYPE_CHECKING:
    from searcher.api import compare, undo
    from searcher.catalog import Catalog
    from searcher.catalog.location import CatalogLocation
    from searcher.comparison import Comparison
    from searcher.dups import DupsResult
    from searcher.errors import CatalogError, ImageError, SearcherError, UsageError
    from searcher.group_review import ReviewOptions
    from searcher.info import CatalogInfo
    from searcher.ingest import IngestOptions, IngestSummary
    from searcher.keep import Group, Member
    from searcher.query import Hit, QueryResult
    from searcher.scoring import DEFAULT_THRESHOLD
    from searcher.video import Sampling


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'searcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
