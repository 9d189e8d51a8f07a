"""Determinism (issue #15): the same files, ingested in another order or with another worker count,
must give the same `searcher dups` groups and the same `searcher query --top 10`.

    python -m bench.determinism        # writes results/determinism.{json,md}

The library (DETERMINISM_VERSION, under bench/work/): the 56 corpus photos, the 20 natural-pair
images, scikit-image's photos, every 8th frame of vtest.avi (about 100 near-identical street frames:
the hard case, big groups), and for every 2nd corpus photo 3 duplicates made by ImageMagick (half
size JPEG q70; greyscale; 80% crop + 4% border). Queries (not in the catalogs): one ImageMagick copy
(-resize 60% -rotate 4 -quality 60) of every 2nd corpus photo, and every 40th frame + 4 of the clip.

Runs, each a fresh catalog through the CLI only: order A = files under their own names (scan order
= sorted names), order B = the same bytes under shuffled names (a fixed-seed prefix) in 3 subfolders;
each with --workers 1 and 2, and order A with 2 workers twice. Every run is compared with the first
(A, 1 worker): groups as sets of files (by their canonical name), top-10 lists in order.

Candidate recall of the HNSW shortlist against brute force needs the index internals (no CLI path
gives a brute-force ranking): it is measured by the speed helper's scale bench, not here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import RESULTS, SEED, WORK, log, machine_info, write_json
from bench.realedits import _env, searcher_exe
from bench.realedits_data import CORPUS, _run, ffmpeg, imagemagick, skimage_photos

DETERMINISM_VERSION = 1
ROOT = WORK / f"determinism-v{DETERMINISM_VERSION}"
RUNS = (("A", 1), ("A", 2), ("B", 1), ("B", 2), ("A", 2))
THRESHOLDS = (0.5, 0.6)  # dups' default, and the one at which issue #15 saw the most splits
DUPLICATES = {
    "half_q70": ["-resize", "50%", "-quality", "70"],
    "grey": ["-colorspace", "Gray", "-quality", "90"],
    "crop_border": [
        "-gravity",
        "center",
        "-crop",
        "80%x80%+0+0",
        "+repage",
        "-bordercolor",
        "white",
        "-border",
        "4%x4%",
        "-quality",
        "90",
    ],
}


def make_library() -> tuple[Path, list[Path]]:
    """The canonical folder (names = identities) and the query files; cached."""
    base, queries_dir = ROOT / "library", ROOT / "queries"
    if (ROOT / "done").exists():
        return base, sorted(queries_dir.iterdir())
    convert, ff = imagemagick(), ffmpeg()
    shutil.rmtree(ROOT, ignore_errors=True)
    base.mkdir(parents=True)
    queries_dir.mkdir()
    photos = sorted((CORPUS / "photos").glob("*.jpg"))
    for p in photos:
        shutil.copyfile(p, base / p.name)
    for p in sorted((CORPUS / "pairs").iterdir()):
        if p.suffix.lower() in (".jpg", ".png"):
            shutil.copyfile(p, base / f"pair_{p.name}")
    for p in skimage_photos():
        shutil.copyfile(p, base / f"skimage_{p.name}")
    for p in photos[::2]:
        for name, args in DUPLICATES.items():
            _run([convert, f"{p}[0]", *args, str(base / f"{p.stem}__dup_{name}.jpg")])
        _run(
            [
                convert,
                f"{p}[0]",
                "-resize",
                "60%",
                "-background",
                "black",
                "-rotate",
                "4",
                "-quality",
                "60",
                str(queries_dir / f"{p.stem}__query.jpg"),
            ]
        )
    frames = ROOT / "frames"
    frames.mkdir()
    _run(
        [
            ff,
            "-v",
            "error",
            "-i",
            str(CORPUS / "video" / "vtest.avi"),
            "-fps_mode",
            "passthrough",
            "-frame_pts",
            "1",
            str(frames / "vtest_%04d.jpg"),
        ]
    )
    for f in sorted(frames.iterdir()):
        i = int(f.stem.split("_")[1])
        if i % 8 == 0:
            os.replace(f, base / f.name)
        elif i % 40 == 4:
            os.replace(f, queries_dir / f.name)
    shutil.rmtree(frames)
    (ROOT / "done").write_text("")
    return base, sorted(queries_dir.iterdir())


def _prefix(name: str) -> str:
    return hashlib.sha256(f"{SEED}/{name}".encode()).hexdigest()[:10]


def materialise(base: Path, order: str) -> Path:
    """Order A: the canonical names; order B: shuffled-name copies spread over 3 subfolders."""
    folder = ROOT / f"order{order}"
    shutil.rmtree(folder, ignore_errors=True)
    for f in sorted(base.iterdir()):
        if order == "A":
            dst = folder / f.name
        else:
            p = _prefix(f.name)
            dst = folder / f"part{int(p, 16) % 3}" / f"{p}_{f.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst)
    return folder


def canonical(path: str, order: str) -> str:
    name = Path(path).name
    return name.split("_", 1)[1] if order == "B" else name


def one_run(exe: str, order: str, workers: int, queries: list[Path], tag: str) -> dict:
    folder = ROOT / f"order{order}"
    catalog = ROOT / "catalogs" / tag
    shutil.rmtree(catalog, ignore_errors=True)
    t = time.perf_counter()
    _cli([exe, "ingest", str(folder), "--catalog", str(catalog), "--workers", str(workers), "--format", "json"])
    ingest_s = time.perf_counter() - t
    groups, dups_s = {}, {}
    for threshold in THRESHOLDS:
        t = time.perf_counter()
        dups = json.loads(
            _cli(
                [
                    exe,
                    "dups",
                    "--catalog",
                    str(catalog),
                    "--format",
                    "json",
                    "--workers",
                    str(workers),
                    "--threshold",
                    str(threshold),
                ]
            )
        )
        dups_s[str(threshold)] = round(time.perf_counter() - t, 1)
        groups[str(threshold)] = sorted(sorted(canonical(m["path"], order) for m in g["members"]) for g in dups["groups"])
    out = _cli([exe, "query", *map(str, queries), "--catalog", str(catalog), "--format", "jsonl", "--top", "10"])
    tops = {}
    for line in out.splitlines():
        row = json.loads(line)
        tops[Path(row["query"]).name] = [canonical(h["path"], order) for h in row["results"]]
    log(f"run {tag}: ingest {ingest_s:.1f} s, dups {dups_s} s, groups {[len(g) for g in groups.values()]}")
    return {
        "order": order,
        "workers": workers,
        "ingest_s": round(ingest_s, 1),
        "dups_s": dups_s,
        "groups": groups,
        "top10": tops,
        "load1": round(os.getloadavg()[0], 2),
    }


def _cli(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {done.stderr[-1000:]}")
    return done.stdout


def compare(ref: dict, other: dict) -> dict:
    out = {t: _compare_groups(ref["groups"][t], other["groups"][t]) for t in ref["groups"]}
    top_diff = [q for q in ref["top10"] if ref["top10"][q] != other["top10"].get(q)]
    first_diff = [q for q in ref["top10"] if ref["top10"][q][:1] != other["top10"].get(q, [])[:1]]
    set_diff = [q for q in ref["top10"] if set(ref["top10"][q]) != set(other["top10"].get(q, []))]
    return {
        "groups": out,
        "queries_with_different_top10_order": len(top_diff),
        "queries_with_different_top10_set": len(set_diff),
        "queries_with_different_first_hit": len(first_diff),
        "top10_differs": top_diff[:5],
    }


def _compare_groups(ref_groups, other_groups) -> dict:
    a = {tuple(g) for g in ref_groups}
    b = {tuple(g) for g in other_groups}
    return {
        "identical": a == b,
        "only_in_reference": len(a - b),
        "only_in_this_run": len(b - a),
        "examples": {
            "only_in_reference": [list(g) for g in sorted(a - b)][:3],
            "only_in_this_run": [list(g) for g in sorted(b - a)][:3],
        },
    }


def render(res: dict) -> str:
    lines = [
        "# Determinism: same files, other ingest order / worker count",
        "",
        f"Command: `python -m bench.determinism`. Run {res['started']} ({res['total_s']:.0f} s); checkout {res['machine']['searcher_commit']}, searcher/ code of commit {res.get('searcher_code', '?')}; "
        f"library {res['files']} files, {res['queries']} queries; 1-min load {res['load1_start']} -> {res['load1_end']} (2 cores, shared).",
        "",
        "Run 1 is the reference. Groups compared as sets of files (by canonical name); top-10 lists in order.",
        "",
    ]
    thresholds = list(res["runs"][0]["groups"])
    head = ["run", "order", "workers"]
    for t in thresholds:
        head += [f"t={t}: groups (largest sizes)", f"t={t}: groups not in run 1 / run-1 groups missing"]
    head += ["top-10 differs (order / set)", "first hit differs", "ingest s", "dups s"]
    lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for i, (run, cmp) in enumerate(zip(res["runs"], res["comparisons"]), 1):
        cells = [str(i), run["order"], str(run["workers"])]
        for t in thresholds:
            sizes = sorted((len(g) for g in run["groups"][t]), reverse=True)
            g = cmp["groups"][t]
            cells += [f"{len(sizes)} ({', '.join(map(str, sizes[:4]))})", f"{g['only_in_this_run']} / {g['only_in_reference']}"]
        cells += [
            f"{cmp['queries_with_different_top10_order']} / {cmp['queries_with_different_top10_set']}",
            str(cmp["queries_with_different_first_hit"]),
            str(run["ingest_s"]),
            " / ".join(map(str, run["dups_s"].values())),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    same = all(
        all(g["identical"] for g in c["groups"].values()) and not c["queries_with_different_top10_order"]
        for c in res["comparisons"]
    )
    verdict = (
        f"identical in all {len(res['runs'])} runs" if same else "NOT identical (see the table and results/determinism.json)"
    )
    lines += [
        "",
        f"Groups and top-10s: **{verdict}**.",
        "",
        "Candidate recall of the HNSW shortlist against brute force: not measurable through the CLI; left to the speed/scale bench.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    exe = searcher_exe()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_start = round(os.getloadavg()[0], 2)
    t0 = time.time()
    base, queries = make_library()
    for order in ("A", "B"):
        materialise(base, order)
    runs = [one_run(exe, order, workers, queries, f"run{i}-{order}-w{workers}") for i, (order, workers) in enumerate(RUNS, 1)]
    comparisons = [compare(runs[0], r) for r in runs]
    from bench.realedits_report import searcher_code_commit

    res = {
        "searcher_code": searcher_code_commit(),
        "started": started,
        "total_s": round(time.time() - t0, 1),
        "machine": machine_info(),
        "files": len(list(base.iterdir())),
        "queries": len(queries),
        "load1_start": load_start,
        "load1_end": round(os.getloadavg()[0], 2),
        "runs": runs,
        "comparisons": comparisons,
    }
    write_json(RESULTS / "determinism.json", res)
    (RESULTS / "determinism.md").write_text(render(res))
    print(render(res))


if __name__ == "__main__":
    sys.exit(main())
