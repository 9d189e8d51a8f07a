"""The ASGI app of `searcher serve`: JSON API (OpenAPI schema at /openapi.json) and the web page.

Routes translate HTTP to Service calls and back, nothing more. Every error is one line of JSON,
{"error": "..."}: the user's mistakes are 4xx, an unexpected failure is a 500 whose body names no
internals (the traceback goes to the server's stderr).
"""

from __future__ import annotations

import hmac
import re
import sys
import traceback
from importlib import resources
from typing import Literal, Optional
from urllib.parse import urlencode

from fastapi import Body, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from searcher.errors import CatalogError, ImageError, SearcherError, UsageError
from searcher.features.histogram import METHODS as HIST_METHODS
from searcher.query import METRICS
from searcher.server.groups import Computing
from searcher.server.jobs import Busy
from searcher.server.service import THUMB_SIDES, NotFound, Service

COOKIE = "searcher_token"
DEFAULT_MAX_UPLOAD_MB = 50.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# The page loads only its own script and styles; pictures come from the API, data: (the match
# drawing) and blob: (the preview of an upload). Hostile file names can then never run script.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
Metric = Literal[tuple(METRICS)]  # every metric a query knows; one the catalog lacks is a 400 naming those it has
HistMethod = Literal[tuple(HIST_METHODS)]  # cv2.compareHist methods, as --hist-method


class _TooLarge(UsageError):
    """An upload over the size limit."""


# The first matching class gives the status of a SearcherError.
_STATUS = (
    (_TooLarge, 413),
    (NotFound, 404),
    (Busy, 409),
    (ImageError, 422),
    (UsageError, 400),
    (CatalogError, 503),
    (SearcherError, 400),
)


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


class MoveRequest(BaseModel):
    keep: Optional[int] = Field(None, description="Catalog id of the member to keep (default: the suggested one).")
    dry_run: bool = Field(True, description="Only say what would move.")
    threshold: float = Field(0.5, gt=0, le=1)


class UndoRequest(BaseModel):
    log: str = Field(..., description="Name of a move log, as returned by a move.", max_length=200)


class IngestRequest(BaseModel):
    path: str = Field(..., description="Absolute path of a folder on the server.", min_length=1, max_length=4096)
    workers: int = Field(0, ge=0, le=64, description="Extraction processes (0: one per core).")


def create_app(
    service: Service, token: str | None = None, loopback_only: bool = False, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
) -> FastAPI:
    """The app over an open Service. `token`: required on every request (Bearer header or the cookie
    set by /?token=); `loopback_only`: refuse requests whose Host is not a loopback name (DNS rebinding)."""
    from searcher import __version__

    app = FastAPI(title="searcher", version=__version__, description="Near-duplicate image search: JSON API of `searcher serve`.")
    app.state.service = service
    max_bytes = int(max_upload_mb * 1024 * 1024)
    _add_guards(app, token, loopback_only, max_bytes)
    _add_error_handlers(app)
    _add_page_routes(app)
    _add_search_routes(app, service, max_bytes)
    _add_review_routes(app, service)
    _add_job_routes(app, service)
    return app


def _add_guards(app: FastAPI, token: str | None, loopback_only: bool, max_bytes: int) -> None:
    expected = token.encode() if token else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = _host_name(request.headers.get("host", ""))
        if loopback_only and host not in LOOPBACK_HOSTS:
            return error(403, f"this server answers on loopback names only, not {host!r}; use --token to serve other hosts")
        if expected is not None:
            given = _bearer(request) or request.cookies.get(COOKIE, "")
            if request.url.path == "/" and "token" in request.query_params:
                if hmac.compare_digest(request.query_params["token"].encode(), expected):
                    return _set_cookie_and_redirect(request, token)
                return error(401, "wrong token")
            if not hmac.compare_digest(given.encode(), expected):
                return error(
                    401,
                    "a token is required: Authorization: Bearer TOKEN, or open /?token=TOKEN once",
                    {"WWW-Authenticate": "Bearer"},
                )
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes + 64 * 1024:
            return error(413, f"request too large: the limit is {max_bytes // (1024 * 1024)} MB")
        response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/redoc")):  # FastAPI's schema browsers load their scripts from a CDN
            response.headers.update(SECURITY_HEADERS)
        return response


