"""dups: near-duplicate groups of a whole catalog, the copy to keep, stable ids, and moves that undo."""

import csv
import hashlib
import io
import itertools
import json
import os
import shutil
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from searcher.api import duplicates as find_duplicates
from searcher.api import ingest, move_duplicates
from searcher.api import undo as undo_moves
from searcher.catalog import CatalogLocation
from searcher.cli import app
from searcher.errors import UsageError
from searcher.ingest import IngestOptions
from searcher.keep import Member, choose_keep, group_id
from searcher.moves import plan_moves, read_log

from conftest import SAMPLE

SIGNATURES = ("hist", "mse", "orb")  # not ae: the figures below must not depend on installed weights
runner = CliRunner()


def manifest_groups(root: Path) -> dict[str, set[str]]:
    """original path -> {original, its copies}, absolute, from sample_data/manifest.csv."""
    groups: dict[str, set[str]] = {}
    with open(SAMPLE / "manifest.csv") as f:
        for row in csv.DictReader(f):
            original = str(root / row["original"])
            groups.setdefault(original, {original}).add(str(root / row["path"]))
    return groups


def same_group_pairs(groups) -> set[frozenset]:
    return {frozenset(p) for members in groups for p in itertools.combinations(sorted(members), 2)}


@pytest.fixture(scope="module")
def sample_with_copies(tmp_path_factory) -> CatalogLocation:
    """sample_data photos and copies, ingested in place (read-only tests)."""
    location = CatalogLocation(tmp_path_factory.mktemp("dups") / "catalog")
    ingest([SAMPLE / "photos", SAMPLE / "copies"], location, IngestOptions(workers=1, signatures=SIGNATURES))
    return location


@pytest.fixture(scope="module")
def sample_result(sample_with_copies):
    return find_duplicates(sample_with_copies, workers=1)


def test_sample_data_groups_match_the_manifest_pairwise_precision_1_recall_1(sample_result):
    """Measured: all 9 manifest groups (24 copies incl. 3 flips, 2 hue shifts, 3 captions) found exactly."""
    expected = same_group_pairs(manifest_groups(SAMPLE).values())
    found = same_group_pairs({m.path for m in g.members} for g in sample_result.groups)
    true = len(expected & found)
    precision, recall = true / max(1, len(found)), true / len(expected)
    assert (precision, recall) == (1.0, 1.0), f"pairwise precision {precision:.3f}, recall {recall:.3f}"


def _autoencoder_installed() -> bool:
    from searcher.errors import SearcherError
    from searcher.features import build_extractor

    try:
        build_extractor("ae")
    except SearcherError:
        return False
    return True


@pytest.mark.skipif(not _autoencoder_installed(), reason="no autoencoder weights installed")
def test_with_the_autoencoder_too_precision_1_recall_at_least_0_95(tmp_path):
    """Measured with the shipped weights: 43 of 45 pairs. The rotated Garden copy's stored latent
    differs from its captioned sibling's (no orientation variants for stored latents), which lowers
    their fused score below what 11 ORB inliers can lift; the other copies of Garden still group."""
    location = CatalogLocation(tmp_path / "catalog")
    ingest([SAMPLE / "photos", SAMPLE / "copies"], location, IngestOptions(workers=1, signatures=(*SIGNATURES, "ae")))
    expected = same_group_pairs(manifest_groups(SAMPLE).values())
    found = same_group_pairs({m.path for m in g.members} for g in find_duplicates(location, workers=1).groups)
    true = len(expected & found)
    precision, recall = true / max(1, len(found)), true / len(expected)
    assert precision == 1.0 and recall >= 0.95, f"pairwise precision {precision:.3f}, recall {recall:.3f}"


def test_distinct_photos_are_never_grouped_and_singletons_are_left_out(sample_result):
    for group in sample_result.groups:
        originals = [m.path for m in group.members if "/photos/" in m.path]
        assert len(originals) == 1, originals
        assert len(group.members) >= 2


