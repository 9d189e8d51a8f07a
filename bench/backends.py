"""python -m bench.backends [--files N] [--vectors N] [--queries N] [--pg-url URL] [--startup] [--skip-...]

Scale-out backends against the embedded defaults, on this machine:
  extraction   ingest throughput of the same files with the local process pool (1 and 2 workers)
               and with Ray (a local Ray of 1 and 2 CPUs, started before the clock; its start time
               is reported apart, as the CLI pays it once per ingest);
  vectors      one VectorIndex of N vectors (the ae signature's 128-d cosine space) in hnswlib and
               in Milvus Lite: build time, reopen time (hnswlib: load the file; Milvus: release and
               load the collection, what a new process does), search p50/p95 (k = 100, the query
               shortlist) and the p50 of fetching 100 stored vectors (the re-scoring step);
  startup      import / local-cluster start / first tasks / stop of Ray, and of Dask distributed
               (--dask-python: an interpreter that has it; it is not a dependency of searcher);
  end to end   `searcher query` p50 over sample_data/copies on SQLite + hnswlib and on PostgreSQL
               (--pg-url, an empty database) + Milvus Lite, same catalog content, in one process.
The files are crops/resizes of sample_data photos written to bench/work/backends/ (fixed seed).
Writes bench/results/backends.json; the figures go into bench/README.md by hand, with the load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, SEED, WORK, load1, log, machine_info, percentile, read_json, write_json

SIGNATURE_SHAPES = {"ae": (128, "cosine")}


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
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
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


def _timed_searches(index, n: int, queries: np.ndarray) -> dict:
    rng = np.random.default_rng(SEED + 1)
    search, fetch = [], []
    for q in queries:
        start = time.perf_counter()
        index.search(q, 100)
        search.append(time.perf_counter() - start)
        ids = [int(i) for i in rng.choice(np.arange(1, n + 1), size=100, replace=False)]
        start = time.perf_counter()
        index.vectors(ids)
        fetch.append(time.perf_counter() - start)
    return dict(
        search_p50_ms=1000 * percentile(search, 50),
        search_p95_ms=1000 * percentile(search, 95),
        fetch100_p50_ms=1000 * percentile(fetch, 50),
    )


def bench_vectors(n: int, n_queries: int) -> list[dict]:
    from searcher.catalog.milvus import MilvusIndex, close_clients, collection_name
    from searcher.catalog.vectors import HnswIndex

    dim, space = SIGNATURE_SHAPES["ae"]
    rng = np.random.default_rng(SEED)
    data = rng.normal(size=(n, dim)).astype(np.float32)
    ids = np.arange(1, n + 1, dtype=np.int64)
    queries = data[rng.choice(n, n_queries, replace=False)] + 0.05 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as tmp:
        load = load1()
        start = time.perf_counter()
        index = HnswIndex(Path(tmp) / "ae.bin", dim, space, "bench")
        for s in range(0, n, 10_000):
            index.add(ids[s : s + 10_000], data[s : s + 10_000])
        index.save(1)
        build = time.perf_counter() - start
        start = time.perf_counter()
        index = HnswIndex.load(Path(tmp) / "ae.bin", dim, space, "bench", 1)
        reopen = time.perf_counter() - start
        rows.append(
            dict(backend="hnswlib", vectors=n, build_s=build, reopen_s=reopen, load1=load, **_timed_searches(index, n, queries))
        )
        log(f"hnswlib: {rows[-1]}")

        load = load1()
        uri, name = str(Path(tmp) / "milvus.db"), collection_name("bench", "ae")
        start = time.perf_counter()
        index = MilvusIndex(uri, name, dim, space, "bench")
        index.rebuild(ids, data)
        index.save(1)
        build = time.perf_counter() - start
        index.client.release_collection(name)
        start = time.perf_counter()
        index = MilvusIndex.load(uri, name, dim, space, "bench", 1)  # loads the collection, as a new process does
        reopen = time.perf_counter() - start
        rows.append(
            dict(
                backend="milvus-lite", vectors=n, build_s=build, reopen_s=reopen, load1=load, **_timed_searches(index, n, queries)
            )
        )
        log(f"milvus-lite: {rows[-1]}")
        close_clients()
    return rows


def bench_end_to_end(pg_url: str) -> list[dict]:
    """Query p50 over sample_data/copies, embedded vs PostgreSQL + Milvus Lite (same files ingested)."""
    import searcher
    from searcher.ingest import IngestOptions

    queries = sorted((REPO / "sample_data" / "copies").iterdir())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        os.environ["SEARCHER_CACHE"] = str(Path(tmp) / "cache")
        for name, location, vectors in (
            ("sqlite + hnswlib", Path(tmp) / "folder", "hnsw"),
            ("postgresql + milvus-lite", pg_url, f"milvus:{Path(tmp) / 'm.db'}"),
        ):
            with searcher.Catalog.open(location, vectors=vectors) as catalog:
                catalog.ingest([REPO / "sample_data"], IngestOptions(workers=2))
                catalog.query(queries[0])  # indexes loaded once, as a server would
                load, seconds = load1(), []
                for _ in range(3):
                    for q in queries:
                        start = time.perf_counter()
                        catalog.query(q, top=10)
                        seconds.append(time.perf_counter() - start)
            rows.append(
                dict(
                    backend=name,
                    queries=len(seconds),
                    p50_ms=1000 * percentile(seconds, 50),
                    p95_ms=1000 * percentile(seconds, 95),
                    load1=load,
                )
            )
            log(f"{name}: {rows[-1]}")
    return rows


STARTUP_SCRIPTS = {
    "ray": """
