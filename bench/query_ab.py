"""Query cost of two checkouts on one catalog, run alternately so that both see the same machine.

    python -m bench.query_ab CATALOG QUERY_DIR BEFORE_REPO AFTER_REPO [--repeats 2] [--passes 2] [--extract-only]

Each pass runs bench/query_latency.py once per checkout (BEFORE first), in its own process, with
searcher imported from that checkout (`--repo`). This machine's speed drifts by up to 30% within an
hour: only figures taken in the same minutes compare.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description="query cost of two checkouts, alternately")
    parser.add_argument("catalog")
    parser.add_argument("queries")
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--extract-only", action="store_true")
    args = parser.parse_args()
    for n in range(args.passes):
        for label, repo in (("before", args.before), ("after", args.after)):
            command = [sys.executable, "-m", "bench.query_latency", args.catalog, args.queries, str(args.repeats), "--repo", repo]
            out = subprocess.run(
                command + (["--extract-only"] if args.extract_only else []), capture_output=True, text=True, check=True
            )
            print(f"pass {n + 1} {label:6s} " + " | ".join(out.stdout.strip().splitlines()), flush=True)


if __name__ == "__main__":
    main()
