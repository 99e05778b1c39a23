"""The layering rules of STYLE.md, enforced: a pure core, one owner per third-party client."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {
    "asyncio",
    "aiohttp",
    "kubernetes_asyncio",
    "exabgp",
    "socket",
    "subprocess",
    "sqlite3",
    "threading",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((ROOT / "lbipam" / "core").rglob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_nothing_that_does_io(path: Path) -> None:
    assert not imported_roots(path) & IO_MODULES


def test_only_the_k8s_package_imports_kubernetes_asyncio() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("lbipam", "bgp")
        for path in (ROOT / package).rglob("*.py")
        if "kubernetes_asyncio" in imported_roots(path) and (ROOT / "lbipam" / "k8s") not in path.parents
    ]
    assert offenders == []


def test_import_linter_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is part of the test extra"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "lbipam", "bgp", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "lbipam", "bgp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
