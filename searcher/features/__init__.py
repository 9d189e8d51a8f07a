"""Signature extractors, one module each; this module knows which exist and builds them by name."""

from __future__ import annotations

from searcher.errors import UsageError
from searcher.features.base import Extractor
from searcher.features.histogram import HistogramExtractor
from searcher.features.orb import OrbExtractor
from searcher.features.thumbnail import ThumbnailExtractor

ALL_SIGNATURES = ("hist", "mse", "orb", "ae", "cnn")
DEFAULT_SIGNATURES = ("hist", "mse", "orb", "ae")


def build_extractor(name: str) -> Extractor:
    """One extractor by name. The autoencoder and cnn modules are imported only when asked for."""
    if name == "hist":
        return HistogramExtractor()
    if name == "mse":
        return ThumbnailExtractor()
    if name == "orb":
        return OrbExtractor()
    if name == "ae":
        from searcher.features.autoencoder import AutoencoderExtractor

        return AutoencoderExtractor()
    if name == "cnn":
        from searcher.features.cnn import CnnExtractor

        return CnnExtractor()
    raise UsageError(f"unknown signature {name!r}; choose from {', '.join(ALL_SIGNATURES)}")


def build_extractors(names: tuple[str, ...] | list[str] = DEFAULT_SIGNATURES) -> list[Extractor]:
    return [build_extractor(n) for n in dict.fromkeys(names)]


def parse_signature_list(text: str) -> tuple[str, ...]:
    """'hist,orb' -> ('hist', 'orb'), checked against ALL_SIGNATURES."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_SIGNATURES]
    if unknown:
        raise UsageError(f"unknown signature {unknown[0]!r}; choose from {', '.join(ALL_SIGNATURES)}")
    if not names:
        raise UsageError("no signature named")
    return names
