"""python -m bench [--quick] [--skip-accuracy] [--skip-speed] [--skip-scale] [--report-only]

Writes bench/results/ (results.md, results.json, *.png); --quick writes bench/work/results-quick/
instead (a smaller run, to check the harness). Sections skipped keep their previous results.
"""

from __future__ import annotations

import argparse
import time

from bench import common
from bench.common import RESULTS, WORK, log, read_json, write_json


def _ae_version() -> str:
    try:
        from searcher.features import build_extractor

        return build_extractor("ae").version
    except Exception as e:
        return f"unavailable ({type(e).__name__})"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    parser.add_argument(
        "--quick", action="store_true", help="small run to check the harness (results in bench/work/results-quick)"
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--reuse-rankings", action="store_true", help="score the accuracy rankings saved by the last run")
    parser.add_argument("--report-only", action="store_true", help="only rewrite results.md and plots from results.json")
    args = parser.parse_args()

    out_dir = WORK / "results-quick" if args.quick else RESULTS
    path = out_dir / "results.json"
    results = read_json(path) if path.exists() else {}
    if not args.report_only:
        from bench import accuracy, dataset, peers, scale, speed

        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        results["run"] = {
            "command": "python -m bench" + (" --quick" if args.quick else ""),
            "started": started,
            "machine": common.machine_info(),
            "ae": common.ae_status(),
            "ae_version": _ae_version(),
            "signatures": list(common.available_signatures()),
            "peers": peers.peer_status(),
            "dataset_version": dataset.DATASET_VERSION,
            "speed_set_version": dataset.SPEED_VERSION,
            "scale_version": scale.SCALE_VERSION,
            "seed": common.SEED,
        }
        sets = dataset.speed_sets()
        if not args.skip_speed:
            log("speed: ingest, decoding, pHash")
            signatures = common.available_signatures()
            results["speed"] = speed.measure_ingest(sets, signatures, quick=args.quick)
            results["speed"]["measured_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
            if "ae" in signatures:  # the cost of the autoencoder: the same run without it
                log("speed: ingest without ae")
                results["speed_without_ae"] = speed.measure_ingest(
                    {"s640": sets["s640"]}, tuple(s for s in signatures if s != "ae"), quick=True
                )
            write_json(path, results)
        if not args.skip_accuracy:
            log("accuracy")
            results["accuracy"] = accuracy.run(quick=args.quick, reuse_rankings=args.reuse_rankings)
            results["accuracy"]["measured_at"] = (
                time.strftime("%Y-%m-%d %H:%M %Z")
                if not args.reuse_rankings
                else results["accuracy"].get("measured_at", "rankings of an earlier run")
            )
            location = accuracy.catalog_location(common.available_signatures())
            queries, _ = scale.latency_queries()
            log("query latency on the accuracy catalog")
            lat = speed.measure_queries(location.directory, queries[::4] if args.quick else queries[::2], quick=args.quick)
            lat.pop("hits")
            n = len(dataset.accuracy_set().originals) + len(dataset.accuracy_set().distractors)
            results["query_small"] = {"n": n, "latency": lat, "disk": speed.disk_usage(location.directory, n)}
            write_json(path, results)
        if not args.skip_scale:
            log("scale")
            results["scale"] = scale.run(quick=args.quick)
            results["scale"]["measured_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
            write_json(path, results)
        results["run"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        write_json(path, results)
    from bench import report

    report.write(results, out_dir)
    log(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
