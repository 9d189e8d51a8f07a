"""Symlinks and hard links are names of one file: never duplicates to act on, never left dangling."""

from __future__ import annotations

import os
import shutil

from typer.testing import CliRunner

from searcher.api import duplicates as find_duplicates
from searcher.api import move_duplicates
from searcher.catalog import CatalogLocation
from searcher.cli import app
from searcher.moves import plan_moves

from helpers import PHOTOS, copy_photos, run_ingest

runner = CliRunner()


def dups_move(location: CatalogLocation, dest) -> None:
    result = runner.invoke(
        app,
        ["dups", "--catalog", str(location.directory), "--workers", "1", "--move-to", str(dest), "--yes"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def test_a_symlink_to_a_member_is_not_its_duplicate_and_never_dangles(tmp_path):
    """D1: `d/b.jpg` and `d/a_link.jpg -> b.jpg` used to form a group that kept the link (first in
    sort order) and moved the real file, leaving the link dangling."""
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy2(PHOTOS[0], d / "b.jpg")
    os.symlink("b.jpg", d / "a_link.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([d], location)
    assert find_duplicates(location, workers=1).groups == []
    dups_move(location, tmp_path / "dest")
    assert (d / "b.jpg").is_file() and not (d / "b.jpg").is_symlink()
    assert os.path.exists(d / "a_link.jpg"), "the symlink dangles"


def test_hard_links_of_one_inode_are_never_offered_as_duplicates(tmp_path):
    """D1 (hard links): moving one name of an inode frees nothing, so they are not a group."""
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy2(PHOTOS[0], d / "b.jpg")
    os.link(d / "b.jpg", d / "c.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([d], location)
    assert find_duplicates(location, workers=1).groups == []


def test_a_group_with_a_real_copy_moves_the_copy_and_keeps_link_and_target(tmp_path):
    """D1: a symlink collapses into its target; the group is target + real copy, and whatever is
    moved, the link still resolves."""
    d, e = tmp_path / "d", tmp_path / "e"
    d.mkdir()
    e.mkdir()
    shutil.copy2(PHOTOS[0], d / "b.jpg")
    os.symlink("b.jpg", d / "a_link.jpg")
    shutil.copy2(PHOTOS[0], e / "copy.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([d, e], location)
    [group] = find_duplicates(location, workers=1).groups
    assert len(group.members) == 2
    assert str(d / "a_link.jpg") not in [m.path for m in group.members]
    dups_move(location, tmp_path / "dest")
    assert os.path.exists(d / "a_link.jpg"), "the symlink dangles"
    assert (d / "b.jpg").is_file()
    assert len(list((tmp_path / "dest").rglob("*.jpg"))) == 1


def test_moves_refuse_a_source_that_is_the_kept_file_under_another_name(tmp_path):
    """D1 (moves): even a group planned from stale data never moves a file the kept copy resolves to."""
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy2(PHOTOS[0], d / "b.jpg")
    shutil.copy2(PHOTOS[0], d / "c.jpg")
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([d], location)
    [group] = find_duplicates(location, workers=1).groups
    other = group.members[1].path
    # After the scan, the other copy is replaced by a symlink to the kept one (same size, mtime).
    stat = os.stat(other)
    os.unlink(other)
    os.symlink(group.keep.path, other)
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)
    groups = [group]
    outcome = move_duplicates(groups, plan_moves(groups, tmp_path / "dest"), tmp_path / "log.jsonl", location)
    assert outcome.moved == []
    assert os.path.exists(other) and os.path.isfile(group.keep.path)


def test_a_folder_ingested_again_through_a_symlinked_path_keeps_every_file(tmp_path):
    """D2: `ln -s real alias`; ingest both; dups used to move real/'s files out as duplicates of
    themselves (real/ ended with 0 files)."""
    real = tmp_path / "real"
    copy_photos(real, 4)
    alias = tmp_path / "alias"
    os.symlink(real, alias)
    location = CatalogLocation(tmp_path / "catalog")
    warnings: list[str] = []

    class Reporter:
        def start(self, total): ...
        def advance(self, n=1): ...
        def warn(self, message):
            warnings.append(message)

        def failed(self, path, reason): ...

    run_ingest([real], location)
    second = run_ingest([alias], location, Reporter())
    assert second.counts()["added"] == 0 and second.counts()["unchanged"] == 4
    assert any("symbolic link" in w and str(real) in w for w in warnings), warnings
    dups_move(location, tmp_path / "dest")
    assert sorted(p.name for p in real.iterdir()) == sorted(p.name for p in PHOTOS[:4])
