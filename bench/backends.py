"""python -m bench.backends [--files N] [--vectors N] [--queries N] [--skip-extraction] [--skip-vectors]

Scale-out backends against the embedded defaults, on this machine:
  extraction   ingest throughput of the same files with the local process pool (1 and 2 workers)
               and with Ray (a local Ray of 1 and 2 CPUs, started before the clock; its start time
               is reported apart, as the CLI pays it once per ingest);
  vectors      one VectorIndex of N vectors (dims and spaces of the ae and mse signatures) in
               hnswlib and in Milvus Lite: build time, search p50/p95 (k = 100, the query shortlist)
               and the p50 of fetching 100 stored vectors (the re-scoring step of every query).
The files are crops/resizes of sample_data photos written to bench/work/backends/ (fixed seed).
Writes bench/results/backends.json; the figures go into bench/README.md by hand, with the load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, SEED, WORK, load1, log, machine_info, percentile, write_json

SIGNATURE_SHAPES = {"ae": (128, "cosine"), "mse": (256, "l2")}


def make_files(n: int) -> Path:
    """n JPEGs cut from the sample photos (random crop 50-100%, long side 320-1024 px)."""
    import cv2

    folder = WORK / "backends" / f"files-{n}"
    if folder.exists() and len(list(folder.glob("*.jpg"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    photos = [cv2.imread(str(p)) for p in sorted((REPO / "sample_data" / "photos").glob("*.jpg"))]
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1)), int(w * rng.uniform(0.5, 1))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y : y + ch, x : x + cw]
        scale = rng.uniform(320, 1024) / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    return folder


def _ingest_seconds(folder: Path, executor: str, workers: int) -> float:
    import searcher

    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        from searcher.ingest import IngestOptions

        with searcher.Catalog.open(Path(tmp) / "catalog") as catalog:
            start = time.perf_counter()
            summary = catalog.ingest([folder], IngestOptions(workers=workers, executor=executor))
            seconds = time.perf_counter() - start
    assert summary.failed == 0 and summary.added == len(list(folder.glob("*.jpg")))
    return seconds


def bench_extraction(n_files: int) -> list[dict]:
    import ray

    folder = make_files(n_files)
    rows = []
    for workers in (1, 2):
        load = load1()
        seconds = _ingest_seconds(folder, "local", workers)
        rows.append(
            dict(
                executor="local pool", workers=workers, files=n_files, seconds=seconds, files_per_s=n_files / seconds, load1=load
            )
        )
        log(f"local x{workers}: {n_files / seconds:.1f} files/s (load {load:.2f})")
    for cpus in (1, 2):
        start = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - start
        try:
            load = load1()
            seconds = _ingest_seconds(folder, "ray", cpus)
        finally:
            ray.shutdown()
        rows.append(
            dict(
                executor="ray (local)",
                workers=cpus,
                files=n_files,
                seconds=seconds,
                files_per_s=n_files / seconds,
                ray_start_s=started,
                load1=load,
            )
        )
        log(f"ray x{cpus}: {n_files / seconds:.1f} files/s, start {started:.1f} s (load {load:.2f})")
    return rows


def _vector_rows(index, name: str, n: int, queries: np.ndarray, build_s: float, load: float) -> dict:
    rng = np.random.default_rng(SEED + 1)
    search = []
    for q in queries:
        start = time.perf_counter()
        index.search(q, 100)
        search.append(time.perf_counter() - start)
    fetch = []
    for _ in range(len(queries)):
        ids = [int(i) for i in rng.choice(np.arange(1, n + 1), size=100, replace=False)]
        start = time.perf_counter()
        index.vectors(ids)
        fetch.append(time.perf_counter() - start)
    return dict(
        backend=name,
        vectors=n,
        build_s=build_s,
        search_p50_ms=1000 * percentile(search, 50),
        search_p95_ms=1000 * percentile(search, 95),
        fetch100_p50_ms=1000 * percentile(fetch, 50),
        load1=load,
    )


def bench_vectors(n: int, n_queries: int) -> list[dict]:
    from searcher.catalog.milvus import MilvusIndex, close_clients, collection_name
    from searcher.catalog.vectors import HnswIndex

    rows = []
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as tmp:
        for signature, (dim, space) in SIGNATURE_SHAPES.items():
            data = rng.normal(size=(n, dim)).astype(np.float32)
            ids = np.arange(1, n + 1, dtype=np.int64)
            queries = data[rng.choice(n, n_queries, replace=False)] + 0.05 * rng.normal(size=(n_queries, dim)).astype(np.float32)
            for name in ("hnswlib", "milvus-lite"):
                load = load1()
                start = time.perf_counter()
                if name == "hnswlib":
                    index = HnswIndex(Path(tmp) / f"{signature}.bin", dim, space, "bench")
                    for s in range(0, n, 10_000):
                        index.add(ids[s : s + 10_000], data[s : s + 10_000])
                else:
                    index = MilvusIndex(str(Path(tmp) / "milvus.db"), collection_name("bench", signature), dim, space, "bench")
                    index.rebuild(ids, data)
                    index.save(1)
                    index.search(queries[0], 100)  # the index is built on first load: part of the build
                build = time.perf_counter() - start
                row = _vector_rows(index, name, n, queries, build, load)
                row.update(signature=signature, dim=dim, space=space)
                rows.append(row)
                log(
                    f"{signature} {name}: build {build:.1f} s, search p50 {row['search_p50_ms']:.2f} ms, fetch p50 {row['fetch100_p50_ms']:.2f} ms"
                )
        close_clients()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.splitlines()[2])
    parser.add_argument("--files", type=int, default=192, help="files for the extraction throughput")
    parser.add_argument("--vectors", type=int, default=100_000, help="vectors per index for the query latency")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-extraction", action="store_true")
    parser.add_argument("--skip-vectors", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    results = {"machine": machine_info(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if not args.skip_extraction:
        results["extraction"] = bench_extraction(args.files)
    if not args.skip_vectors:
        results["vectors"] = bench_vectors(args.vectors, args.queries)
    write_json(RESULTS / "backends.json", results)
    log(f"wrote {RESULTS / 'backends.json'}")


if __name__ == "__main__":
    main()
