"""Single-query latency of an existing catalog, in process, per stage.

    python -m bench.query_latency CATALOG QUERY_DIR [REPEATS] [--without SIGNATURE,...]

Every image under QUERY_DIR is queried REPEATS times (default 3, after one warm-up query) with the
default fused ranking and --top 10; prints p50/p95 over all queries and the median of each stage
(extract, search, catalog, rerank) from QueryResult.timings. `--without cnn` queries the catalog as
if it had no cnn signature (its extractor and index are set aside after opening; the calibrated
model without cnn scores), the way to time a catalog ingested without it on the same images.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import searcher
from searcher.images import expand_image_args


def main() -> None:
    args = sys.argv[1:]
    without: list[str] = []
    if "--without" in args:
        at = args.index("--without")
        without = args[at + 1].split(",")
        del args[at : at + 2]
    catalog, folder = Path(args[0]), args[1]
    repeats = int(args[2]) if len(args) > 2 else 3
    queries = expand_image_args([folder])
    with searcher.Catalog.open(catalog.resolve(), create=False) as cat:
        for name in without:
            cat.indexes.pop(name, None)
            cat.extractors.pop(name, None)
        cat.query_result(queries[0])
        times, stages = [], {}
        for _ in range(repeats):
            for query in queries:
                start = time.perf_counter()
                result = cat.query_result(query, top=10)
                times.append(time.perf_counter() - start)
                for stage, seconds in result.timings.items():
                    stages.setdefault(stage, []).append(seconds)
    times.sort()
    print(
        f"queries={len(times)} p50={statistics.median(times) * 1000:.1f} ms p95={times[int(0.95 * (len(times) - 1))] * 1000:.1f} ms"
    )
    print("stage medians (ms): " + ", ".join(f"{k} {statistics.median(v) * 1000:.1f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
