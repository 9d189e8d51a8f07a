"""Schema-driven fuzzing of the searcher serve API (schemathesis): whatever it sends, no 500.

Bounded: a few examples per operation, no shrinking, no deadline. POST /api/ingest is left out:
a generated absolute path such as "/" would start a real ingest of the machine's disk; its bad
input is covered by test_server_api.
"""

from __future__ import annotations

import atexit
import shutil

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'searcher[serve]'")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[dev]')")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from serve_helpers import make_library  # noqa: E402

from searcher.server.app import create_app  # noqa: E402
from searcher.server.service import Service  # noqa: E402

_state: dict = {}


def _app():
    """One app over a small ingested library (made when pytest collects this file: schemathesis
    reads the schema then; schemathesis.pytest.from_fixture fails with this pytest)."""
    if "app" not in _state:
        import tempfile
        from pathlib import Path

        root = Path(tempfile.mkdtemp(prefix="searcher-fuzz-"))
        atexit.register(shutil.rmtree, root, True)
        _, location = make_library(root)
        _state["service"] = Service(location, move_to=root / "moved")
        atexit.register(_state["service"].close, 300)
        _state["app"] = create_app(_state["service"], max_upload_mb=1)
    return _state["app"]


schema = schemathesis.openapi.from_asgi("/openapi.json", _app()).exclude(path="/api/ingest")


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_makes_the_server_fail(case):
    case.call_and_validate(checks=[not_a_server_error])
