"""`searcher serve`: the JSON API and the review web page over one open catalog (FastAPI + uvicorn).

A client of the library like the CLI: service.py says what the server does, app.py maps it to
HTTP, warm.py keeps the catalog open and swaps it after writes, jobs.py runs ingests in the
background, static/ is the page (plain HTML, CSS and JS: no build step).
"""

from __future__ import annotations

import ipaddress
import socket

from searcher.errors import UsageError

EXTRA_HINT = "searcher serve needs the serve extra: pip install 'searcher[serve]'"


def require_server_packages() -> None:
    """UsageError naming the extra when FastAPI, uvicorn or python-multipart is not installed."""
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: uploads)
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise UsageError(f"{EXTRA_HINT} ({e.name} is missing)") from None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them (e.g. localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def serve(location, host: str, port: int, token: str | None, move_to=None, max_upload_mb: float = 50.0, announce=print) -> None:
    """Open the catalog (creating it when missing), then answer HTTP on host:port until interrupted."""
    require_server_packages()
    if not is_loopback(host) and not token:
        raise UsageError(f"--host {host} is not a loopback address: give --token (or $SEARCHER_TOKEN) to serve it")
    import cv2
    import uvicorn

    cv2.setNumThreads(1)  # requests run in parallel threads; OpenCV's own pool on top would oversubscribe the cores

    from searcher.server.app import create_app
    from searcher.server.service import Service

    service = Service(location, move_to=move_to, warn=lambda message: announce(f"warning: {message}"))
    try:
        app = create_app(service, token=token, loopback_only=not token, max_upload_mb=max_upload_mb)
        where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        announce(f"searcher serve: catalog {service.location.display}, moves go to {service.move_to}")
        announce(f"open {where}" + ("?token=..." if token else "") + " (Ctrl-C stops)")
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        service.close()
