"""HNSW indexes: recall against brute force, updates, deletions, persistence and self-repair."""

import numpy as np
import pytest

from searcher.catalog.vectors import CatalogStamp, HnswIndex, IndexUnusable, build, check_hnsw_file


def clustered_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    return (centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_recall_at_10_against_brute_force(tmp_path, space):
    data = clustered_vectors(3000, 64)
    queries = clustered_vectors(100, 64, seed=1)
    index = HnswIndex(tmp_path / "i.bin", 64, space, "1")
    index.add(np.arange(len(data)), data)
    if space == "cosine":
        unit = data / np.linalg.norm(data, axis=1, keepdims=True)
        distances = -(queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    else:
        distances = ((queries[:, None, :] - data[None, :, :]) ** 2).sum(axis=2)
    truth = np.argsort(distances, axis=1)[:, :10]
    found = [index.search(q, 10)[0] for q in queries]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.95


def test_update_remove_and_reuse_of_labels(tmp_path):
    index = HnswIndex(tmp_path / "i.bin", 4, "l2", "1")
    index.add(np.array([1, 2, 3]), np.eye(4, dtype=np.float32)[:3])
    index.add(np.array([2]), np.array([[0, 0, 0, 1]], np.float32))  # new vector for label 2
    assert index.search(np.array([0, 0, 0, 1.0]), 1)[0].tolist() == [2]
    index.remove([2])
    assert 2 not in index and len(index) == 2
    assert 2 not in index.search(np.array([0, 0, 0, 1.0]), 3)[0].tolist()
    index.add(np.array([2]), np.array([[0, 0, 1, 0]], np.float32))  # label comes back
    assert index.search(np.array([0, 0, 1, 0.0]), 1)[0].tolist() == [2]
    assert len(index) == 3


def test_grows_past_its_initial_capacity(tmp_path):
    index = HnswIndex(tmp_path / "i.bin", 8, "l2", "1")
    data = clustered_vectors(5000, 8)
    for start in range(0, 5000, 700):
        index.add(np.arange(start, min(start + 700, 5000)), data[start : start + 700])
    assert len(index) == 5000


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "i.bin"
    index = HnswIndex(path, 8, "l2", "1")
    data = clustered_vectors(200, 8)
    index.add(np.arange(200), data)
    index.remove([5, 6])
    index.save(CatalogStamp(7, 198, 199))
    loaded = HnswIndex.load(path, 8, "l2", "1", CatalogStamp(7, 198, 199))
    assert len(loaded) == 198 and 5 not in loaded
    assert loaded.search(data[10], 1)[0].tolist() == [10]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.unlink(), "missing"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "file size"),
        (lambda p: p.with_suffix(".json").write_text("{not json"), "unreadable sidecar"),
        (lambda p: p.with_suffix(".json").write_text("[1, 2]"), "not an object"),
        (lambda p: p.write_bytes(p.read_bytes()[:300] + b"\xff" * 64 + p.read_bytes()[364:]), "checksum"),
    ],
)
def test_damaged_index_is_reported_unusable(tmp_path, damage, reason):
    path = tmp_path / "i.bin"
    index = HnswIndex(path, 8, "l2", "1")
    index.add(np.arange(50), clustered_vectors(50, 8))
    index.save(CatalogStamp(1, 50, 49))
    damage(path)
    with pytest.raises(IndexUnusable, match=reason):
        HnswIndex.load(path, 8, "l2", "1", CatalogStamp(1, 50, 49))


def test_index_behind_the_catalog_or_of_another_version_is_unusable(tmp_path):
    path = tmp_path / "i.bin"
    index = HnswIndex(path, 8, "l2", "1")
    index.add(np.arange(10), clustered_vectors(10, 8))
    index.save(CatalogStamp(1, 10, 9))
    for other in (CatalogStamp(2, 10, 9), CatalogStamp(1, 11, 10), CatalogStamp(1, 10, 12)):
        with pytest.raises(IndexUnusable, match="another state of the catalog"):
            HnswIndex.load(path, 8, "l2", "1", other)
    with pytest.raises(IndexUnusable, match="version"):
        HnswIndex.load(path, 8, "l2", "2", CatalogStamp(1, 10, 9))


