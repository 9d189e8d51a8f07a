"""searcher serve: every endpoint through FastAPI's test client, bad input, traversal, token, errors."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

import searcher

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'searcher[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import SAMPLE, make_library  # noqa: E402
from test_video import two_scene_frames, write_video  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from searcher.cli import app as cli_app  # noqa: E402
from searcher.server.app import create_app  # noqa: E402
from searcher.server.service import Service  # noqa: E402
from searcher.server.warm import WarmCatalog  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, service, library folder, catalog location, tmp root) over one ingested sample library."""
    root = tmp_path_factory.mktemp("served")
    library, location = make_library(root)
    service = Service(location, move_to=root / "moved")
    client = TestClient(create_app(service, max_upload_mb=2), raise_server_exceptions=False)
    yield client, service, library, location, root
    service.close(wait_s=300)


def get_groups(client, url="/api/groups"):
    """GET a groups URL; while a job finds the groups (202), wait for it and ask again."""
    response = client.get(url)
    if response.status_code == 202:
        job = response.json()["job"]
        assert job["kind"] == "dups" and response.json()["computing"]
        assert client.app.state.service.jobs.wait(job["id"], timeout=300).state == "done"
        response = client.get(url.replace("refresh=true", "refresh=false"))  # asking again must not restart it
    assert response.status_code == 200, response.text
    return response.json()


def photo(library, name="mate_Aqua.jpg"):
    return library / "photos" / name