import time
t = time.perf_counter(); import ray; imported = time.perf_counter() - t
t = time.perf_counter(); ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=40); started = time.perf_counter() - t
f = ray.remote(lambda x: 2 * x)
t = time.perf_counter(); ray.get([f.remote(i) for i in range(4)]); tasks = time.perf_counter() - t
t = time.perf_counter(); ray.shutdown(); stopped = time.perf_counter() - t
print(imported, started, tasks, stopped)
""",
    "dask": """
import time
if __name__ == "__main__":
    t = time.perf_counter(); import distributed; imported = time.perf_counter() - t
    t = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = distributed.Client(cluster); started = time.perf_counter() - t
    t = time.perf_counter(); client.gather(client.map(lambda x: 2 * x, range(4))); tasks = time.perf_counter() - t
    t = time.perf_counter(); client.close(); cluster.close(); stopped = time.perf_counter() - t
    print(imported, started, tasks, stopped)
""",
}


def bench_startup(python_for: dict[str, str]) -> list[dict]:
    """Import, start a 2-worker local cluster, run 4 trivial tasks, stop: Ray, and Dask distributed
    when an interpreter that has it is given (--dask-python; it is not a searcher dependency)."""
    import subprocess

    rows = []
    for name, python in python_for.items():
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
            script.write(STARTUP_SCRIPTS[name])
        load = load1()
        done = subprocess.run([python, script.name], capture_output=True, text=True, timeout=300)
        os.unlink(script.name)
        if done.returncode != 0:
            log(f"{name} startup failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        imported, started, tasks, stopped = map(float, done.stdout.split()[-4:])
        rows.append(dict(engine=name, import_s=imported, start_s=started, first_tasks_s=tasks, stop_s=stopped, load1=load))
        log(f"{name}: {rows[-1]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.splitlines()[2])
    parser.add_argument("--files", type=int, default=192, help="files for the extraction throughput")
    parser.add_argument("--vectors", type=int, default=100_000, help="vectors per index for the query latency")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--pg-url", help="an empty PostgreSQL database for the end-to-end query latency")
    parser.add_argument("--startup", action="store_true", help="also time Ray's start (and Dask's, with --dask-python)")
    parser.add_argument("--dask-python", help="a Python interpreter with dask distributed installed")
    parser.add_argument("--skip-extraction", action="store_true")
    parser.add_argument("--skip-vectors", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    # Sections skipped keep the figures of their last run.
    results = read_json(RESULTS / "backends.json") if (RESULTS / "backends.json").exists() else {}
    results.update(machine=machine_info(), started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    if not args.skip_extraction:
        results["extraction"] = bench_extraction(args.files)
    if not args.skip_vectors:
        results["vectors"] = bench_vectors(args.vectors, args.queries)
    if args.pg_url:
        results["end_to_end"] = bench_end_to_end(args.pg_url)
    if args.startup:
        engines = {"ray": sys.executable, **({"dask": args.dask_python} if args.dask_python else {})}
        results["startup"] = bench_startup(engines)
    write_json(RESULTS / "backends.json", results)
    log(f"wrote {RESULTS / 'backends.json'}")


if __name__ == "__main__":
    main()
