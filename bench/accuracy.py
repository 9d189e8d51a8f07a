"""Accuracy: every transformed copy (and every natural near duplicate) queries a catalog of the
originals + distractors; we score each ranking of the catalog.

Protocol. The queries are the copies of every COPIES_EVERY-th original (2 by default: 37 per
family, 999 copies, to fit the run in the time the shared 2-core machine gives it; set
BENCH_COPIES_EVERY=1 for all 74) and the 91 natural queries. The catalog holds the 74 originals and 408 distractors (vtest.avi even frames, the "b"
image of each natural pair). A copy's single relevant item is its original, so AP = 1/rank of the
original; a video frame's relevant items are its two neighbouring frames. Every ranking is cut at
K = 10 (the CLI's default --top): mAP is mAP@10 (AP = 0 when nothing relevant is in the top 10),
recall@k = share of queries with a relevant item in the top k. "overall" is the mean over the 27
synthetic families (equal weight: one copy per original per family); natural sets are separate rows.

Rankings:
  searcher, through the library (Catalog.query_result, --top 10 unless said):
    fused+orb    the default: fused shortlist re-ranked by ORB/RANSAC (asked with top=15, which keeps
                 the default re-rank depth of 30, then cut at 10)
    fused        the same query with the ORB verification switched off (query_result(verify=False):
                 no candidate is verified and the fused order stands)
    hist:<m>     --metric hist --hist-method m, for the four compareHist methods
    mse, ae      --metric mse / ae
    orb          --metric orb (the 90 best fused candidates verified, ranked by RANSAC inliers). Two
                 RANSAC fits per candidate make it seconds per query on this machine, so it is
                 scored on a subset: the copies of every ORB_EVERY-th original and every 4th
                 natural query (n is given per row)
  searcher vectors, brute force: the same query signatures (with their flip/rotation variants)
    against every stored vector of hist (Bhattacharyya), mse and ae, no HNSW and no shortlist.
  peers: imagehash / imagededup hashes, brute-force Hamming scan (bench/peers.py), equal distances
    in a fixed random order.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, SEED, WORK, available_signatures, log
from bench.dataset import FAMILIES, accuracy_set

K = 10
COPIES_EVERY = int(os.environ.get("BENCH_COPIES_EVERY", "2"))  # copies of every 2nd original are queries (37 per family)
ORB_EVERY = 12  # --metric orb alone is scored on the copies of every 12th original (see above)
HIST_METHODS = ("correl", "chisqr", "intersect", "bhattacharyya")
TRAINING_PHOTOS = REPO / "sample_data" / "photos"  # the autoencoder was trained on these


def catalog_location(signatures: tuple[str, ...]):
    from searcher.catalog import CatalogLocation

    return CatalogLocation(WORK / "catalogs" / f"accuracy-{'-'.join(signatures)}")


def build_catalog(signatures: tuple[str, ...], workers: int = 2):
    from searcher.api import ingest
    from searcher.ingest import IngestOptions

    data = accuracy_set()
    location = catalog_location(signatures)
    summary = ingest([str(p) for p in data.catalog_roots], location, IngestOptions(workers=workers, signatures=signatures))
    log(f"accuracy catalog {location.directory.name}: {summary.counts()}")
    if summary.failed:
        raise RuntimeError(f"ingest failures: {summary.failures[:3]}")
    return location


# ---------------------------------------------------------------- searcher rankings (worker processes)

_W: dict = {}


def _memoise_decoding(searcher) -> None:
    """One decode and one signature extraction per query file, however many rankings ask for it."""
    import searcher.images as images

    original_load = images.load_image
    last_image: dict = {}

    def load_image(path, max_megapixels=images.DEFAULT_MAX_MEGAPIXELS):
        if last_image.get("path") != path:
            last_image.clear()
            last_image.update(path=path, image=original_load(path, max_megapixels))
        return last_image["image"]

    images.load_image = load_image
    for extractor in searcher.extractors.values():
        original = extractor.query_signatures
        memo: dict = {}

        def query_signatures(image, _original=original, _memo=memo):
            if _memo.get("id") is not image:
                _memo.clear()
                _memo.update(id=image, value=_original(image))
            return _memo["value"]

        extractor.query_signatures = query_signatures


def _init_worker(location_dir: str) -> None:
    import cv2

    cv2.setNumThreads(1)
    os.environ["SEARCHER_TORCH_THREADS"] = "1"
    from searcher import Catalog

    searcher = Catalog.open(Path(location_dir), create=False)
    _memoise_decoding(searcher)
    _W.update(searcher=searcher)
    # brute force: every stored vector of each indexed signature
    brute = {}
    for name, index in searcher.indexes.items():
        ids = index.ids()
        brute[name] = (np.array(ids), index.vectors(ids))
    _W["brute"] = brute
    _W["paths"] = searcher.store.paths()


def _brute_rank(name: str, image) -> list[str]:
    searcher = _W["searcher"]
    ids, vectors = _W["brute"][name]
    extractor = searcher.extractors[name]
    variants = extractor.query_signatures(image.bgr)
    queries = np.stack([extractor.embedding(v) for v in variants]).astype(np.float32)
    if name == "hist":
        queries = queries[:1]  # the library compares histograms with the unflipped query only
    if extractor.space == "cosine":
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        distance = -(vectors @ queries.T).max(axis=1)
    else:
        distance = ((vectors[:, None, :] - queries[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    tiebreak = np.random.default_rng(SEED).random(len(ids))
    order = np.lexsort((tiebreak, distance))[:K]
    return [_W["paths"][int(ids[i])] for i in order]


def _rank_query(path: str, with_orb: bool) -> dict[str, list[str]]:
    import searcher.images as images

    searcher = _W["searcher"]
    out: dict[str, list[str]] = {}
    top = lambda result: [h.path for h in result.hits][:K]  # noqa: E731
    out["searcher fused+orb"] = top(searcher.query_result(path, top=15, metric="fused"))
    out["searcher fused"] = top(searcher.query_result(path, top=K, metric="fused", verify=False))
    for method in HIST_METHODS:
        out[f"hist:{method}"] = top(searcher.query_result(path, top=K, metric="hist", hist_method=method))
    for metric in ("mse", "ae", "orb"):
        if metric in searcher.metrics and (metric != "orb" or with_orb):
            out[metric] = top(searcher.query_result(path, top=K, metric=metric))
    image = images.load_image(path)
    for name in _W["brute"]:
        out[f"{name} brute-force"] = _brute_rank(name, image)
    return out


def _rank_chunk(items: list[tuple[str, bool]]) -> list[dict[str, list[str]]]:
    return [_rank_query(p, with_orb) for p, with_orb in items]


def searcher_rankings(location, query_paths: list[str], orb_flags: list[bool], workers: int = 2) -> list[dict[str, list[str]]]:
    items = list(zip(query_paths, orb_flags))
    chunks = [items[i : i + 10] for i in range(0, len(items), 10)]
    context = multiprocessing.get_context("spawn")
    results: list = []
    with context.Pool(workers, initializer=_init_worker, initargs=(str(location.directory),)) as pool:
        for n, chunk_result in enumerate(pool.imap(_rank_chunk, chunks), 1):
            results.extend(chunk_result)
            if n % 20 == 0:
                log(f"  searcher rankings: {len(results)}/{len(query_paths)}")
    return results


# ---------------------------------------------------------------- peers


def _hash_chunk(paths: list[str]):
    from bench.peers import hash_files, hashers

    return hash_files(paths, hashers())


def _hash_all(paths: list[str], workers: int) -> dict[str, np.ndarray]:
    chunks = [paths[i : i + 50] for i in range(0, len(paths), 50)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_hash_chunk, chunks)
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def peer_rankings(catalog_paths: list[str], query_paths: list[str], workers: int = 2) -> list[dict[str, list[str]]]:
    from bench.peers import hamming_rank

    catalog_bits = _hash_all(catalog_paths, workers)
    query_bits = _hash_all(query_paths, workers)
    tiebreak = np.random.default_rng(SEED).random(len(catalog_paths))
    out = [dict() for _ in query_paths]
    for name in catalog_bits:
        for q in range(len(query_paths)):
            order = hamming_rank(query_bits[name][q], catalog_bits[name], tiebreak)[:K]
            out[q][name] = [catalog_paths[i] for i in order]
    return out


# ---------------------------------------------------------------- metrics


def average_precision(ranking: list[str], relevant: set[str], k: int = K) -> float:
    hits, total = 0, 0.0
    for rank, path in enumerate(ranking[:k], 1):
        if path in relevant:
            hits += 1
            total += hits / rank
    return total / min(len(relevant), k) if relevant else 0.0


def success_at(ranking: list[str], relevant: set[str], k: int) -> float:
    return float(any(p in relevant for p in ranking[:k]))


def score(queries: list[dict], rankings: list[dict[str, list[str]]]) -> dict:
    """{method: {family: {"mAP", "R@1", "R@10", "n"}}} with 'overall' (synthetic) and 'held-out' rows."""
    methods = list(dict.fromkeys(m for r in rankings for m in r))
    held_out = {str(p) for p in _held_out_originals()}
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(q["family"], []).append(i)
        if q["family"] in FAMILIES:
            groups.setdefault("overall", []).append(i)
            if q["original"] in held_out:
                groups.setdefault("overall, held-out originals", []).append(i)
    table: dict = {}
    for method in methods:
        table[method] = {}
        for family, members in groups.items():
            members = [i for i in members if method in rankings[i]]
            if not members:
                continue
            ap = [average_precision(rankings[i][method], queries[i]["relevant"]) for i in members]
            r1 = [success_at(rankings[i][method], queries[i]["relevant"], 1) for i in members]
            r10 = [success_at(rankings[i][method], queries[i]["relevant"], 10) for i in members]
            table[method][family] = {
                "mAP": float(np.mean(ap)),
                "R@1": float(np.mean(r1)),
                "R@10": float(np.mean(r10)),
                "n": len(members),
            }
    return table


def _held_out_originals() -> list[Path]:
    trained = {p.stem for p in TRAINING_PHOTOS.glob("*")}
    return [p for p in accuracy_set().originals if p.stem not in trained]


def run(quick: bool = False, workers: int = 2, reuse_rankings: bool = False) -> dict:
    """Rankings of every query by every method, scored. reuse_rankings: score the rankings saved by
    the last run (bench/work/rankings.pkl) instead of computing them again."""
    import pickle

    data = accuracy_set()
    signatures = available_signatures()
    saved = WORK / ("rankings-quick.pkl" if quick else "rankings.pkl")
    if reuse_rankings and saved.exists():
        queries, rankings = pickle.loads(saved.read_bytes())
        return _result(queries, rankings, signatures, len(data.originals) + len(data.distractors))
    location = build_catalog(signatures, workers)
    queries = [
        {"path": str(c["path"]), "family": c["family"], "original": str(c["original"]), "relevant": {str(c["original"])}}
        for c in data.copies
    ]
    queries += [
        {"path": str(n["path"]), "family": n["family"], "original": "", "relevant": {str(r) for r in n["relevant"]}}
        for n in data.natural
    ]
    natural = [q for q in queries if not q["original"]]
    keep = {str(p) for p in data.originals[::COPIES_EVERY]}
    queries = [q for q in queries if q["original"] in keep] + natural
    if quick:  # the copies of every 37th original, every 10th natural query
        keep = {str(p) for p in data.originals[::37]}
        queries = [q for q in queries if q["original"] in keep] + natural[::10]
    orb_originals = {str(p) for p in data.originals[:: 74 if quick else ORB_EVERY]}
    orb_natural = {q["path"] for q in natural[::4]}
    orb_flags = [q["original"] in orb_originals or q["path"] in orb_natural for q in queries]
    query_paths = [q["path"] for q in queries]
    catalog_paths = [str(p) for p in sorted(data.originals + data.distractors)]
    log(f"accuracy: {len(queries)} queries against {len(catalog_paths)} catalog images, signatures {signatures}")
    clock = time.perf_counter()
    ours = searcher_rankings(location, query_paths, orb_flags, workers)
    log(f"  searcher rankings done in {time.perf_counter() - clock:.0f} s")
    clock = time.perf_counter()
    theirs = peer_rankings(catalog_paths, query_paths, workers)
    log(f"  peer rankings done in {time.perf_counter() - clock:.0f} s")
    rankings = [{**a, **b} for a, b in zip(ours, theirs)]
    saved.write_bytes(pickle.dumps((queries, rankings)))
    return _result(queries, rankings, signatures, len(catalog_paths))


def _result(queries, rankings, signatures, n_catalog) -> dict:
    table = score(queries, rankings)
    return {
        "protocol": __doc__.strip().split("\n\n")[1],
        "rankings": __doc__.strip().split("\n\n")[2],
        "k": K,
        "signatures": list(signatures),
        "n_queries": len(queries),
        "n_catalog": n_catalog,
        "families": list(FAMILIES) + ["pairs", "video"],
        "table": table,
    }
