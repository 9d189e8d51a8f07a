"""Reviewing duplicates safely (issue 13, points 1-3 and 7): the catalog follows every action, stale
rows are pruned, decisions persist, links replace copies without losing a byte, and undo reverses all."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from searcher.api import duplicates as find_duplicates
from searcher.api import ingest
from searcher.catalog import Catalog, CatalogLocation
from searcher.cli import app
from searcher.errors import UsageError
from searcher.ingest import IngestOptions
from searcher.ingest_plan import excluded
from searcher.prune import file_state

from conftest import PHOTOS, SAMPLE

SIGNATURES = ("hist", "mse", "orb")
runner = CliRunner()


def cli(*args):
    """The command as a user runs it; a SearcherError (exit 1 through searcher.cli.main) is re-raised."""
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def catalog_paths(location: CatalogLocation) -> set[str]:
    with Catalog.open(location, create=False) as catalog:
        return {row.path for row in catalog.store.file_rows()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def library(tmp_path):
    """Two originals, each with an upscaled q70 copy and a byte-identical copy, plus a distinct photo."""
    root = tmp_path / "lib"
    (root / "photos").mkdir(parents=True)
    (root / "copies").mkdir()
    for k in (0, 3):
        original = cv2.imread(str(PHOTOS[k]))
        original = cv2.resize(original, (451, round(original.shape[0] * 451 / original.shape[1])), interpolation=cv2.INTER_AREA)
        name = PHOTOS[k].stem
        cv2.imwrite(str(root / "photos" / f"{name}.jpg"), original, [cv2.IMWRITE_JPEG_QUALITY, 95])
        up = cv2.resize(original, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / "copies" / f"{name}_big.jpg"), up, [cv2.IMWRITE_JPEG_QUALITY, 70])
        shutil.copy(root / "photos" / f"{name}.jpg", root / "copies" / f"{name}_same.jpg")
        os.utime(root / "copies" / f"{name}_big.jpg", (1_000_000, 1_000_000))  # oldest: age must not decide
        os.utime(root / "photos" / f"{name}.jpg", (2_000_000, 2_000_000))  # the byte-identical copy is newer
    shutil.copy(PHOTOS[8], root / "photos" / "distinct.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    ingest([root], location, IngestOptions(workers=1, signatures=SIGNATURES))
    return root, location


def group_paths(location, **review):
    from searcher.group_review import ReviewOptions

    result = find_duplicates(location, workers=1, review=ReviewOptions(**review))
    return result, [sorted(m.path for m in g.members) for g in result.groups]


def test_dups_keeps_the_original_and_says_why(library):
    root, location = library
    result, groups = group_paths(location)
    assert len(groups) == 2
    for group in result.groups:
        assert Path(group.keep.path).parent.name == "photos", group.keep_reason
        assert "most real detail" in group.keep_reason
    out = cli("dups", "--catalog", location.directory).stdout
    assert out.splitlines()[0].split() == ["group", "action", "score", "pixels", "bytes", "path"]
    assert out.count("kept because: most real detail") == 2


def test_dups_json_keeps_its_schema(library):
    root, location = library
    data = json.loads(cli("dups", "--catalog", location.directory, "--format", "json").stdout)
    group = data["groups"][0]
    assert {"id", "keep", "members"} <= set(group)
    assert {"path", "score"} <= set(group["members"][0]) and group["keep"] == group["members"][0]["path"]


def test_move_then_delete_then_ingest_leaves_no_stale_row(library, tmp_path):
    root, location = library
    review = tmp_path / "review"
    moved = cli("dups", "--catalog", location.directory, "--move-to", review, "--yes")
    assert moved.exit_code == 0, moved.output
    moved_files = list(review.rglob("*.jpg"))
    assert len(moved_files) == 4 and not any(p.parent.name == "photos" for p in moved_files)
    # The moved files' group is not offered again.
    assert group_paths(location)[1] == []
    shutil.rmtree(review)
    summary = ingest([root], location, IngestOptions(workers=1, signatures=SIGNATURES))
    assert summary.removed == 4
    assert not any(p.startswith(str(review)) for p in catalog_paths(location))
    hits = cli(
        "query", root / "photos" / "distinct.jpg", "--catalog", location.directory, "--format", "paths", "--top", "10"
    ).stdout.split()
    assert all(os.path.exists(p) for p in hits) and len(hits) == 3


def test_undo_restores_files_and_rows_and_the_group_comes_back(library, tmp_path):
    root, location = library
    before = {p: digest(Path(p)) for p in catalog_paths(location)}
    review = tmp_path / "review"
    cli("dups", "--catalog", location.directory, "--move-to", review, "--yes")
    log = next(review.glob("searcher-moves-*.jsonl"))
    undo = cli("undo", log)
    assert undo.exit_code == 0 and "4 restored" in undo.stdout
    assert {p: digest(Path(p)) for p in before} == before
    assert catalog_paths(location) == set(before)
    assert len(group_paths(location)[1]) == 2


def test_prune_removes_every_missing_file_and_says_how_many(library, tmp_path):
    root, location = library
    (root / "copies" / f"{PHOTOS[0].stem}_big.jpg").unlink()
    shutil.rmtree(root / "photos")
    before = cli("query", root / "copies" / f"{PHOTOS[0].stem}_same.jpg", "--catalog", location.directory, "--top", "3")
    assert "gone from disk" in before.stderr and "searcher prune" in before.stderr
    result = cli("prune", "--catalog", location.directory)
    assert result.exit_code == 0
    assert result.stdout.strip() == "4 missing file(s) removed from the catalog"
    assert catalog_paths(location) == {str(p) for p in (root / "copies").glob("*.jpg")}


def test_prune_keeps_rows_whose_folder_looks_unmounted(tmp_path):
    mount = tmp_path / "mnt" / "usb"
    (mount / "photos").mkdir(parents=True)
    shutil.copy(PHOTOS[0], mount / "photos" / "a.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    ingest([mount], location, IngestOptions(workers=1, signatures=SIGNATURES))
    shutil.rmtree(mount / "photos")  # the drive's folder vanished; the mount point is an empty folder
    assert file_state(str(mount / "photos" / "a.jpg")) == "unreachable"
    result = cli("prune", "--catalog", location.directory)
    assert "0 missing file(s) removed" in result.stdout and "1 kept" in result.stdout
    assert "looks unmounted" in result.stderr


def test_ingest_of_a_folder_that_is_gone_prunes_its_entries_with_a_warning(library, tmp_path):
    root, location = library
    shutil.rmtree(root / "copies")
    result = cli("ingest", root / "copies", "--catalog", location.directory, "--signatures", ",".join(SIGNATURES))
    assert result.exit_code == 0, result.output
    assert "does not exist (any more): its catalog entries are removed" in result.stderr
    assert result.stdout.startswith("0 added, 0 updated, 0 moved, 0 unchanged, 4 removed, 0 failed")
    with pytest.raises(UsageError, match="no such file or folder"):
        cli("ingest", tmp_path / "no-such-folder", "--catalog", location.directory)


def test_ignore_group_and_pair_survive_a_rerun(library):
    root, location = library
    result, _ = group_paths(location)
    first, second = result.groups
    assert cli("dups", "--catalog", location.directory, "--ignore", first.id).exit_code == 0
    remaining = [g.id for g in group_paths(location)[0].groups]
    assert remaining == [second.id]  # a later run, a fresh process state: the decision is in the catalog
    copy = next(m.path for m in second.members if m is not second.keep and m.sha256 != second.keep.sha256)
    assert cli("dups", "--catalog", location.directory, "--ignore-pair", second.keep.path, copy).exit_code == 0
    again = group_paths(location)[0].groups
    assert all(copy not in {m.path for m in g.members} for g in again)  # its only links were to those bytes
    assert len(again) == 1 and len(again[0].members) == 2  # the original and its byte-identical copy remain
    with pytest.raises(UsageError, match="not a group id"):
        cli("dups", "--catalog", location.directory, "--ignore", "not-an-id")


def test_dups_scoped_to_a_folder_and_reference_folder_is_never_moved(library, tmp_path):
    root, location = library
    _, scoped = group_paths(location, scope=(str(root / "copies"),))
    assert len(scoped) == 2  # every group has a member under copies/
    _, none = group_paths(location, scope=(str(root / "photos" / "nothing-here"),))
    assert none == []
    review = tmp_path / "review"
    cli(
        "dups", "--catalog", location.directory, "--keep", "largest", "--reference", root / "copies", "--move-to", review, "--yes"
    )
    assert sorted(p.name for p in (root / "copies").glob("*.jpg")) == sorted(
        f"{PHOTOS[k].stem}{s}.jpg" for k in (0, 3) for s in ("_big", "_same")
    )
    assert len(list(review.rglob("*.jpg"))) == 2  # the originals, not under the reference folder


def test_link_hard_replaces_identical_copies_and_undo_brings_separate_files_back(library):
    root, location = library
    before = {p: digest(p) for p in root.rglob("*.jpg")}
    dry = cli("dups", "--catalog", location.directory, "--link", "hard")
    assert "would link" in dry.stderr and "would leave" in dry.stderr
    done = cli("dups", "--catalog", location.directory, "--link", "hard", "--yes")
    assert done.exit_code == 0, done.output
    for k in (0, 3):
        same = root / "copies" / f"{PHOTOS[k].stem}_same.jpg"
        assert os.path.samefile(same, root / "photos" / f"{PHOTOS[k].stem}.jpg")
        assert (root / "copies" / f"{PHOTOS[k].stem}_big.jpg").stat().st_nlink == 1  # different bytes: untouched
    assert {p: digest(p) for p in root.rglob("*.jpg")} == before
    # Hard links of one file are never offered as duplicates to act on.
    result, _ = group_paths(location)
    assert all(len(g.members) == 2 for g in result.groups)
    log = next((location.directory / "logs").glob("searcher-moves-*.jsonl"))
    assert cli("undo", log).exit_code == 0
    for k in (0, 3):
        same = root / "copies" / f"{PHOTOS[k].stem}_same.jpg"
        assert same.stat().st_nlink == 1 and digest(same) == before[same]


def test_link_sym_with_move_to_sets_the_copy_aside_and_leaves_no_dangling_link(library, tmp_path):
    root, location = library
    before = {p: digest(p) for p in root.rglob("*.jpg")}
    review = tmp_path / "review"
    done = cli("dups", "--catalog", location.directory, "--link", "sym", "--move-to", review, "--yes")
    assert done.exit_code == 0, done.output
    links = [p for p in root.rglob("*.jpg") if p.is_symlink()]
    assert len(links) == 4
    assert all(p.exists() and os.path.isabs(os.readlink(p)) for p in links)  # none dangles
    assert len(list(review.rglob("*.jpg"))) == 4  # every copy's bytes kept
    log = next(review.glob("searcher-moves-*.jsonl"))
    assert cli("undo", log).exit_code == 0
    assert not any(p.is_symlink() for p in root.rglob("*.jpg"))
    assert {p: digest(p) for p in root.rglob("*.jpg")} == before


def test_ingest_exclude_globs(tmp_path):
    assert excluded("/r/a/@eaDir/x.jpg", "/r", ("@eaDir",))
    assert excluded("/r/raw/x.png", "/r", ("raw/*.png",))
    assert not excluded("/r/raw/x.jpg", "/r", ("raw/*.png",))
    assert excluded("/r/a/b.tmp.jpg", "/r", ("*.tmp.jpg",))
    root = tmp_path / "lib"
    (root / "thumbs").mkdir(parents=True)
    shutil.copy(PHOTOS[0], root / "a.jpg")
    shutil.copy(PHOTOS[1], root / "thumbs" / "b.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    result = cli("ingest", root, "--catalog", location.directory, "--signatures", "hist", "--exclude", "thumbs")
    assert result.stdout.startswith("1 added")
    assert catalog_paths(location) == {str(root / "a.jpg")}


def test_sample_data_groups_still_keep_the_photos_not_the_copies(tmp_path):
    location = CatalogLocation(tmp_path / "catalog")
    ingest([SAMPLE / "photos", SAMPLE / "copies"], location, IngestOptions(workers=1, signatures=SIGNATURES))
    result = find_duplicates(location, workers=1)
    assert result.groups and all(Path(g.keep.path).parent.name == "photos" for g in result.groups)