def test_an_index_that_does_not_hold_the_catalog_rows_is_never_saved_as_current(tmp_path):
    """Issue #14 D6: whoever saves an index states the catalog state it reflects, and is held to it."""
    index = HnswIndex(tmp_path / "i.bin", 8, "l2", "1")
    index.add(np.arange(10), clustered_vectors(10, 8))
    with pytest.raises(IndexUnusable, match="holds 10 vectors"):
        index.save(CatalogStamp(1, 12, 11))
    assert not (tmp_path / "i.bin").exists() and not (tmp_path / "i.json").exists()


def test_a_short_index_file_is_caught_before_it_is_recorded(tmp_path):
    """Issue #14 D17: hnswlib reports no error when a full disk cuts its file short."""
    path = tmp_path / "i.bin"
    index = HnswIndex(path, 8, "l2", "1")
    index.add(np.arange(300), clustered_vectors(300, 8))
    index.save(CatalogStamp(1, 300, 299))
    check_hnsw_file(path)
    for cut in (0, 50, path.stat().st_size // 2, path.stat().st_size - 1):
        short = tmp_path / f"short{cut}.bin"
        short.write_bytes(path.read_bytes()[:cut])
        with pytest.raises(IndexUnusable):
            check_hnsw_file(short)


def test_batched_search_agrees_with_one_query_at_a_time(tmp_path):
    data = clustered_vectors(2000, 32)
    index = build(tmp_path / "i.bin", 32, "l2", "1", [(np.arange(0, 1000), data[:1000]), (np.arange(1000, 2000), data[1000:])])
    assert len(index) == 2000 and index.ids() == list(range(2000))
    index.remove(range(0, 2000, 2))
    queries = clustered_vectors(50, 32, seed=3)
    labels, distances = index.search_many(queries, 10)
    for query, row, row_distances in zip(queries, labels, distances):
        one, one_distances = index.search(query, 10)
        assert list(row) == list(one) and np.allclose(row_distances, one_distances)
        assert all(label % 2 == 1 for label in row)  # removed vectors are never found


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_small_indexes_answer_exactly_whatever_the_insertion_order(tmp_path, space, monkeypatch):
    from searcher.catalog import vectors

    rng = np.random.default_rng(7)
    data = rng.random((800, 24)).astype(np.float32)
    data[5] = data[6]  # two labels with the same vector: the tie goes to the smaller label
    queries = np.vstack([rng.random((20, 24)).astype(np.float32), data[5:6]])
    labels = np.arange(100, 900)
    answers = []
    for order in (np.arange(800), rng.permutation(800)):
        index = HnswIndex(tmp_path / f"{space}-{order[0]}.bin", 24, space, "1")
        for chunk in np.array_split(order, 7):
            index.add(labels[chunk], data[chunk])
        answers.append(index.search_many(queries, 10))
    assert np.array_equal(answers[0][0], answers[1][0])
    if space == "l2":
        exact = labels[np.argsort(((data[None, :, :] - queries[:, None, :]) ** 2).sum(axis=2), axis=1, kind="stable")[:, :10]]
    else:
        unit = data / np.linalg.norm(data, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        exact = labels[np.argsort(1.0 - q @ unit.T, axis=1, kind="stable")[:, :10]]
    assert (answers[0][0] == exact).mean() > 0.99  # float rounding may swap near-equal distances
    assert list(answers[0][0][-1][:2]) == [105, 106]
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 0)  # above the limit: the HNSW graph answers
    assert (index.search_many(queries, 10)[0] == answers[1][0]).mean() > 0.9


def _saved_cosine_index(tmp_path, n: int = 300, dim: int = 16):
    path = tmp_path / "i.bin"
    index = HnswIndex(path, dim, "cosine", "1")
    index.add(np.arange(n), clustered_vectors(n, dim))
    index.save(CatalogStamp(1, n, n - 1))
    return path, HnswIndex.load(path, dim, "cosine", "1", CatalogStamp(1, n, n - 1))


def test_vectors_of_a_loaded_index_come_from_its_saved_copy_exactly_as_hnswlib_holds_them(tmp_path):
    path, loaded = _saved_cosine_index(tmp_path)
    wanted = [299, 3, 150, 3, *range(40, 60), 41]  # any order, repeats, runs of neighbours
    from_hnswlib = np.asarray(loaded._index.get_items(wanted), dtype=np.float32)

    class NoGetItems:  # the hnswlib index, except that reading vectors back from it fails the test
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def get_items(self, *args, **kwargs):
            raise AssertionError("read from hnswlib, not from the copy")

    loaded._index = NoGetItems(loaded._index)
    assert np.array_equal(loaded.vectors(wanted), from_hnswlib)  # bit for bit: scores do not depend on the source
    assert np.allclose(np.linalg.norm(loaded.vectors(wanted), axis=1), 1.0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.bin", "i.json", "i.labels.npy", "i.vectors.npy"]


def test_a_vector_replaced_or_added_after_loading_is_never_read_from_the_stale_copy(tmp_path):
    path, loaded = _saved_cosine_index(tmp_path)
    fresh = np.zeros((2, 16), np.float32)
    fresh[0, 0] = fresh[1, 1] = 3.0
    loaded.add(np.array([7, 300]), fresh)  # 7 replaced, 300 new
    assert np.allclose(loaded.vectors([7, 300, 8]), np.vstack([np.eye(16)[:2], loaded._index.get_items([8])]), atol=1e-6)
    loaded.save(CatalogStamp(2, 301, 300))
    again = HnswIndex.load(path, 16, "cosine", "1", CatalogStamp(2, 301, 300))
    assert np.allclose(again.vectors([7, 300]), np.eye(16)[:2], atol=1e-6)


def test_a_reader_of_the_saved_vectors_outlives_the_next_save_and_none_is_lent_once_a_vector_changed(tmp_path):
    path, loaded = _saved_cosine_index(tmp_path)
    truth = loaded.vectors(list(range(300)))
    reader = loaded.open_saved_vectors()
    rows, found = reader.rows(np.arange(300))
    assert found.all() and np.array_equal(reader.read(rows[::-1]), truth[::-1])
    loaded.add(np.array([7]), np.eye(16, dtype=np.float32)[3:4])
    assert loaded.open_saved_vectors() is None  # the copy is wrong for label 7 now
    loaded.save(CatalogStamp(2, 300, 299))  # closes the index's own reader, renames a new copy in
    assert np.array_equal(reader.read(rows), truth)  # this reader still reads the copy it opened
    reader.close()


@pytest.mark.parametrize("damaged", ["i.vectors.npy", "i.labels.npy"])
def test_a_damaged_vector_copy_is_not_used_and_the_next_save_writes_a_good_one(tmp_path, damaged):
    path, loaded = _saved_cosine_index(tmp_path)
    truth = loaded.vectors(list(range(300)))
    target = tmp_path / damaged
    data = bytearray(target.read_bytes())
    data[-40:-8] = b"\x7f" * 32  # same size, other values
    target.write_bytes(bytes(data))
    reopened = HnswIndex.load(path, 16, "cosine", "1", CatalogStamp(1, 300, 299))
    assert reopened._copy is None
    assert np.array_equal(reopened.vectors(list(range(300))), truth)
    reopened.save(CatalogStamp(1, 300, 299))
    healed = HnswIndex.load(path, 16, "cosine", "1", CatalogStamp(1, 300, 299))
    assert healed._copy is not None and np.array_equal(healed.vectors(list(range(300))), truth)
