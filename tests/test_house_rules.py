"""The rules of the house that code review would otherwise have to remember."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "searcher"
STORAGE_LIBRARIES = ("sqlalchemy", "alembic", "hnswlib", "pymilvus")
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_catalog_package_imports_the_storage_libraries():
    offenders = [
        f"{path.relative_to(ROOT)} imports {sorted(imported(ast.parse(path.read_text())) & set(STORAGE_LIBRARIES))}"
        for path in modules()
        if PACKAGE / "catalog" not in path.parents and imported(ast.parse(path.read_text())) & set(STORAGE_LIBRARIES)
    ]
    assert offenders == []


def test_no_sql_text_outside_the_catalog_package():
    sql = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA)\b")
    offenders = [
        str(p.relative_to(ROOT)) for p in modules() if PACKAGE / "catalog" not in p.parents and sql.search(p.read_text())
    ]
    assert offenders == []


def test_no_function_in_the_library_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def _ruff() -> list[str]:
    try:
        import ruff  # noqa: F401

        return [sys.executable, "-m", "ruff"]
    except ImportError:
        found = shutil.which("ruff")
        if found is None:
            pytest.skip("ruff is not installed (pip install -e '.[dev]' installs it)")
        return [found]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    result = subprocess.run([*_ruff(), *command, "searcher", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_searcher_loads_nothing_heavy():
    code = "import sys, searcher; searcher.__all__; print(sorted(m for m in ('torch', 'hnswlib', 'cv2', 'sqlalchemy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_public_name_resolves():
    import searcher

    for name in searcher.__all__:
        assert getattr(searcher, name) is not None, name


# ---- the README ----

README = (ROOT / "README.md").read_text()


def test_every_command_is_in_the_readme():
    from searcher.cli import app

    commands = [command.name or command.callback.__name__ for command in app.registered_commands]
    assert len(commands) >= 8
    missing = [name for name in commands if f"searcher {name}" not in README]
    assert missing == []


def test_the_readme_layout_names_every_module():
    layout = README[README.index("## Layout") :]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    listed = set(re.findall(r"^\s*([\w/.]+)", layout, flags=re.M))
    missing = [
        str(path.relative_to(PACKAGE))
        for path in modules()
        if path.name != "__main__.py"
        and (path.name if path.name != "__init__.py" else path.parent.name + "/") not in listed
        and not (path.name == "__init__.py" and path.parent == PACKAGE)
    ]
    assert missing == []
