"""searcher: near-duplicate image search with a persistent index."""

__version__ = "0.1.0"
