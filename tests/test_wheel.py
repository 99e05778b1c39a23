"""From a wheel, as a user installs lbipam: build the wheel, install it into a fresh venv, run
`lbipam --help` and `lbipam demo` from a directory outside the checkout.

The wheel is built (with pip, in build isolation, as `pip install .` would) from a copy of only
what the package is made of: pyproject.toml, README.md, LICENSE, lbipam/ and bgp/ (what the
Dockerfile copies too). It must carry the example objects, the vendored Kubernetes schemas and
the licence. The fresh venv gets the wheel and its dependencies from the package index (pip's
cache makes a second run quick). The demo runs until its table is printed, then Ctrl-C: exit 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_demo import EXPECTED

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "lbipam", "bgp")
INSTALL_DEADLINE = 600  # seconds: a cold pip cache downloads every dependency


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=INSTALL_DEADLINE,
        check=False,
        cwd=cwd,
        env=env,
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, source)
    (built,) = dist.glob("lbipam-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its bin/."""
    root = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", root)
    python = root / "bin" / "python"
    # This venv's pip installs into the new one (`--python`): no pip inside it to set up first.
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel)
    return root / "bin"


def user_env(bin_dir: Path, home: Path) -> dict[str, str]:
    """A user's shell with only the new venv on PATH: nothing of the checkout or the test's venv."""
    return {"PATH": os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]), "HOME": str(home)}


def test_the_wheel_carries_the_examples_the_schemas_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    examples = {p.name for p in (ROOT / "lbipam" / "examples").glob("*.yaml")}
    assert {f"lbipam/examples/{name}" for name in examples} <= names
    assert "lbipam/apiserver/data/kubernetes-1.32-definitions.json.gz" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"License-Expression: Apache-2.0" in metadata
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/"))]


def test_help_from_a_fresh_venv(venv: Path, tmp_path: Path) -> None:
    out = run(venv / "lbipam", "--help", cwd=tmp_path, env=user_env(venv, tmp_path))
    for command in ("controller", "speaker", "apiserver", "demo", "status", "check", "plan", "crds"):
        assert command in out
    where = run(venv / "python", "-c", "import lbipam; print(lbipam.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv.parent), where  # the wheel's, not the checkout's


def test_the_demo_from_a_fresh_venv(venv: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(venv / "lbipam"), "demo"],
        cwd=tmp_path,
        env={**user_env(venv, tmp_path), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the demo gives up (and exits) by itself after 60 s
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C"):
                break
        rows = {line.split()[0] for line in lines if line.split() and line.split()[0] in EXPECTED}
        assert rows == set(EXPECTED), lines
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (lines, err[-2000:])
    assert "Stopped." in out, out


def readme_commands() -> list[str]:
    """The commands README.md opens with (its first sh block), without their comments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_opens_with_the_demo_and_the_tests_and_ci_runs_the_latter() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.index("```sh") < text.index("\n## "), "the commands come before the first section"
    demo, tests = readme_commands()
    assert demo.startswith("python3 -m venv ")
    assert demo.endswith("pip install . && lbipam demo")
    assert tests.endswith("pip install -e '.[test]' && python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci, ".ci/run must run README's test command exactly as written"
