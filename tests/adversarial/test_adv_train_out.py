"""`train --out` that cannot be written is refused before any epoch runs (D22)."""

from __future__ import annotations

import pytest

from helpers import SAMPLE, assert_one_line_error, cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("where", ["a-folder", "under-a-file"])
def test_train_out_that_cannot_be_written_is_refused_first(tmp_path, where):
    """D22: `train --out DIR` trained a whole epoch, then failed with IsADirectoryError."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = tmp_path if where == "a-folder" else blocker / "ae.pt"
    result = cli("train", SAMPLE / "photos", "--out", out, "--epochs", "1", timeout=600)
    assert_one_line_error(result, str(out))
    assert "epoch" not in result.stderr.lower()
