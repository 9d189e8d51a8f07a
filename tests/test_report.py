"""HTML reports: self-contained pages of near-duplicate groups and of query results."""

import base64
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from searcher.dups import DupsResult
from searcher.keep import Group, Member
from searcher.query import Hit, QueryResult
from searcher.report import THUMB_SIDE, write_dups_html, write_query_html

from conftest import PHOTOS, SAMPLE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def member(path, score, image_id):
    return Member(
        image_id=image_id,
        path=str(path),
        sha256=f"{image_id:064x}",
        width=640,
        height=427,
        size=path.stat().st_size,
        mtime_ns=0,
        score=score,
    )


@pytest.fixture
def dups_result():
    coffee = [SAMPLE / "photos" / "skimage_coffee.jpg", *sorted((SAMPLE / "copies").glob("skimage_coffee__*"))]
    chelsea = [SAMPLE / "photos" / "skimage_chelsea.jpg", SAMPLE / "copies" / "skimage_chelsea__flip.jpg"]
    groups = []
    for n, paths in enumerate((coffee, chelsea)):
        members = [member(p, 0.9 - 0.1 * k, 10 * n + k) for k, p in enumerate(paths)]
        groups.append(Group(id=f"g{n:012d}", keep=members[0], keep_reason="largest resolution (test)", members=members))
    return DupsResult(groups=groups, images=48)


def embedded_images(page: str) -> list[np.ndarray]:
    uris = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    return [cv2.imdecode(np.frombuffer(base64.b64decode(u), np.uint8), cv2.IMREAD_COLOR) for u in uris]


def test_dups_page_embeds_a_thumbnail_of_every_member_and_nothing_external(dups_result, tmp_path):
    out = tmp_path / "dups.html"
    assert write_dups_html(dups_result, out) == 2
    page = out.read_text()
    thumbs = embedded_images(page)
    assert len(thumbs) == sum(len(g.members) for g in dups_result.groups)
    assert all(t is not None and max(t.shape[:2]) == THUMB_SIDE for t in thumbs)
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)  # self-contained
    for group in dups_result.groups:
        assert f'id="{group.id}"' in page and "largest resolution (test)" in page
    assert page.count(">KEEP<") == 2 and 'score <span class="score">0.800</span>' in page


def test_a_missing_file_shows_as_a_box_saying_why(dups_result, tmp_path):
    dups_result.groups[1].members[1].path = str(tmp_path / "gone.jpg")
    out = tmp_path / "dups.html"
    write_dups_html(dups_result, out)
    assert 'class="missing">not a file here<' in out.read_text()


def test_dups_page_stops_at_max_groups_and_max_members(dups_result, tmp_path):
    out = tmp_path / "dups.html"
    assert write_dups_html(dups_result, out, max_groups=1, max_members=2) == 1
    page = out.read_text()
    assert "the first 1 shown" in page and len(embedded_images(page)) == 2
    assert f"and {len(dups_result.groups[0].members) - 2} more" in page


def test_query_page_shows_the_query_and_its_results_with_scores(tmp_path):
    results = [
        QueryResult(
            query=str(PHOTOS[0]),
            hits=[
                Hit(1, str(PHOTOS[0]), 0.99, {"fused": 0.98, "orb_inliers": 250.0}),
                Hit(2, str(PHOTOS[1]), 0.31, {"fused": 0.62, "orb_inliers": 3.0}),
            ],
        ),
        QueryResult(query=str(tmp_path / "bad.jpg"), error="not a recognised image format"),
    ]
    out = tmp_path / "query.html"
    write_query_html(results, out)
    page = out.read_text()
    assert len(embedded_images(page)) == 3  # the first query and its two results
    assert page.count(">QUERY<") == 2 and "#1 &middot; score" in page and 'score <span class="score">0.310' in page
    assert "orb_inliers&nbsp;250" in page and "not a recognised image format" in page


def test_query_page_from_a_real_query(sample_catalog, tmp_path):
    from searcher.api import query_paths

    results = query_paths([str(PHOTOS[2])], sample_catalog, top=3)
    out = tmp_path / "q.html"
    write_query_html(results, out)
    assert len(embedded_images(out.read_text())) == 4


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_dups_page_renders_in_a_headless_browser(dups_result, tmp_path):
    page, shot = tmp_path / "dups.html", tmp_path / "shot.png"
    write_dups_html(dups_result, page)
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (900, 1280)
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[:, :, 1]
    assert (saturation > 60).mean() > 0.10  # the photographs are on screen, not just text
