"""Where a catalog lives: a folder (SQLite `catalog.db` + vector files beside it) or a database URL.

The SQLAlchemy URL of a folder catalog is built with URL.create, never by pasting the path into a
string: a folder named `app.db?v2` or `100%` must stay that folder, not become URL options or
another file (issue #14, D8). A string containing "://" is a database URL; its vector files, a
rebuildable cache, live in a separate folder (`vector_dir`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from searcher.errors import CatalogError

DEFAULT_CATALOG_DIR = ".searcher"
CATALOG_ENV = "SEARCHER_CATALOG"
CACHE_ENV = "SEARCHER_CACHE"  # where a URL catalog keeps its vector files
DB_NAME = "catalog.db"


@dataclass(frozen=True)
class CatalogLocation:
    """A parsed catalog location.

    directory     folder catalog: the folder itself; URL catalog: the folder of its vector files
    database_url  None for a folder catalog (SQLite file `directory/catalog.db`)
    """

    directory: Path
    database_url: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.database_url is None

    @property
    def vector_dir(self) -> Path:
        return self.directory

    @property
    def db_path(self) -> Path:
        """The SQLite file of a folder catalog."""
        return self.directory / DB_NAME

    @property
    def url(self) -> URL:
        if self.database_url is None:
            return URL.create("sqlite", database=str(self.db_path))
        return make_url(self.database_url)

    @property
    def display(self) -> str:
        """How the location is named to a person (a URL without its password)."""
        if self.database_url is None:
            return str(self.directory)
        return self.url.render_as_string(hide_password=True)

    @property
    def exists(self) -> bool:
        """Whether a folder catalog has its database file (a URL catalog is assumed to exist)."""
        return not self.is_folder or self.db_path.exists()

    def index_path(self, signature: str) -> Path:
        return self.vector_dir / f"index-{signature}.bin"


def _cache_dir(url: str) -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "searcher")
    return Path(base).resolve() / ("vectors-" + hashlib.sha256(url.encode()).hexdigest()[:16])


def parse(text: str | os.PathLike, vector_dir: str | os.PathLike | None = None) -> CatalogLocation:
    """A folder path, or a database URL ("://" in it) with its vector files in `vector_dir`
    (default: $SEARCHER_CACHE, else ~/.cache/searcher, one folder per URL)."""
    text = os.fspath(text)
    if "://" not in text:
        return CatalogLocation(Path(text).expanduser().resolve())
    try:
        make_url(text)
    except ArgumentError as e:
        raise CatalogError(f"not a database URL: {text} ({e})") from None
    vectors = Path(vector_dir).expanduser().resolve() if vector_dir else _cache_dir(text)
    return CatalogLocation(vectors, database_url=text)


def locate(catalog: str | os.PathLike | CatalogLocation | None = None) -> CatalogLocation:
    """--catalog LOCATION, else $SEARCHER_CATALOG, else ./.searcher."""
    if isinstance(catalog, CatalogLocation):
        return catalog
    return parse(catalog or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG_DIR)
