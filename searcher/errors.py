"""Errors whose message is the text the user reads; the CLI turns them into exit code 1."""


class SearcherError(Exception):
    """Base of every expected failure. str(error) is a complete one-line message for the user."""


class CatalogError(SearcherError):
    """The catalog cannot be opened or used (missing, newer schema, corrupt)."""


class CatalogBusy(CatalogError):
    """Another process holds the catalog's writer lock (e.g. another ingest is running)."""


class ImageError(SearcherError):
    """One file cannot be used as an image (zero-byte, truncated, not an image, too large...)."""


class UsageError(SearcherError):
    """Arguments that are well-formed but make no sense together (e.g. a query path that does not exist)."""


def one_line(message: str) -> str:
    """A message fit to store and print as one line (OpenCV's error texts span several lines):
    every line break and run of whitespace becomes one space."""
    return " ".join(str(message).split())