def test_a_mirrored_copy_is_grouped_through_the_mirror_check(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(SAMPLE / "photos" / "mate_Dune.jpg", folder / "dune.jpg")
    cv2.imwrite(str(folder / "dune_mirrored.jpg"), cv2.imread(str(folder / "dune.jpg"))[:, ::-1])
    shutil.copy(SAMPLE / "photos" / "skimage_rocket.jpg", folder / "rocket.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    ingest([folder], location, IngestOptions(workers=1, signatures=SIGNATURES))
    [group] = find_duplicates(location, workers=1).groups
    assert sorted(os.path.basename(m.path) for m in group.members) == ["dune.jpg", "dune_mirrored.jpg"]
    assert min(m.score for m in group.members) > 0.9


CORPUS = Path("/work/shared/corpus")


@pytest.mark.skipif(not (CORPUS / "pairs" / "pairs.csv").exists(), reason="the shared benchmark corpus is not on this machine")
def test_corpus_natural_pairs_found_7_of_10_and_no_distinct_photos_merged(tmp_path):
    """Measured: 7 of 10 (not aero1/aero3: large motion; not box/box_in_scene: a small object in a
    scene; not left/right, a stereo pair whose ORB inliers fall from 21 to 10 since ORB runs on a
    400 px image: 8 of 10 before, see bench/orb_study.py for what that bought)."""
    location = CatalogLocation(tmp_path / "catalog")
    ingest([CORPUS / "photos", CORPUS / "pairs"], location, IngestOptions(workers=2, signatures=SIGNATURES))
    groups = [{os.path.basename(m.path) for m in g.members} for g in find_duplicates(location).groups]
    with open(CORPUS / "pairs" / "pairs.csv") as f:
        pairs = [{row["a"], row["b"]} for row in csv.DictReader(f)]
    found = [p for p in pairs if any(p <= g for g in groups)]
    assert len(found) >= 7, f"{len(found)} of {len(pairs)} natural pairs grouped"
    assert all(len(g) == 2 and g in pairs for g in groups), groups  # every group is one natural pair


def test_candidates_grow_with_images_times_neighbours_not_images_squared(sample_with_copies):
    result = find_duplicates(sample_with_copies, neighbours=2, workers=1)
    assert result.candidate_pairs <= result.images * 2 * 2  # two indexes (hist, mse), 2 neighbours each
    assert result.candidate_pairs < result.images * (result.images - 1) / 2


def test_dups_holds_one_index_at_a_time_and_reads_vectors_from_their_saved_copies(sample_with_copies, sample_result, monkeypatch):
    """Memory: each graph is let go before the next is loaded, and vectors are read from the saved
    copies in blocks; the groups and scores are those of vectors held in memory."""
    import weakref

    from searcher.catalog import Catalog
    from searcher.catalog.vectors import HnswIndex

    loaded, copies = [], []
    load_index, open_saved_vectors = Catalog.load_index, HnswIndex.open_saved_vectors

    def one_at_a_time(self, extractor, *args, **kwargs):
        assert all(ref() is None for ref in loaded), "an index was still held when the next was loaded"
        index = load_index(self, extractor, *args, **kwargs)
        loaded.append(weakref.ref(index))
        return index

    def counted(self):
        copies.append(open_saved_vectors(self))
        return copies[-1]

    monkeypatch.setattr(Catalog, "load_index", one_at_a_time)
    monkeypatch.setattr(HnswIndex, "open_saved_vectors", counted)
    streamed = find_duplicates(sample_with_copies, workers=1)
    assert len(loaded) == 2 and len(copies) == 2 and all(c is not None for c in copies)

    monkeypatch.setattr(HnswIndex, "open_saved_vectors", lambda self: None)  # vectors held in memory instead
    held = find_duplicates(sample_with_copies, workers=1)
    summary = lambda r: [(g.id, [(m.path, m.score) for m in g.members]) for g in r.groups]  # noqa: E731
    assert summary(streamed) == summary(held) == summary(sample_result)


def test_group_ids_are_stable_across_runs_and_name_the_smallest_sha256(sample_with_copies, sample_result):
    again = find_duplicates(sample_with_copies, workers=1)
    assert [(g.id, [m.path for m in g.members]) for g in again.groups] == [
        (g.id, [m.path for m in g.members]) for g in sample_result.groups
    ]
    for group in again.groups:
        assert group.id == "g" + min(m.sha256 for m in group.members)[:12]


def test_every_member_scores_at_least_the_threshold_and_the_kept_copy_comes_first(sample_result):
    for group in sample_result.groups:
        assert group.members[0] is group.keep
        assert all(m.score >= sample_result.threshold for m in group.members)


def member(path, width=100, height=100, size=1000, mtime_ns=0, sha="a" * 64, image_id=1):
    return Member(image_id=image_id, path=path, sha256=sha, width=width, height=height, size=size, mtime_ns=mtime_ns)


def test_keep_the_largest_resolution_then_the_largest_file_then_the_oldest():
    big = member("/b", width=200, height=100, size=10)
    keep, why = choose_keep([member("/a", size=99), big])
    assert keep is big and why.startswith("largest resolution (200x100")
    heavy = member("/h", size=5000)
    keep, why = choose_keep([member("/a"), heavy])
    assert keep is heavy and why.startswith("same resolution, largest file")
    old = member("/o", mtime_ns=10**18)
    keep, why = choose_keep([member("/a", mtime_ns=2 * 10**18), old])
    assert keep is old and why.startswith("same resolution and file size, oldest")
    keep, why = choose_keep([member("/z"), member("/a")])
    assert keep.path == "/a" and "first path" in why


def test_group_id_comes_from_the_smallest_sha256():
    assert group_id([member("/a", sha="f" * 64), member("/b", sha="0123456789ab" + "c" * 52)]) == "g0123456789ab"


def test_threshold_out_of_range_is_a_usage_error(sample_with_copies):
    with pytest.raises(UsageError, match="threshold"):
        find_duplicates(sample_with_copies, threshold=1.5)


# ---- moves ----


def sha_of_every_file(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def library(tmp_path):
    """A writable folder: three originals with their copies, and two distinct photos, ingested."""
    root = tmp_path / "lib"
    groups = list(manifest_groups(SAMPLE).items())[:3]
    for _original, members in groups:
        for path in members:
            target = root / Path(path).relative_to(SAMPLE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for extra in ("mate_Dune.jpg", "skimage_rocket.jpg"):
        shutil.copy2(SAMPLE / "photos" / extra, root / "photos" / extra)
    location = CatalogLocation(tmp_path / "catalog")
    ingest([root], location, IngestOptions(workers=1, signatures=SIGNATURES))
    return root, location


def test_move_then_undo_restores_every_file_byte_for_byte(library, tmp_path):
    root, location = library
    before = sha_of_every_file(root)
    result = find_duplicates(location, workers=1)
    assert len(result.groups) == 3
    dest = tmp_path / "quarantine"
    moves = plan_moves(result.groups, dest)
    assert len(moves) == sum(len(g.members) - 1 for g in result.groups)
    log = tmp_path / "moves.jsonl"
    outcome = move_duplicates(result.groups, moves, log, location)
    assert len(outcome.moved) == len(moves) and not outcome.skipped
    for group in result.groups:
        assert os.path.exists(group.keep.path)  # the kept copy never moves
        for m in group.members[1:]:
            assert not os.path.exists(m.path)
            assert (dest / group.id / os.path.basename(m.path)).is_file()
    assert [e["from"] for e in read_log(log)] == [m.source for m in moves]

    # The catalog followed the files: nothing looks added or removed to the next ingest.
    summary = ingest([root, dest], location, IngestOptions(workers=1, signatures=SIGNATURES))
    assert summary.counts() == {"added": 0, "updated": 0, "moved": 0, "unchanged": len(before), "removed": 0, "failed": 0}

    undone = undo_moves(log)
    assert len(undone.restored) == len(moves)
    assert sha_of_every_file(root) == before
    assert not dest.exists() or not any(dest.rglob("*"))
    summary = ingest([root], location, IngestOptions(workers=1, signatures=SIGNATURES))
    assert summary.counts()["unchanged"] == len(before) and summary.counts()["removed"] == 0
    assert undo_moves(log).restored == []  # a second undo finds everything in place


def test_moves_never_overwrite_and_leave_members_already_moved(library, tmp_path):
    root, location = library
    result = find_duplicates(location, workers=1)
    dest = tmp_path / "q"
    group = result.groups[0]
    taken = dest / group.id / os.path.basename(group.members[1].path)
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"someone else's file")
    moves = plan_moves(result.groups, dest)
    first = next(m for m in moves if m.source == group.members[1].path)
    assert first.target.endswith("~2" + os.path.splitext(taken.name)[1])
    move_duplicates(result.groups, moves, tmp_path / "log.jsonl", location)
    assert taken.read_bytes() == b"someone else's file"
    assert plan_moves(find_duplicates(location, workers=1).groups, dest) == []


def test_a_group_whose_kept_copy_changed_since_ingest_is_left_alone(library, tmp_path):
    root, location = library
    result = find_duplicates(location, workers=1)
    group = result.groups[0]
    with open(group.keep.path, "ab") as f:
        f.write(b"\0")
    moves = [m for m in plan_moves(result.groups, tmp_path / "q") if m.group == group.id]
    outcome = move_duplicates(result.groups, moves, tmp_path / "log.jsonl", location)
    assert outcome.moved == [] and len(outcome.skipped) == len(moves)
    assert all(os.path.exists(m.path) for m in group.members)


def test_undo_refuses_a_file_whose_bytes_changed(library, tmp_path):
    root, location = library
    result = find_duplicates(location, workers=1)
    log = tmp_path / "log.jsonl"
    moves = plan_moves(result.groups, tmp_path / "q")
    move_duplicates(result.groups, moves, log, location)
    Path(moves[0].target).write_bytes(b"changed")
    outcome = undo_moves(log, location)
    assert (moves[0].target, "its bytes differ from the moved file") in outcome.skipped
    assert len(outcome.restored) == len(moves) - 1
    assert not os.path.exists(moves[0].source)


# ---- command line ----


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cli_dups_formats(sample_with_copies):
    data = json.loads(invoke("dups", "--catalog", sample_with_copies.directory, "--format", "json", "--workers", "1").stdout)
    assert len(data["groups"]) == 9
    for group in data["groups"]:
        assert group["keep"] == group["members"][0]["path"] and os.path.isabs(group["keep"])
        assert group["id"].startswith("g") and all(0 < m["score"] <= 1 for m in group["members"])
    rows = list(csv.DictReader(io.StringIO(invoke("dups", "--catalog", sample_with_copies.directory, "--format", "csv").stdout)))
    assert len(rows) == sum(len(g["members"]) for g in data["groups"])
    assert sum(int(r["keep"]) for r in rows) == 9
    table = invoke("dups", "--catalog", sample_with_copies.directory).stdout
    assert all(g["id"] in table for g in data["groups"])


def test_cli_move_is_a_dry_run_without_yes_and_undo_restores(library, tmp_path):
    root, location = library
    before = sha_of_every_file(root)
    dest = tmp_path / "q"
    dry = invoke("dups", "--catalog", location.directory, "--move-to", dest, "--format", "json")
    assert dry.exit_code == 0 and "dry run" in dry.stderr and "would move" in dry.stderr
    assert sha_of_every_file(root) == before and not dest.exists()
    log = tmp_path / "moves.jsonl"
    real = invoke("dups", "--catalog", location.directory, "--move-to", dest, "--yes", "--log", log)
    assert real.exit_code == 0 and f"searcher undo {log}" in real.stderr
    assert sha_of_every_file(root) != before
    undo = invoke("undo", log)
    assert undo.exit_code == 0 and undo.stdout.strip().endswith("restored, 0 skipped")
    assert sha_of_every_file(root) == before


def test_cli_yes_without_move_to_is_a_usage_error(sample_with_copies):
    with pytest.raises(UsageError, match="--move-to"):
        invoke("dups", "--catalog", sample_with_copies.directory, "--yes")