def cli_json(*args):
    result = runner.invoke(cli_app, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def one_line_error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# ---- the interface the issue fixes ----


def test_info_is_what_searcher_info_prints(served):
    client, _, _, location, _ = served
    expected = json.loads(cli_json("info", "--format", "json", "--catalog", location.directory))
    got = client.get("/api/info").json()
    assert {k: v for k, v in got.items() if k != "disk"} == {k: v for k, v in expected.items() if k != "disk"}


def test_query_upload_is_one_line_of_query_jsonl_named_after_the_upload(served):
    client, _, library, location, _ = served
    path = library / "copies" / "mate_Aqua__flip.jpg"
    line = json.loads(cli_json("query", path, "--top", "5", "--format", "jsonl", "--catalog", location.directory).splitlines()[0])
    response = client.post("/api/query?top=5&metric=fused", files={"file": ("holiday <b>.jpg", path.read_bytes(), "image/jpeg")})
    assert response.status_code == 200
    got = response.json()
    assert got["query"] == "holiday <b>.jpg"
    assert [(h["rank"], h["path"], h["id"]) for h in got["results"]] == [(h["rank"], h["path"], h["id"]) for h in line["results"]]
    for mine, theirs in zip(got["results"], line["results"]):
        assert set(mine) == set(theirs) and mine["score"] == pytest.approx(theirs["score"], abs=1e-4)
    assert got["results"][0]["path"] in (str(path), str(photo(library)))


def test_query_by_id_and_by_metric(served):
    client, _, library, _, _ = served
    first = client.post("/api/query?top=1", files={"file": ("a.jpg", photo(library).read_bytes())}).json()["results"][0]
    similar = client.get(f"/api/images/{first['id']}/similar?top=3&metric=mse").json()
    assert similar["query"] == first["path"] and similar["results"][0]["id"] == first["id"]
    assert one_line_error(client.get(f"/api/images/{first['id']}/similar?metric=nonsense"), 422)
    chisqr = client.get(f"/api/images/{first['id']}/similar?top=2&metric=hist&hist_method=chisqr").json()["results"]
    assert "hist_chisqr_distance" in chisqr[0]["scores"] and chisqr[0]["id"] == first["id"]
    assert "not in this catalog" in one_line_error(client.get(f"/api/images/{first['id']}/similar?metric=ae"), 400)


# ---- bad uploads: 4xx with one line, never 500 ----


def png_header_claiming(width, height) -> bytes:
    """A small real PNG whose header is patched to claim width x height pixels (a decompression bomb's shape)."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    "name, data, status, words",
    [
        ("empty.jpg", b"", 422, "empty"),
        ("notes.txt", b"just some text, not an image", 422, "not a recognised image"),
        ("bomb.png", png_header_claiming(40000, 40000), 422, "megapixel"),
        ("huge.jpg", b"\xff\xd8" + b"\x00" * (3 * 1024 * 1024), 413, "limit"),
    ],
)
def test_bad_uploads_get_4xx_and_one_line(served, name, data, status, words):
    client = served[0]
    message = one_line_error(client.post("/api/query", files={"file": (name, data)}), status)
    assert words in message


def test_truncated_upload(served):
    client, _, library, _, _ = served
    data = photo(library).read_bytes()
    assert "truncated" in one_line_error(client.post("/api/query", files={"file": ("cut.jpg", data[: len(data) // 3])}), 422)


def test_missing_file_field_and_bad_parameters(served):
    client = served[0]
    one_line_error(client.post("/api/query"), 422)
    one_line_error(client.post("/api/query?top=0", files={"file": ("a.jpg", b"x")}), 422)
    one_line_error(client.post("/api/query?top=abc", files={"file": ("a.jpg", b"x")}), 422)


@pytest.mark.parametrize(
    "url",
    [
        "/api/images/..%2F..%2Fetc%2Fpasswd/original",
        "/api/images/%2Fetc%2Fpasswd/thumbnail",
        "/api/images/../../etc/passwd",
        "/static/../../../etc/passwd",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/%2e%2e/searcher/server/app.py",
        "/api/images/1e3/original",
        "/api/images/-1/original",
        "/api/images/99999999/original",
        "/api/groups/..%2F..%2Fetc/move",
        "/api/jobs/..%2Fx",
    ],
)
def test_path_traversal_attempts_get_404(served, url):
    client = served[0]
    response = client.get(url) if not url.endswith("/move") else client.post(url, json={})
    assert response.status_code == 404, (url, response.text)
    assert "root:" not in response.text


# ---- images by catalog id ----


def test_thumbnail_and_original_by_id(served):
    client, _, library, _, _ = served
    hit = client.post("/api/query?top=1", files={"file": ("a.jpg", photo(library).read_bytes())}).json()["results"][0]
    thumb = client.get(f"/api/images/{hit['id']}/thumbnail?size=128")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(thumb.content, "uint8"), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == 128
    original = client.get(f"/api/images/{hit['id']}/original")
    assert original.status_code == 200 and original.content == photo(library).read_bytes()
    assert "size must be one of" in one_line_error(client.get(f"/api/images/{hit['id']}/thumbnail?size=5000"), 400)
    entry = client.get(f"/api/images/{hit['id']}").json()
    assert entry["path"] == hit["path"] and entry["kind"] == "image" and entry["frame"] is None


def test_frames_and_person_crops_are_served_as_their_picture(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "two scenes.avi", two_scene_frames())
    with searcher.Catalog.open(tmp_path / "catalog") as catalog:
        options = searcher.IngestOptions(workers=1, signatures=("hist", "mse", "orb"), sampling=searcher.Sampling(every=10))
        catalog.ingest([tmp_path / "videos"], options)
        location = catalog.location
    service = Service(location, move_to=tmp_path / "moved")
    try:
        client = TestClient(create_app(service), raise_server_exceptions=False)
        frame = cv2.imencode(".png", two_scene_frames()[25])[1].tobytes()
        hit = client.post("/api/query?top=1", files={"file": ("frame.png", frame)}).json()["results"][0]
        assert hit["path"].endswith("two scenes.avi") and hit["frame"] in (20, 30)
        png = client.get(f"/api/images/{hit['id']}/original")
        assert png.headers["content-type"] == "image/png"
        assert cv2.imdecode(np.frombuffer(png.content, "uint8"), cv2.IMREAD_COLOR).shape == (240, 320, 3)
        assert client.get(f"/api/images/{hit['id']}/thumbnail?size=64").status_code == 200
        similar = client.get(f"/api/images/{hit['id']}/similar?top=1").json()
        assert similar["query"].endswith(f"#frame={hit['frame']}") and similar["results"][0]["id"] == hit["id"]
    finally:
        service.close(wait_s=300)


# ---- compare ----


def test_compare_two_ids_and_two_uploads(served):
    client, _, library, _, _ = served
    a = client.post("/api/query?top=2", files={"file": ("a.jpg", photo(library).read_bytes())}).json()["results"]
    by_id = client.get(f"/api/compare?a={a[0]['id']}&b={a[1]['id']}").json()
    assert by_id["near_duplicate"] is True and by_id["score"] >= 0.5 and "near duplicate" in by_id["explanation"]
    assert base64.b64decode(by_id["drawing"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    other = photo(library, "skimage_coffee.jpg").read_bytes()
    uploads = client.post("/api/compare", files={"a": ("x.jpg", photo(library).read_bytes()), "b": ("y.jpg", other)}).json()
    assert uploads["near_duplicate"] is False and uploads["a"] == "x.jpg"
    one_line_error(client.post("/api/compare", files={"a": ("x.jpg", b"nope"), "b": ("y.jpg", other)}), 422)
    one_line_error(client.get("/api/compare?a=1&b=999999"), 404)


# ---- groups, ignore, move, undo ----


def test_groups_are_found_by_a_background_job_then_served_from_the_cache(served):
    _, _, _, location, root = served
    service = Service(location, move_to=root / "moved")
    try:
        client = TestClient(create_app(service), raise_server_exceptions=False)
        first = client.get("/api/groups")
        assert first.status_code == 202 and first.json()["job"]["kind"] == "dups"
        again = client.get("/api/groups")  # asked again while it runs: the same job, not a second one
        assert again.status_code in (200, 202) and len(service.jobs.all()) == 1
        done = service.jobs.wait(first.json()["job"]["id"], timeout=300)
        assert done.state == "done" and done.summary["groups"] >= 5
        status = client.get(f"/api/jobs/{done.id}").json()
        assert status["stage"] and status["progress"] == 1.0
        assert client.get("/api/groups").status_code == 200
        assert client.get("/api/groups?threshold=0.9").status_code == 202  # another threshold: another job
        service.jobs.wait(service.jobs.all()[-1].id, timeout=300)
        assert client.get("/api/groups?threshold=0.9").json()["total"] <= client.get("/api/groups").json()["total"]
    finally:
        service.close(wait_s=300)


def test_groups_page_by_page(served):
    client = served[0]
    everything = get_groups(client, "/api/groups?limit=200")
    assert everything["total"] >= 5 and len(everything["groups"]) == everything["total"]
    first, second = get_groups(client, "/api/groups?offset=0&limit=2"), get_groups(client, "/api/groups?offset=2&limit=2")
    assert [g["id"] for g in first["groups"] + second["groups"]] == [g["id"] for g in everything["groups"][:4]]
    group = everything["groups"][0]
    assert client.get(f"/api/groups/{group['id']}").json() == group
    assert sum(m["keep"] for m in group["members"]) == 1 and group["members"][0]["keep"]
    one_line_error(client.get("/api/groups/gdoesnotexist"), 404)
    one_line_error(client.get("/api/groups?threshold=0"), 422)


def test_ignored_group_is_persisted_and_left_out_by_searcher_dups(served):
    client, service, _, location, _ = served
    group = get_groups(client, "/api/groups")["groups"][0]
    assert client.post(f"/api/groups/{group['id']}/ignore").json() == {"group": group["id"], "ignored": True}
    assert group["id"] not in [g["id"] for g in get_groups(client, "/api/groups?limit=200")["groups"]]
    assert get_groups(client, "/api/groups")["ignored"] == 1
    dups = json.loads(cli_json("dups", "--format", "json", "--catalog", location.directory))
    assert group["id"] not in [g["id"] for g in dups["groups"]]
    fresh = Service(location)  # a restarted server remembers it
    try:
        fresh_groups = get_groups(TestClient(create_app(fresh)), "/api/groups?limit=200")["groups"]
        assert group["id"] not in [g["id"] for g in fresh_groups]
    finally:
        fresh.close(wait_s=300)
    assert client.delete(f"/api/groups/{group['id']}/ignore").json()["ignored"] is False
    assert group["id"] in [g["id"] for g in get_groups(client, "/api/groups?limit=200")["groups"]]
    one_line_error(client.delete(f"/api/groups/{group['id']}/ignore"), 404)


def test_a_member_marked_not_a_duplicate_of_the_kept_copy_leaves_the_group(tmp_path):
    folder = tmp_path / "pair"
    folder.mkdir()
    original = cv2.imread(str(SAMPLE / "photos" / "mate_Aqua.jpg"))
    cv2.imwrite(str(folder / "original.png"), original)
    cv2.imwrite(str(folder / "smaller.jpg"), cv2.resize(original, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(folder / "other.jpg"), cv2.imread(str(SAMPLE / "photos" / "skimage_coffee.jpg")))
    with searcher.Catalog.open(tmp_path / "catalog") as catalog:
        catalog.ingest([folder], searcher.IngestOptions(workers=1, signatures=("hist", "mse", "orb")))
        location = catalog.location
    service = Service(location, move_to=tmp_path / "moved")
    try:
        client = TestClient(create_app(service), raise_server_exceptions=False)
        (pair,) = get_groups(client, "/api/groups")["groups"]
        keep, member = pair["members"]
        assert keep["path"].endswith("original.png") and member["path"].endswith("smaller.jpg")
        assert "kept copy" in one_line_error(client.post(f"/api/groups/{pair['id']}/members/{keep['id']}/ignore"), 400)
        one_line_error(client.post(f"/api/groups/{pair['id']}/members/999999/ignore"), 404)
        assert client.post(f"/api/groups/{pair['id']}/members/{member['id']}/ignore").json()["ignored"] is True
        assert get_groups(client, "/api/groups")["groups"] == []  # the reviewer's word, at once
        assert get_groups(client, "/api/groups?refresh=true")["groups"] == []  # and found again: their only link is gone
        dups = json.loads(cli_json("dups", "--format", "json", "--catalog", location.directory))
        assert dups["groups"] == []
    finally:
        service.close(wait_s=300)


def test_move_is_a_dry_run_by_default_then_moves_and_undo_restores(served):
    client, service, library, _, root = served
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    group = get_groups(client, "/api/groups")["groups"][0]
    keep = group["members"][-1]  # the reviewer keeps another copy than the suggested one
    plan = client.post(f"/api/groups/{group['id']}/move", json={"keep": keep["id"]}).json()
    assert plan["dry_run"] is True and plan["log"] is None and plan["keep"] == keep["path"]
    assert len(plan["moves"]) == len(group["members"]) - 1 and keep["path"] not in [m["from"] for m in plan["moves"]]
    assert {p: p.read_bytes() for p in library.rglob("*") if p.is_file()} == before  # nothing moved
    done = client.post(f"/api/groups/{group['id']}/move", json={"keep": keep["id"], "dry_run": False}).json()
    assert done["moved"] == len(plan["moves"]) and done["log"] in client.get("/api/moves").json()["logs"]
    for move in done["moves"]:
        assert not (library / move["from"]).exists() and (root / "moved" / group["id"]).is_dir()
    assert group["id"] not in [g["id"] for g in get_groups(client, "/api/groups?limit=200")["groups"]]  # decided
    other = get_groups(client, "/api/groups")["groups"][0]
    one_line_error(client.post(f"/api/groups/{other['id']}/move", json={"keep": 999999}), 400)
    undone = client.post("/api/undo", json={"log": done["log"]}).json()
    assert len(undone["restored"]) == done["moved"]
    assert {p: p.read_bytes() for p in library.rglob("*") if p.is_file()} == before
    one_line_error(client.post("/api/undo", json={"log": "../../etc/passwd"}), 404)
    one_line_error(client.post("/api/undo", json={}), 422)


# ---- ingest job, and queries while it runs ----


def test_ingest_job_with_progress_while_queries_keep_answering(served):
    client, service, library, _, root = served
    extra = root / "extra"
    extra.mkdir()
    source = cv2.imread(str(photo(library, "skimage_coffee.jpg")))
    for k in range(24):  # enough files for the job to take a moment
        cv2.imwrite(str(extra / f"coffee {k} ü.jpg"), cv2.resize(source, (300 + 4 * k, 200 + 3 * k)))
    query = photo(library).read_bytes()
    job = client.post("/api/ingest", json={"path": str(extra), "workers": 1})
    assert job.status_code == 202 and job.json()["state"] in ("queued", "running")
    statuses, stop = [], threading.Event()

    def ask():
        while not stop.is_set():
            statuses.append(client.post("/api/query?top=3", files={"file": ("q.jpg", query)}).status_code)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(ask)
        finished = service.jobs.wait(job.json()["id"], timeout=120)
        stop.set()
    assert finished.state == "done", finished.error
    status = client.get(f"/api/jobs/{finished.id}").json()
    assert status["summary"]["added"] == 24 and status["done"] == status["total"] == 24 and status["progress"] == 1.0
    assert statuses and set(statuses) == {200}
    hits = client.post("/api/query?top=5", files={"file": ("c.jpg", (extra / "coffee 3 ü.jpg").read_bytes())}).json()["results"]
    assert hits[0]["path"].startswith(str(extra))  # the swapped-in indexes know the new files
    assert client.get("/api/jobs").json()["jobs"][-1]["id"] == finished.id
    one_line_error(client.post("/api/ingest", json={"path": "relative/folder"}), 400)
    one_line_error(client.get("/api/jobs/j999"), 404)


def test_a_second_ingest_while_one_runs_is_refused(served):
    client, service, _, _, root = served
    slow = threading.Event()
    service.jobs.start("ingest", "test", lambda reporter: slow.wait(10) and {})
    try:
        assert "still running" in one_line_error(client.post("/api/ingest", json={"path": str(root)}), 409)
    finally:
        slow.set()


def test_a_retired_catalog_handle_closes_only_after_its_last_reader():
    closed = []
    opened = iter(range(10))
    warm = WarmCatalog(lambda: next(opened), closed.append)
    with warm.use() as first:
        warm.reload()
        assert closed == []  # still being read
        with warm.use() as second:
            assert (first, second) == (0, 1)
    assert closed == [0]
    warm.close()
    assert closed == [0, 1]


# ---- guards and errors ----


def test_token_required_on_every_request_bearer_or_cookie(served):
    _, service, _, _, _ = served
    client = TestClient(create_app(service, token="s3cret"), raise_server_exceptions=False)
    for url in ("/", "/api/info", "/openapi.json", "/static/app.js", "/api/images/1/thumbnail"):
        assert client.get(url).status_code == 401, url
    assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/?token=wrong").status_code == 401
    landing = client.get("/?token=s3cret", follow_redirects=False)
    assert (
        landing.status_code == 303 and landing.headers["location"] == "/" and "httponly" in landing.headers["set-cookie"].lower()
    )
    client.cookies.set("searcher_token", "s3cret")
    assert client.get("/").status_code == 200 and client.get("/api/info").status_code == 200


def test_loopback_server_refuses_other_host_names(served):
    _, service, _, _, _ = served
    app = create_app(service, loopback_only=True)
    assert TestClient(app, base_url="http://evil.example").get("/api/info").status_code == 403
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://localhost:8765").get("/api/info").status_code == 200


def test_unexpected_errors_are_one_line_500_without_internals(served, monkeypatch):
    client, service, _, _, _ = served
    monkeypatch.setattr(service, "info", lambda: (_ for _ in ()).throw(RuntimeError("secret /etc/shadow detail")))
    message = one_line_error(client.get("/api/info"), 500)
    assert "secret" not in message and "shadow" not in message


def test_page_and_openapi_schema(served):
    client = served[0]
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self': no inline script
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/app.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/info",
        "/api/query",
        "/api/images/{image_id}/thumbnail",
        "/api/compare",
        "/api/groups",
        "/api/groups/{group_id}/ignore",
        "/api/groups/{group_id}/move",
        "/api/undo",
        "/api/ingest",
        "/api/jobs/{job_id}",
    ):
        assert path in paths


def test_serve_refuses_a_public_host_without_a_token(tmp_path):
    command = [sys.executable, "-m", "searcher", "serve", "--catalog", str(tmp_path / "c"), "--host", "0.0.0.0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, "SEARCHER_TOKEN": ""})
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --host 0.0.0.0 is not a loopback address") and "Traceback" not in result.stderr


def test_serve_without_the_serve_extra_names_it(tmp_path):
    script = "import sys; sys.modules['uvicorn'] = None; sys.argv = ['searcher', 'serve', '--catalog', sys.argv[1]]; from searcher.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "c")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "pip install 'searcher[serve]'" in result.stderr and "uvicorn" in result.stderr