def _host_name(header: str) -> str:
    """The name of a Host header without its port: 'localhost:8765' -> 'localhost', '[::1]:80' -> '[::1]'."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _set_cookie_and_redirect(request: Request, token: str) -> Response:
    rest = {k: v for k, v in request.query_params.items() if k != "token"}
    response = RedirectResponse("/" + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Computing)
    async def computing(request: Request, e: Computing):
        return JSONResponse({"computing": str(e), "job": e.job.to_dict()}, status_code=202)

    @app.exception_handler(SearcherError)
    async def searcher_error(request: Request, e: SearcherError):
        status = next(code for kind, code in _STATUS if isinstance(e, kind))
        return error(status, str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return error(e.status_code, e.detail if isinstance(e.detail, str) else "error", getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        traceback.print_exception(e, file=sys.stderr)
        return error(500, f"internal error ({type(e).__name__}); the server log has the details")


def _add_page_routes(app: FastAPI) -> None:
    static = resources.files("searcher.server") / "static"

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")


def _image_id(text: str) -> int:
    """A catalog id from a path segment; anything else (e.g. '..%2Fetc') is simply not found."""
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise NotFound(f"no image with id {text[:40]!r}")
    return int(text)


def _group_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{1,64}", text):
        raise NotFound(f"no group {text[:40]!r}")
    return text


def _read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _TooLarge(f"{upload.filename or 'upload'}: larger than the {max_bytes // (1024 * 1024)} MB upload limit")
    if not data:
        raise ImageError(f"{upload.filename or 'upload'}: empty file")
    return data


def _add_search_routes(app: FastAPI, service: Service, max_bytes: int) -> None:
    @app.get("/api/info", tags=["catalog"], summary="What `searcher info --format json` prints")
    def info() -> dict:
        return service.info()

    @app.get("/api/settings", tags=["catalog"], summary="Version, verdict threshold, metrics of this catalog, move folder")
    def settings() -> dict:
        return service.settings()

    @app.post("/api/query", tags=["search"], summary="Query by upload: one line of `searcher query --format jsonl`")
    def query(
        file: UploadFile = File(...),
        top: int = Query(10, ge=1, le=1000),
        metric: Metric = "fused",
        hist_method: HistMethod = "bhattacharyya",
    ) -> dict:
        return service.query_upload(_read_upload(file, max_bytes), file.filename or "upload", top, metric, hist_method)

    @app.get("/api/images/{image_id}", tags=["images"], summary="One catalog entry: file, or frame/crop of a video")
    def image(image_id: str) -> dict:
        entry = service.entry(_image_id(image_id))
        return entry.__dict__ | {"box": list(entry.box) if entry.box else None}

    @app.get("/api/images/{image_id}/similar", tags=["search"], summary="Query by catalog id (same object as /api/query)")
    def similar(
        image_id: str, top: int = Query(10, ge=1, le=1000), metric: Metric = "fused", hist_method: HistMethod = "bhattacharyya"
    ) -> dict:
        return service.query_entry(_image_id(image_id), top, metric, hist_method)

    @app.get(
        "/api/images/{image_id}/thumbnail",
        tags=["images"],
        summary="JPEG thumbnail (frames and crops as such)",
        response_class=Response,
    )
    def thumbnail(image_id: str, size: int = Query(256, description=f"one of {THUMB_SIDES}")) -> Response:
        data = service.thumbnail(_image_id(image_id), size)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @app.get(
        "/api/images/{image_id}/original",
        tags=["images"],
        summary="The file itself (a frame or crop as PNG)",
        response_class=Response,
    )
    def original(image_id: str) -> Response:
        path, data = service.original(_image_id(image_id))
        if path is not None:
            return FileResponse(path, headers={"Cache-Control": "private, no-cache"})
        return Response(data, media_type="image/png")

    @app.get("/api/compare", tags=["compare"], summary="Compare two catalog entries: every measure, verdict, match drawing")
    def compare(a: str = Query(...), b: str = Query(...)) -> dict:
        return service.compare_entries(_image_id(a), _image_id(b))

    @app.post("/api/compare", tags=["compare"], summary="Compare two uploaded images")
    def compare_uploads(a: UploadFile = File(...), b: UploadFile = File(...)) -> dict:
        data = [_read_upload(a, max_bytes), _read_upload(b, max_bytes)]
        return service.compare_uploads(data[0], data[1], [a.filename or "a", b.filename or "b"])


def _add_review_routes(app: FastAPI, service: Service) -> None:
    Threshold = Query(0.5, gt=0, le=1, description="pair score at which two images are linked")

    @app.get(
        "/api/groups",
        tags=["duplicates"],
        summary="Near-duplicate groups, a page at a time (as `searcher dups`); 202 with a job while they are found",
    )
    def groups(
        threshold: float = Threshold,
        offset: int = Query(0, ge=0),
        limit: int = Query(20, ge=1, le=200),
        refresh: bool = Query(False, description="find the groups again"),
    ) -> dict:
        return service.groups(threshold, offset, limit, refresh)

    @app.get("/api/groups/{group_id}", tags=["duplicates"], summary="One group")
    def group(group_id: str, threshold: float = Threshold) -> dict:
        return service.group(_group_id(group_id), threshold)

    @app.post(
        "/api/groups/{group_id}/ignore",
        tags=["duplicates"],
        summary="Mark a group 'not duplicates' (persisted, honoured by `searcher dups`)",
    )
    def ignore(group_id: str, threshold: float = Threshold) -> dict:
        return service.ignore_group(_group_id(group_id), threshold)

    @app.post(
        "/api/groups/{group_id}/members/{image_id}/ignore",
        tags=["duplicates"],
        summary="Mark one member 'not a duplicate of the kept copy' (persisted)",
    )
    def ignore_member(group_id: str, image_id: str, threshold: float = Threshold) -> dict:
        return service.ignore_member(_group_id(group_id), _image_id(image_id), threshold)

    @app.delete("/api/groups/{group_id}/ignore", tags=["duplicates"], summary="Forget a 'not duplicates' mark")
    def unignore(group_id: str) -> dict:
        return service.unignore_group(_group_id(group_id))

    @app.post(
        "/api/groups/{group_id}/move",
        tags=["duplicates"],
        summary="Move the non-kept copies to the move folder (dry run by default)",
    )
    def move(group_id: str, request: MoveRequest = Body(default_factory=MoveRequest)) -> dict:
        return service.move_group(_group_id(group_id), request.threshold, request.keep, request.dry_run)

    @app.get("/api/moves", tags=["duplicates"], summary="Move logs in the move folder, newest first")
    def moves() -> dict:
        return {"move_to": str(service.move_to), "logs": service.move_logs()}

    @app.post("/api/undo", tags=["duplicates"], summary="Move the files of a move log back")
    def undo(request: UndoRequest) -> dict:
        return service.undo(request.log)


def _add_job_routes(app: FastAPI, service: Service) -> None:
    @app.post("/api/ingest", tags=["catalog"], summary="Ingest a folder of the server in the background", status_code=202)
    def ingest(request: IngestRequest) -> dict:
        return service.start_ingest(request.path, request.workers).to_dict()

    @app.get("/api/jobs", tags=["catalog"], summary="Every job of this server, newest last")
    def jobs() -> dict:
        return {"jobs": [job.to_dict() for job in service.jobs.all()]}

    @app.get("/api/jobs/{job_id}", tags=["catalog"], summary="A job's state and progress")
    def job(job_id: str) -> dict:
        found = service.jobs.get(job_id)
        if found is None:
            raise NotFound(f"no job {job_id[:40]!r}")
        return found.to_dict()
