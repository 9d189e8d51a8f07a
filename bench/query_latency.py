"""Single-query latency of an existing catalog, in process, per stage.

    python -m bench.query_latency CATALOG QUERY_DIR [REPEATS] [--without SIGNATURE,...] [--extract-only] [--repo DIR]

Every image under QUERY_DIR is queried REPEATS times (default 3, after one warm-up query) with the
default fused ranking and --top 10; prints p50/p95 over all queries and the median of each stage
(extract, search, catalog, rerank) from QueryResult.timings. `--without cnn` queries the catalog as
if it had no cnn signature (its extractor and index are set aside after opening; the calibrated
model without cnn scores), the way to time a catalog ingested without it on the same images.
`--extract-only` times the query's signature extraction alone (`searcher.query._query_signatures`
on the decoded images). `--repo DIR` imports searcher from that checkout (bench/query_ab.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="single-query latency of a catalog, per stage")
    parser.add_argument("catalog", type=Path)
    parser.add_argument("queries")
    parser.add_argument("repeats", type=int, nargs="?", default=3)
    parser.add_argument("--without", default="", help="signatures to set aside, comma-separated")
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--repo", help="checkout to import searcher from")
    args = parser.parse_args()
    if args.repo:
        sys.path.insert(0, str(Path(args.repo).resolve()))
    import searcher
    from searcher import images, query
    from searcher.images import expand_image_args

    paths = expand_image_args([args.queries])
    times, stages = [], {}
    with searcher.Catalog.open(args.catalog.resolve(), create=False) as cat:
        for name in filter(None, args.without.split(",")):
            cat.indexes.pop(name, None)
            cat.extractors.pop(name, None)
        if args.extract_only:
            decoded = [images.load_image(p).bgr for p in paths]
            query._query_signatures(cat, decoded[0])
            for _ in range(args.repeats):
                for bgr in decoded:
                    start = time.perf_counter()
                    query._query_signatures(cat, bgr)
                    times.append(time.perf_counter() - start)
        else:
            cat.query_result(paths[0])
            for _ in range(args.repeats):
                for path in paths:
                    start = time.perf_counter()
                    result = cat.query_result(path, top=10)
                    times.append(time.perf_counter() - start)
                    for stage, seconds in result.timings.items():
                        stages.setdefault(stage, []).append(seconds)
    times.sort()
    print(
        f"queries={len(times)} p50={statistics.median(times) * 1000:.1f} ms p95={times[int(0.95 * (len(times) - 1))] * 1000:.1f} ms"
    )
    if stages:
        print("stage medians (ms): " + ", ".join(f"{k} {statistics.median(v) * 1000:.1f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
