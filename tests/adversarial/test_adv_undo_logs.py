"""Undo with logs that are not what `dups --move-to --yes` wrote (D19), with one bad line among good
ones (D23), and with an original folder that is now a file (D20): one-line reasons, and every
file that can be restored is restored and reported."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import PHOTOS, assert_no_traceback, assert_one_line_error, cli

pytestmark = pytest.mark.slow


def _entry(source, target, size, **extra):
    return {
        "format": 1,
        "op": "move",
        "group": "g1",
        "from": str(source),
        "to": str(target),
        "size": size,
        "catalog": None,
        **extra,
    }


@pytest.fixture
def moved(tmp_path):
    """Three files 'moved' (as the log says) from orig/ to dest/g1/, and their log lines."""
    orig, dest = tmp_path / "orig", tmp_path / "dest" / "g1"
    orig.mkdir()
    dest.mkdir(parents=True)
    lines = []
    for photo in PHOTOS[:3]:
        shutil.copy(photo, dest / photo.name)
        lines.append(_entry(orig / photo.name, dest / photo.name, photo.stat().st_size))
    return orig, dest, lines


def _write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    "content",
    [PHOTOS[0].read_bytes()[:4000], b"[1,2]\n", b'"just a string"\n', b"\x00\x01\x02\n", b'{"op": "move"}\n'],
    ids=["jpeg", "list", "string", "binary", "no-fields"],
)
def test_a_log_that_is_not_a_move_log_is_one_line(tmp_path, content):
    """D19: a JPEG given as log raised UnicodeDecodeError; `[1,2]` an AttributeError."""
    log = tmp_path / "log.jsonl"
    log.write_bytes(content)
    result = cli("undo", log)
    assert_one_line_error(result, str(log))


@pytest.mark.parametrize("field,value", [("from", None), ("to", None), ("size", "big"), ("from", 7), ("to", ["a"])])
def test_a_line_with_bad_fields_is_reported_and_the_rest_restored(moved, tmp_path, field, value):
    """D19 + D23: `"from": null` raised TypeError and stopped the undo; one bad line now skips itself."""
    orig, dest, lines = moved
    bad = dict(lines[1], **{field: value})
    log = _write(tmp_path / "log.jsonl", [lines[0], bad, lines[2]])
    result = cli("undo", log)
    assert_no_traceback(result)
    assert result.returncode == 1  # something could not be undone
    assert (orig / PHOTOS[0].name).exists() and (orig / PHOTOS[2].name).exists()
    assert (dest / PHOTOS[1].name).exists()  # the file of the bad line stays where it is
    assert f"{log}:2" in result.stderr
    assert "2 restored" in result.stdout


def test_a_garbage_line_among_good_ones_does_not_block_the_undo(moved, tmp_path):
    """D23: one undecodable line made undo refuse the whole log."""
    orig, dest, lines = moved
    log = _write(tmp_path / "log.jsonl", [lines[0], "{not json", lines[1], lines[2]])
    result = cli("undo", log)
    assert_no_traceback(result)
    assert all((orig / p.name).exists() for p in PHOTOS[:3])
    assert f"{log}:2" in result.stderr
    assert "3 restored" in result.stdout


def test_undo_when_the_original_folder_is_now_a_file(moved, tmp_path):
    """D20: a file where the original folder was stopped the undo half-way, a restored file unreported."""
    orig, dest, lines = moved
    other = tmp_path / "other"
    other.mkdir()
    lines.append(_entry(other / "moved-here.jpg", dest / "moved-here.jpg", PHOTOS[3].stat().st_size))
    shutil.copy(PHOTOS[3], dest / "moved-here.jpg")
    shutil.rmtree(orig)
    orig.write_text("I am a file now")
    log = _write(tmp_path / "log.jsonl", lines)
    result = cli("undo", log)
    assert_no_traceback(result)
    assert (other / "moved-here.jpg").exists()
    assert f"restored {dest / 'moved-here.jpg'} -> {other / 'moved-here.jpg'}" in result.stderr
    assert all((dest / p.name).exists() for p in PHOTOS[:3])  # left where they are, said so
    assert result.stderr.count("not restored") == 3
    assert "1 restored, 3 skipped" in result.stdout
    assert orig.read_text() == "I am a file now"


def test_undo_of_a_log_that_is_a_folder_or_missing(tmp_path):
    """D19: the log argument is a folder, or absent."""
    assert_one_line_error(cli("undo", tmp_path), code=2)
    assert_one_line_error(cli("undo", tmp_path / "nope.jsonl"), "nope.jsonl")
    os.chmod(tmp_path, 0o755)
