"""dups of one catalog in process, with what identifies its answer: wall time per stage, peak RSS
and a sha256 of every group's members and kept copy (equal digests: the same groups).

    python -m bench.dups_digest CATALOG [--repo DIR] [--workers 2] [--out FILE.json]

`--repo DIR` imports searcher from that checkout, so two checkouts can be compared on one catalog.
Peak RSS is this process's (the verification workers are other processes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="dups of one catalog: time, peak memory, digest of the groups")
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--repo", help="checkout to import searcher from")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.repo:
        sys.path.insert(0, str(Path(args.repo).resolve()))
    import searcher
    from searcher.dups import find_duplicates

    clock = time.perf_counter()
    with searcher.Catalog.open(args.catalog.resolve(), create=False) as catalog:
        result = find_duplicates(catalog, workers=args.workers)
    wall = time.perf_counter() - clock
    groups = sorted(sorted(m.path for m in g.members) for g in result.groups)
    kept = sorted(g.keep.path for g in result.groups)
    out = {
        "searcher": searcher.__file__,
        "wall_s": wall,
        "timings": result.timings,
        "groups": len(groups),
        "members": sum(map(len, groups)),
        "digest": hashlib.sha256(json.dumps([groups, kept]).encode()).hexdigest(),
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
