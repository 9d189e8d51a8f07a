"""results.json -> results.md (tables, targets, closing note) and PNG plots."""

from __future__ import annotations

from pathlib import Path

TARGET_MAP = 0.95
ORDER_FIRST = ("searcher fused+orb", "searcher fused")


def _f(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _methods(table: dict) -> tuple[list[str], list[str], list[str]]:
    ours = [m for m in ORDER_FIRST if m in table] + [
        m for m in table if not m.startswith(("searcher", "imagehash", "imagededup")) and "brute" not in m
    ]
    brute = [m for m in table if "brute" in m]
    peers = [m for m in table if m.startswith(("imagehash", "imagededup"))]
    return ours, brute, peers


def accuracy_section(acc: dict) -> list[str]:
    table = acc["table"]
    ours, brute, peers = _methods(table)
    families = acc["families"]
    rows = ["overall", "overall, held-out originals", *families]
    rows = [r for r in rows if r in table[ours[0]]]
    lines = [
        "## Accuracy",
        "",
        f"{acc['n_queries']} queries against a catalog of {acc['n_catalog']} images; signatures: {', '.join(acc['signatures'])}.",
        "",
        acc["protocol"],
        "",
        "```",
        acc.get("rankings", ""),
        "```",
        "",
        f"### mAP@{acc['k']} per transform family",
        "",
        "Bold: the best of the row. `best peer` is the best of the peers on that row; "
        "`vs peer` is fused+orb minus it (**LOSES** where searcher's default ranking is below a peer).",
        "",
    ]
    cols = ours + brute + peers
    short = {
        m: m.replace("searcher ", "").replace("imagehash ", "ih ").replace("imagededup ", "idd ").replace(" brute-force", " BF")
        for m in cols
    }
    lines.append("| family | " + " | ".join(short[c] for c in cols) + " | best peer | vs peer |")
    lines.append("|---|" + "---:|" * (len(cols) + 2))
    for r in rows:
        values = {c: table[c][r]["mAP"] for c in cols}
        best = max(values.values())
        cells = [f"**{values[c]:.3f}**" if values[c] == best else f"{values[c]:.3f}" for c in cols]
        best_peer = max(peers, key=lambda p: values[p]) if peers else None
        gap = values["searcher fused+orb"] - values[best_peer] if best_peer else None
        flag = "" if gap is None or gap >= 0 else " **LOSES**"
        label = r if r in families else f"**{r}**"
        n = table[cols[0]][r]["n"]
        lines.append(
            f"| {label} (n={n}) | "
            + " | ".join(cells)
            + f" | {short.get(best_peer, '')} {values.get(best_peer, 0):.3f} | {gap:+.3f}{flag} |"
        )
    orb_n = table.get("orb", {}).get("overall", {}).get("n")
    lines += [
        "",
        "Column names: `ih` = imagehash, `idd` = imagededup, `BF` = brute-force scan of searcher's stored vectors (no HNSW, no shortlist)."
        + (
            f" `orb` (alone) is scored on a subset ({orb_n} copies overall, {table['orb'].get('jpeg10', {}).get('n')} per family; "
            f"{table['orb'].get('pairs', {}).get('n')} pairs, {table['orb'].get('video', {}).get('n')} video queries)."
            if orb_n
            else ""
        ),
        "",
    ]
    lines += [
        "### recall@1 / recall@10 per family",
        "",
        "| family | " + " | ".join(short[c] for c in ["searcher fused+orb", "searcher fused", *peers]) + " |",
    ]
    lines.append("|---|" + "---:|" * (len(peers) + 2))
    for r in rows:
        cells = [
            f"{table[c][r]['R@1']:.2f} / {table[c][r]['R@10']:.2f}" for c in ["searcher fused+orb", "searcher fused", *peers]
        ]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += ["", "recall@1 / recall@10 of every ranking, signatures alone included, are in results.json.", ""]
    return lines


def weakest_families(acc: dict, n: int = 3) -> list[tuple[str, float, float, float]]:
    """(family, fused+orb mAP, fused+orb R@1, fused mAP) of the n weakest synthetic families: by
    fused+orb mAP, then R@1, then the fused mAP before re-ranking (many families tie at 1.000)."""
    t, f0 = acc["table"]["searcher fused+orb"], acc["table"]["searcher fused"]
    fams = [f for f in acc["families"] if f in t and f not in ("pairs", "video")]
    rows = [(f, t[f]["mAP"], t[f]["R@1"], f0[f]["mAP"]) for f in fams]
    return sorted(rows, key=lambda x: (x[1], x[2], x[3]))[:n]


def speed_section(speed: dict, no_ae: dict | None) -> list[str]:
    lines = [
        "## Speed: ingest",
        "",
        f"Signatures: {', '.join(speed['signatures'])}. Files per second, median of repeated runs; `Np` = N processes.",
        "",
    ]
    head = ["set", "files", "MB/file", "decode full 1p", "decode full 2p", "decode reduced 1p", "decode reduced 2p", "pHash 1p", "pHash 2p",
            "ingest 1p", "ingest 2p", "ingest / pHash (2p)", "ingest / full decode (2p)", "load"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, e in speed["sets"].items():
        lines.append(
            f"| {name} ({e['size']}) | {e['files']} | {e['mb_per_file']:.2f} | "
            + " | ".join(
                f"{e[k]:.1f}"
                for k in (
                    "decode full (cv2.imread), 1p",
                    "decode full (cv2.imread), 2p",
                    "decode reduced (searcher), 1p",
                    "decode reduced (searcher), 2p",
                    "imagehash pHash, 1p",
                    "imagehash pHash, 2p",
                    "ingest, 1p",
                    "ingest, 2p",
                )  # fmt: skip
            )
            + f" | {e['ingest, 2p'] / e['imagehash pHash, 2p']:.2f} | {e['ingest, 2p'] / e['decode full (cv2.imread), 2p']:.2f} | {e['load_before']:.2f} |"
        )
    lines += ["", "`decode full` = cv2.imread at full size (the floor of any tool that decodes every pixel); `decode reduced` = "
              "searcher.images.load_image (libjpeg DCT-scaled decoding to >= 640 px, then INTER_AREA), the decode ingest really does.", ""]  # fmt: skip
    if no_ae:
        e = no_ae["sets"]["s640"]
        lines += [
            f"Without `ae` (signatures {', '.join(no_ae['signatures'])}), s640 ingest: {e['ingest, 1p']:.1f} files/s (1p), {e['ingest, 2p']:.1f} files/s (2p) (single run).",
            "",
        ]
    lines += ["### Where one ingest spends its time (1 process, ms per image)", ""]
    stages = []
    for e in speed["sets"].values():
        for k in e.get("breakdown (1 process)", {}).get("ms_per_image", {}):
            if k not in stages:
                stages.append(k)
    names = [n for n, e in speed["sets"].items() if "breakdown (1 process)" in e]
    lines += ["| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for s in stages:
        cells = []
        for n in names:
            b = speed["sets"][n]["breakdown (1 process)"]
            cells.append(f"{b['ms_per_image'].get(s, 0):.2f} ({100 * b['share'].get(s, 0):.0f}%)")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total** | "
        + " | ".join(
            f"{1000 * speed['sets'][n]['breakdown (1 process)']['wall_s'] / speed['sets'][n]['files']:.2f}" for n in names
        )
        + " |"
    )
    lines += [
        "",
        "Measured by wrapping the library's functions at run time (bench/speed.py `stage_clock`); `other` is the rest of the wall time.",
        "",
    ]
    noop = {n: e["no-op rerun files/s"] for n, e in speed["sets"].items() if "no-op rerun files/s" in e}
    if noop:
        lines += [
            "No-op rerun on these small sets (files/s, dominated by opening the catalog): "
            + ", ".join(f"{n} {v:.0f}" for n, v in noop.items())
            + ".",
            "",
        ]
    return lines


def latency_table(lat: dict) -> list[str]:
    st = lat["in_process"]["stages"]
    lines = ["| stage | p50 ms | p95 ms |", "|---|---:|---:|"]
    for k, v in st.items():
        label = "**total (one query, in process)**" if k == "total" else k
        lines.append(f"| {label} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} |")
    lines.append(
        f"| CLI batch of {lat['cli_batch']['n']}: per query, process start and catalog open included | {lat['cli_batch']['ms_per_query']:.1f} | |"
    )
    lines.append(f"| CLI, one query per process (`searcher query one.jpg`) | {lat['cli_single']['ms']:.0f} | |")
    lines += ["", f"Opening the catalog (indexes loaded): {1000 * lat['in_process']['open_s']:.0f} ms. Peak RSS: {lat['in_process']['peak_rss_mb']:.0f} MB "
              f"(in-process query loop), {lat['cli_batch']['peak_rss_mb']:.0f} MB (CLI batch). 1-min load before: {lat['load_before']:.2f}.", ""]  # fmt: skip
    return lines


def disk_table(disk: dict) -> list[str]:
    b = disk["bytes_per_image"]
    return ["| file | bytes per image |", "|---|---:|"] + [f"| {k} | {v:,.0f} |" for k, v in b.items()] + [""]


def scale_section(scale: dict, out_dir: Path) -> list[str]:
    rows = scale["rows"]
    lines = ["## Scale", "", scale["description"], "",
             "| N images | ingest added | ingest s | p50 ms | p95 ms | peak RSS MB (in process / CLI) | bytes/image | hist recall@100 | mse recall@100 | ae recall@100 | fused+orb R@1 / R@10 | R@1 of the original itself | load |",  # fmt: skip
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        t = r["latency"]["in_process"]["stages"]["total"]
        rec = r["recall"]["recall"]
        lines.append(
            f"| {r['n']:,} | {r['ingest_added']:,} | {r['ingest_s']:.0f} | {t['p50_ms']:.1f} | {t['p95_ms']:.1f} | {r['latency']['in_process']['peak_rss_mb']:.0f} / {r['latency']['cli_batch']['peak_rss_mb']:.0f} | "
            f"{r['disk']['bytes_per_image']['total']:,.0f} | {_f(rec.get('hist'), 3)} | {_f(rec.get('mse'), 3)} | {_f(rec.get('ae'), 3)} | "
            f"{r.get('fused+orb R@1', float('nan')):.2f} / {r.get('fused+orb R@10', float('nan')):.2f} | {r['fused+orb R@1 of originals']:.2f} | {r['latency']['load_before']:.2f} |"
        )
    last = rows[-1]
    lines += ["", f"recall@100 = share of the exact 100 nearest stored vectors that the HNSW search (ef = {max(128, 200)}) returns; "
              f"fused+orb R@1 / R@10 = share of the latency queries ({last['latency']['in_process']['n_queries']} at the largest N, 27 below) with "
              "their original or one of its crops first / in the top 10. `ingest s` is the time of that growth step "
              "(2 workers, machine shared: not a throughput measurement; see the speed section).", "",
              f"### Query latency at N = {last['n']:,}", ""]  # fmt: skip
    lines += latency_table(last["latency"])
    lines += [f"### Bytes on disk per image at N = {last['n']:,}", ""] + disk_table(last["disk"])
    sig = scale.get("signature_bytes", {})
    if sig:
        lines += ["Stored signature BLOBs: " + ", ".join(f"{k} {v['avg_bytes']:,.0f} B" for k, v in sig.items()) + ".", ""]
    nr = scale["noop_rerun"]
    lines += [
        f"No-op incremental rerun at N = {nr['n']:,}: **{nr['files_per_s']:,.0f} files/s** (median of {len(nr['runs'])}).",
        "",
    ]
    lines += ["![latency](scale_latency.png) ![memory](scale_memory.png) ![disk](scale_disk.png)", ""]
    _plots(scale, out_dir)
    return lines


def _plots(scale: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = scale["rows"]
    n = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for q in ("p50", "p95"):
        ax.plot(n, [r["latency"]["in_process"]["stages"]["total"][f"{q}_ms"] for r in rows], marker="o", label=f"total {q}")
    for stage in ("signatures", "index search + exact scores", "ORB re-rank", "decode"):
        ax.plot(
            n, [r["latency"]["in_process"]["stages"][stage]["p50_ms"] for r in rows], ls="--", marker=".", label=f"{stage} p50"
        )
    ax.set_xscale("log")
    ax.set_xlabel("images in catalog")
    ax.set_ylabel("ms per query")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)  # noqa: E702
    ax.set_title("single query latency")
    fig.tight_layout()
    fig.savefig(out_dir / "scale_latency.png", dpi=110)
    plt.close(fig)  # noqa: E702
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(n, [r["latency"]["in_process"]["peak_rss_mb"] for r in rows], marker="o", label="query process peak RSS")
    ax.set_xscale("log")
    ax.set_xlabel("images in catalog")
    ax.set_ylabel("MB")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)  # noqa: E702
    ax.set_title("query memory")
    fig.tight_layout()
    fig.savefig(out_dir / "scale_memory.png", dpi=110)
    plt.close(fig)  # noqa: E702
    fig, ax = plt.subplots(figsize=(5, 3.5))
    keys = [k for k in rows[-1]["disk"]["bytes_per_image"] if k != "index sidecars"]
    for k in keys:
        ax.plot(n, [r["disk"]["bytes_per_image"].get(k, 0) * r["n"] / 1e6 for r in rows], marker="o", label=k)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("images in catalog")
    ax.set_ylabel("MB on disk")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)  # noqa: E702
    ax.set_title("catalog and index size")
    fig.tight_layout()
    fig.savefig(out_dir / "scale_disk.png", dpi=110)
    plt.close(fig)  # noqa: E702


def accuracy_plot(acc: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = acc["table"]
    _, _, peers = _methods(table)
    fams = [f for f in acc["families"] if f in table["searcher fused+orb"]]
    ours = [table["searcher fused+orb"][f]["mAP"] for f in fams]
    fused = [table["searcher fused"][f]["mAP"] for f in fams]
    best = [max(table[p][f]["mAP"] for p in peers) if peers else 0 for f in fams]
    x = np.arange(len(fams))
    fig, ax = plt.subplots(figsize=(11, 3.8))
    ax.bar(x - 0.27, ours, 0.27, label="searcher fused+orb")
    ax.bar(x, fused, 0.27, label="searcher fused (no ORB)")
    ax.bar(x + 0.27, best, 0.27, label="best peer hash")
    ax.set_xticks(x, fams, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"mAP@{acc['k']}")
    ax.set_ylim(0, 1.02)  # noqa: E702
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)  # noqa: E702
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_families.png", dpi=110)
    plt.close(fig)  # noqa: E702


def targets(results: dict) -> list[dict]:
    """Each target of issue #4: measured value, met or not, and by how much."""
    out = []

    def add(name, measured, goal, met, gap, unit=""):
        out.append({"target": name, "measured": measured, "goal": goal, "met": met, "gap": gap})

    sp = results.get("speed", {}).get("sets", {})
    if "s640" in sp:
        e = sp["s640"]
        for p in (1, 2):
            ratio = e[f"ingest, {p}p"] / e[f"imagehash pHash, {p}p"]
            add(f"ingest >= 0.5 x pHash throughput, ~640 px, {p} process(es)", f"{e[f'ingest, {p}p']:.1f} vs pHash {e[f'imagehash pHash, {p}p']:.1f} files/s = {ratio:.2f}x",
                ">= 0.50x", ratio >= 0.5, f"{ratio / 0.5:.2f} of the goal" if ratio < 0.5 else f"{ratio - 0.5:+.2f}x margin")  # fmt: skip
    if "s4000" in sp:
        e = sp["s4000"]
        for p in (1, 2):
            ratio = e[f"ingest, {p}p"] / e[f"decode full (cv2.imread), {p}p"]
            add(f"ingest faster than cv2.imread full decode, 4000x3000, {p} process(es)",
                f"{e[f'ingest, {p}p']:.1f} vs {e[f'decode full (cv2.imread), {p}p']:.1f} files/s = {ratio:.2f}x", "> 1.00x", ratio > 1.0,
                f"{(ratio - 1) * 100:+.0f}%")  # fmt: skip
    sc = results.get("scale")
    if sc:
        nr = sc["noop_rerun"]
        add(f"no-op rerun (N = {nr['n']:,})", f"{nr['files_per_s']:,.0f} files/s", ">= 20,000 files/s", nr["files_per_s"] >= 20000,
            f"{nr['files_per_s'] / 20000:.2f}x the goal")  # fmt: skip
        last = sc["rows"][-1]
        t = last["latency"]["in_process"]["stages"]["total"]
        add(
            f"single query p50 at N = {last['n']:,}",
            f"{t['p50_ms']:.1f} ms",
            "<= 50 ms",
            t["p50_ms"] <= 50,
            f"{t['p50_ms'] - 50:+.1f} ms",
        )
        add(
            f"single query p95 at N = {last['n']:,}",
            f"{t['p95_ms']:.1f} ms",
            "<= 100 ms",
            t["p95_ms"] <= 100,
            f"{t['p95_ms'] - 100:+.1f} ms",
        )
        rss = max(last["latency"]["in_process"]["peak_rss_mb"], last["latency"]["cli_batch"]["peak_rss_mb"])
        add(f"query process RSS at N = {last['n']:,}", f"{rss:.0f} MB", "<= 1024 MB", rss <= 1024, f"{rss - 1024:+.0f} MB")
        b = last["disk"]["bytes_per_image"]["total"]
        add(f"disk per image at N = {last['n']:,}", f"{b:,.0f} B", "<= 16,384 B", b <= 16384, f"{b - 16384:+,.0f} B")
    acc = results.get("accuracy")
    if acc:
        t = acc["table"]
        overall = t["searcher fused+orb"]["overall"]["mAP"]
        add(
            "fused+orb mAP overall (synthetic families)",
            f"{overall:.3f}",
            ">= 0.95",
            overall >= TARGET_MAP,
            f"{overall - TARGET_MAP:+.3f}",
        )
        _, _, peers = _methods(t)
        losses, ties = [], []
        for f in acc["families"]:
            if f not in t["searcher fused+orb"]:
                continue
            best = max(peers, key=lambda p: t[p][f]["mAP"])
            gap = t["searcher fused+orb"][f]["mAP"] - t[best][f]["mAP"]
            if gap < 0:
                losses.append(f"{f} ({gap:+.3f} vs {best})")
            elif gap == 0:
                ties.append(f)
        tie_text = f"; tied (both at {t['searcher fused+orb'][ties[0]]['mAP']:.3f}) on {', '.join(ties)}" if ties else ""
        add("fused+orb mAP above every peer on every family (synthetic and natural)",
            ("above or tied on every family" if not losses else "below on: " + "; ".join(losses)) + tie_text,
            "every family", not losses, f"{len(losses)} famil{'y' if len(losses) == 1 else 'ies'} below a peer, {len(ties)} tied")  # fmt: skip
    return out


def write(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    run = results.get("run", {})
    m = run.get("machine", {})
    lines = [
        "# searcher benchmark results",
        "",
        f"Command: `{run.get('command', 'python -m bench')}` (from the repository root, with the project's venv). "
        f"Last run {run.get('started', '?')} to {run.get('finished', '?')}; sections measured at: "
        + ", ".join(f"{k} {results[k].get('measured_at', '?')}" for k in ("accuracy", "speed", "scale") if k in results)
        + ".",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores (shared with other work: the 1-min load is recorded "
        f"beside each timing), {m.get('memory_gb', '?')} GB RAM, no GPU; {m.get('platform', '')}, Python {m.get('python', '')}.",
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
        + f"; searcher commit {m.get('searcher_commit', '?')}.",
        "",
        f"Signatures: {', '.join(run.get('signatures', []))}; ae: {run.get('ae', '?')}. "
        f"Peers: " + "; ".join(f"{k}: {v}" for k, v in run.get("peers", {}).items()) + ".",
        "",
        f"Data: accuracy set v{run.get('dataset_version')}, speed sets v{run.get('speed_set_version')}, scale set v{run.get('scale_version')}, seed {run.get('seed')} "
        "(bench/dataset.py, bench/scale.py).",
        "",
    ]
    tg = targets(results)
    if tg:
        lines += ["## Targets", "", "| target | measured | goal | met | by how much |", "|---|---|---|---|---|"]
        for t in tg:
            lines.append(f"| {t['target']} | {t['measured']} | {t['goal']} | {'yes' if t['met'] else '**NO**'} | {t['gap']} |")
        lines.append("")
    if "accuracy" in results:
        lines += accuracy_section(results["accuracy"])
        accuracy_plot(results["accuracy"], out_dir)
        lines += ["![accuracy per family](accuracy_families.png)", ""]
    if "speed" in results:
        lines += speed_section(results["speed"], results.get("speed_without_ae"))
    if "query_small" in results:
        q = results["query_small"]
        lines += [f"## Query latency on the accuracy catalog (N = {q['n']})", ""] + latency_table(q["latency"])
        lines += [f"Bytes on disk per image (N = {q['n']}):", ""] + disk_table(q["disk"])
    if "scale" in results:
        lines += scale_section(results["scale"], out_dir)
    lines += closing_note(results)
    text = "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text(text)
    if out_dir.resolve() == (Path(__file__).parent / "results").resolve():
        head = (Path(__file__).parent / "README_head.md").read_text()
        body = text.replace("](", "](results/").replace("](results/http", "](http")
        (Path(__file__).parent / "README.md").write_text(
            head
            + "Latest results (a copy of results/results.md):\n\n"
            + body.replace("# searcher benchmark results", "## Latest results", 1)
        )


NOTES_FILE = Path(__file__).with_name("notes.md")


def closing_note(results: dict) -> list[str]:
    lines = ["## Closing note", ""]
    if "accuracy" in results:
        weak = weakest_families(results["accuracy"])
        lines.append(
            "Three weakest transform families (fused+orb mAP@10, ties broken by the fused mAP before ORB re-ranking): "
            + ", ".join(f"{f} (fused+orb {v:.3f}, fused alone {v0:.3f})" for f, v, _, v0 in weak)
            + "."
        )
    sp = results.get("speed", {}).get("sets", {})
    for name in ("s640", "s4000"):
        b = sp.get(name, {}).get("breakdown (1 process)")
        if b:
            stage, ms = max(b["ms_per_image"].items(), key=lambda kv: kv[1])
            lines.append(
                f"Biggest ingest cost on {name}: {stage}, {ms:.1f} ms per image ({100 * b['share'][stage]:.0f}% of one process's time)."
            )
    sc = results.get("scale")
    if sc:
        st = sc["rows"][-1]["latency"]["in_process"]["stages"]
        stage, v = max(((k, v) for k, v in st.items() if k != "total"), key=lambda kv: kv[1]["p50_ms"])
        lines.append(
            f"Biggest query cost at N = {sc['rows'][-1]['n']:,}: {stage}, p50 {v['p50_ms']:.1f} ms of {st['total']['p50_ms']:.1f} ms."
        )
    lines.append("")
    if NOTES_FILE.exists():
        lines += [NOTES_FILE.read_text().strip(), ""]
    return lines
