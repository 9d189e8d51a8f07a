"""The Milvus vector index behaves as the hnswlib one: same neighbours, same distances, same cache rules."""

from __future__ import annotations

import numpy as np
import pytest

from searcher.catalog.location import parse_vectors
from searcher.catalog.milvus import MilvusIndex, collection_name
from searcher.catalog.vectors import CatalogStamp, HnswIndex, IndexUnusable
from searcher.errors import UsageError

pytestmark = pytest.mark.backends


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_milvus_finds_the_neighbours_hnswlib_finds(milvus_uri, tmp_path, space):
    rng = np.random.default_rng(0)
    ids = np.arange(1, 501, dtype=np.int64) * 3  # catalog ids, not positions
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    hnsw = HnswIndex(tmp_path / "h.bin", 32, space, "1")
    milvus = MilvusIndex(milvus_uri, collection_name("cat", f"t_{space}"), 32, space, "1")
    milvus.rebuild(ids, vectors)
    hnsw.add(ids, vectors)
    for index in (hnsw, milvus):
        index.remove([ids[0], ids[1]])
    assert len(milvus) == len(hnsw) == 498 and ids[0] not in milvus and ids[2] in milvus
    for q in rng.normal(size=(5, 32)).astype(np.float32):
        (h_ids, h_dist), (m_ids, m_dist) = hnsw.search(q, 10), milvus.search(q, 10)
        assert list(m_ids) == list(h_ids)
        assert np.allclose(m_dist, h_dist, rtol=1e-4, atol=1e-4)
    some = [int(i) for i in ids[5:9]]
    assert np.allclose(milvus.vectors(some), hnsw.vectors(some), atol=1e-5)


def test_a_collection_is_trusted_only_in_the_catalog_state_it_was_saved_from(milvus_uri):
    name = collection_name("cat", "hist")
    index = MilvusIndex(milvus_uri, name, 4, "l2", "1")
    saved = CatalogStamp(generation=3, count=2, max_id=8)
    with pytest.raises(IndexUnusable, match="missing"):
        MilvusIndex.load(milvus_uri, name, 4, "l2", "1", saved)
    index.rebuild(np.array([7, 8]), np.eye(2, 4, dtype=np.float32))
    with pytest.raises(IndexUnusable, match="not the catalog's 3 up to 9"):
        index.save(CatalogStamp(generation=3, count=3, max_id=9))  # never recorded as a state it does not hold
    index.save(saved)
    assert len(MilvusIndex.load(milvus_uri, name, 4, "l2", "1", saved)) == 2
    with pytest.raises(IndexUnusable, match="another state of the catalog"):
        MilvusIndex.load(milvus_uri, name, 4, "l2", "1", CatalogStamp(generation=4, count=2, max_id=8))
    with pytest.raises(IndexUnusable, match="version"):
        MilvusIndex.load(milvus_uri, name, 4, "l2", "2", saved)


def test_vectors_uri_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_vectors("milvus:./m.db") == f"milvus:{tmp_path / 'm.db'}"
    assert parse_vectors("milvus:http://milvus:19530") == "milvus:http://milvus:19530"
    monkeypatch.setenv("SEARCHER_VECTORS", "milvus:m2.db")
    assert parse_vectors(None) == f"milvus:{tmp_path / 'm2.db'}"
    assert parse_vectors("hnsw") == "hnsw"
    for bad in ("faiss", "milvus:"):
        with pytest.raises(UsageError):
            parse_vectors(bad)
    assert collection_name("ab-12", "ae") == "searcher_ab_12_ae"
